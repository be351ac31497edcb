package minmax

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

func randomLoader(n int, seed uint64) pipeline.SliceLoader {
	r := rand.New(rand.NewPCG(seed, 9))
	var l pipeline.SliceLoader
	for range n {
		d := make([]float32, 3*16*16)
		for j := range d {
			d[j] = float32(r.NormFloat64())
		}
		l = append(l, pipeline.Sample{Inputs: map[string]pipeline.Tensor{"input": {Shape: []int64{1, 3, 16, 16}, Data: d}}})
	}
	return l
}

// quantize runs MinMaxQuantization on convnet_op13 and returns the model
// bytes and the report.
func quantize(t *testing.T, p Params, requests int) ([]byte, Report) {
	t.Helper()
	l := randomLoader(24, 5)
	eng, err := engine.New(l, engine.Options{Requests: requests})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	fp, err := model.Load(model.Config{Name: "net", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(p, pipeline.AlgorithmEnv{Engine: eng, DataLen: l.Len()})
	if err != nil {
		t.Fatal(err)
	}
	q, err := a.Run(t.Context(), fp)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Marshal(q.Models()[0].Proto)
	if err != nil {
		t.Fatal(err)
	}
	return b, a.Report().(Report)
}

// TestHistogramEstimators: percentile and entropy clip the range below the
// largest magnitude seen, and the model bytes do not depend on the number
// of parallel requests.
func TestHistogramEstimators(t *testing.T) {
	_, base := quantize(t, Params{}, 1)
	maxOf := func(r Report, tensor string) float64 {
		for _, a := range r.Activations {
			if a.Tensor == tensor {
				return a.Max
			}
		}
		t.Fatalf("no activation %s in report", tensor)
		return 0
	}
	for _, h := range []HistogramEstimator{{Type: "percentile", Percentile: 99}, {Type: "entropy"}} {
		t.Run(h.Type, func(t *testing.T) {
			p := Params{HistogramEstimator: &h}
			b1, r := quantize(t, p, 1)
			b2, _ := quantize(t, p, 2)
			if string(b1) != string(b2) {
				t.Errorf("models with 1 and 2 requests differ")
			}
			// Both clip below the largest |x| of the data, which the plain
			// "max" aggregator would use.
			var absMax float64
			for _, s := range randomLoader(24, 5) {
				for _, v := range s.Inputs["input"].Data.([]float32) {
					absMax = max(absMax, math.Abs(float64(v)))
				}
			}
			got := maxOf(r, "input")
			if !(got > 0 && got < absMax) {
				t.Errorf("input range max %g, want in (0, %g)", got, absMax)
			}
			// The 99th percentile of |x| of N(0,1) data is about 2.58, below
			// the default preset's mean of per-sample maxima.
			if def := maxOf(base, "input"); h.Type == "percentile" && !(got < def) {
				t.Errorf("99th percentile %g not below the default max %g", got, def)
			}
		})
	}
	if _, err := New(Params{HistogramEstimator: &HistogramEstimator{Type: "kl"}}, pipeline.AlgorithmEnv{Engine: &engine.Engine{}}); err == nil || !strings.Contains(err.Error(), `unknown type "kl"; valid: entropy, percentile`) {
		t.Errorf("unknown histogram estimator: %v", err)
	}
}

// TestSaturationFixWeights: each saturation_fix writes 7-bit weights
// ([-64, 63]) on exactly the layers report.json names, 8-bit ones
// elsewhere.
func TestSaturationFixWeights(t *testing.T) {
	// convnet_op13's weighted layers (see TestPlanConvnet); conv_0 is first.
	all := []string{"conv_0", "conv_1", "conv_2", "gemm_0"}
	for _, tc := range []struct {
		fix  string
		want []string
	}{
		{"no", []string{}},
		{"first_layer", []string{"conv_0"}},
		{"all", all},
	} {
		t.Run(tc.fix, func(t *testing.T) {
			b, rep := quantize(t, Params{SaturationFix: tc.fix}, 1)
			if rep.SaturationFix != tc.fix || !slices.Equal(rep.SevenBitLayers, tc.want) {
				t.Fatalf("report: saturation_fix %q, 7-bit layers %v; want %q, %v", rep.SaturationFix, rep.SevenBitLayers, tc.fix, tc.want)
			}
			p := &onnxpb.ModelProto{}
			if err := proto.Unmarshal(b, p); err != nil {
				t.Fatal(err)
			}
			inits := map[string]*onnxpb.TensorProto{}
			for _, in := range p.GetGraph().GetInitializer() {
				inits[in.GetName()] = in
			}
			for _, l := range rep.Layers {
				if l.Weight == "" {
					continue
				}
				q := inits[l.Weight+"_quantized"]
				if q == nil || q.GetDataType() != int32(onnxpb.TensorProto_INT8) {
					t.Fatalf("layer %s: no int8 initializer %s_quantized", l.Node, l.Weight)
				}
				lo, hi := int8(0), int8(0)
				for _, v := range q.GetRawData() {
					lo, hi = min(lo, int8(v)), max(hi, int8(v))
				}
				seven := slices.Contains(tc.want, l.Node)
				wantBits, wantLo, wantHi := 8, int8(-127), int8(127)
				if seven {
					wantBits, wantLo, wantHi = 7, -64, 63
				}
				// Per-channel symmetric weights reach the grid's end on the
				// side of each channel's largest |w|; over channels both ends
				// of [-127, 127] or [-64, 63] appear except by chance.
				if l.WeightBits != wantBits || lo < wantLo || hi > wantHi || max(-int(lo), int(hi)) < int(wantHi)-1 {
					t.Errorf("layer %s: weight_bits %d, values in [%d, %d]; want %d bits within [%d, %d]", l.Node, l.WeightBits, lo, hi, wantBits, wantLo, wantHi)
				}
			}
		})
	}
}
