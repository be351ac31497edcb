package fastbias

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

func randomSamples(n int) pipeline.SliceLoader {
	r := rand.New(rand.NewPCG(3, 4))
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

// logitMeanError is Σ_c |mean FP32 logit c - mean INT8 logit c| over the data.
func logitMeanError(t *testing.T, eng *engine.Engine, fp, q *model.CompressedModel) float64 {
	t.Helper()
	spec := pipeline.StatSpec{Kind: pipeline.StatChannelMean, Axis: 1}
	mean := func(m *model.CompressedModel) []float64 {
		if err := eng.SetModel(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		res, err := eng.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"logits": {spec}}})
		if err != nil {
			t.Fatal(err)
		}
		m2, err := channelMeans(res.Stats, "logits", spec.Key())
		if err != nil {
			t.Fatal(err)
		}
		return m2
	}
	a, b := mean(fp), mean(q)
	sum := 0.0
	for c := range a {
		sum += math.Abs(a[c] - b[c])
	}
	return sum
}

func TestFastBiasCorrectionShrinksMeanError(t *testing.T) {
	q, eng, env := quantizedConvnet(t, randomSamples(32))
	before := logitMeanError(t, eng, q.Reference, q)
	fb, err := New(Params{}, env)
	if err != nil {
		t.Fatal(err)
	}
	corrected, err := fb.Run(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	after := logitMeanError(t, eng, q.Reference, corrected)
	t.Logf("Σ|mean logit error|: before %.6g, after %.6g", before, after)
	if !(after < before) {
		t.Errorf("bias correction did not reduce the mean logit error: before %g, after %g", before, after)
	}
	if n := len(fb.Report().(Report).Layers); n != 4 {
		t.Errorf("corrected %d layers, want 4 (3 Conv + 1 Gemm with biases)", n)
	}
	// The input model is left alone.
	again := logitMeanError(t, eng, q.Reference, q)
	if again != before {
		t.Errorf("Run changed its input model: error %g then %g", before, again)
	}
}

func TestFastBiasCorrectionNeedsAQuantizedModel(t *testing.T) {
	loader := randomSamples(2)
	eng, err := engine.New(loader, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	fp, err := model.Load(model.Config{Name: "net", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := New(Params{}, pipeline.AlgorithmEnv{Engine: eng, DataLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fb.Run(t.Context(), fp); err == nil || !strings.Contains(err.Error(), "after MinMaxQuantization") {
		t.Fatalf("err = %v, want advice to run it after a quantizer", err)
	}
	n := 0
	if _, err := New(Params{StatSubsetSize: &n}, pipeline.AlgorithmEnv{Engine: eng}); err == nil {
		t.Fatal("stat_subset_size 0 accepted")
	}
}

// TestSimulatedModel: the copy FastBiasCorrection measures keeps integer
// kernels only for weights no x86 kernel can saturate (7-bit ones) and
// never for the measured layer, and computes what the QDQ model computes.
func TestSimulatedModel(t *testing.T) {
	loader := randomSamples(16)
	eng, err := engine.New(loader, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	fp, err := model.Load(model.Config{Name: "net", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	quantize := func(fix string) *model.CompressedModel {
		mm, err := minmax.New(minmax.Params{SaturationFix: fix}, pipeline.AlgorithmEnv{Engine: eng, DataLen: loader.Len()})
		if err != nil {
			t.Fatal(err)
		}
		q, err := mm.Run(t.Context(), fp)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	// weightDQs counts the DequantizeLinear nodes reading an int8 tensor.
	weightDQs := func(p *onnxpb.ModelProto) int {
		int8s := map[string]bool{}
		for _, in := range p.GetGraph().GetInitializer() {
			if in.GetDataType() == int32(onnxpb.TensorProto_INT8) {
				int8s[in.GetName()] = true
			}
		}
		n := 0
		for _, nd := range p.GetGraph().GetNode() {
			if nd.GetOpType() == "DequantizeLinear" && int8s[nd.Input[0]] {
				n++
			}
		}
		return n
	}
	// convnet_op13 has 4 weights: 3 Conv, 1 Gemm (minmax's TestPlanConvnet).
	layers := []string{"conv_0", "conv_1", "conv_2", "gemm_0"}
	eight, seven := quantize(minmax.SaturationFixNo), quantize(minmax.SaturationFixAll)
	for _, tc := range []struct {
		name string
		q    *model.CompressedModel
		node string
		want int
	}{
		{"8-bit", eight, "", 0}, // every weight may saturate
		{"7-bit", seven, "", 4}, // none can
		{"7-bit, gemm_0 measured", seven, "gemm_0", 3},
	} {
		sp, err := simulated(tc.q.Models()[0].Proto, tc.node)
		if err != nil {
			t.Fatal(err)
		}
		if got := weightDQs(sp); weightDQs(tc.q.Models()[0].Proto) != 4 || got != tc.want {
			t.Errorf("%s: %d weights left on integer kernels, want %d", tc.name, got, tc.want)
		}
	}
	// Each layer simulated alone against the integer kernels, which are
	// exact for 7-bit weights on every x86 CPU: equal up to float rounding
	// (which can move a requantized activation by one level now and then;
	// a wrong dequantization moves every logit).
	for _, node := range layers {
		sp, err := simulated(seven.Models()[0].Proto, node)
		if err != nil {
			t.Fatal(err)
		}
		st := *seven.Models()[0]
		st.Proto = sp
		sim := model.NewCompressedModel(seven.Name, false, &st)
		diff := logitMeanError(t, eng, seven, sim)
		t.Logf("%s simulated: Σ|mean logit difference| %.3g", node, diff)
		if diff > 1e-3 {
			t.Errorf("%s simulated: integer kernels and simulation differ by %g in Σ|mean logit|", node, diff)
		}
	}
}
