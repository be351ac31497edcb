package engine

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// convInputs lists the float inputs of every Conv (their first input).
func convInputs(p *onnxpb.ModelProto) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range p.GetGraph().GetNode() {
		if n.GetOpType() == "Conv" && !seen[n.GetInput()[0]] {
			seen[n.GetInput()[0]] = true
			out = append(out, n.GetInput()[0])
		}
	}
	return out
}

// BenchmarkConvInputStats is DefaultQuantization's statistics pass on a
// corpus model (FLEETCAL_BENCH_MODEL, e.g. .deps/corpus/ppocr_det/model.onnx,
// with a fixed [1,3,128,128] input): min and max of every Conv input, with
// and without FastBiasCorrection's channel means, against plain inference.
//
//	FLEETCAL_BENCH_MODEL=... go test ./engine -run XXX -bench ConvInputStats -benchtime 3x -count 5
func BenchmarkConvInputStats(b *testing.B) {
	path := os.Getenv("FLEETCAL_BENCH_MODEL")
	if path == "" {
		b.Skip("FLEETCAL_BENCH_MODEL not set")
	}
	p, err := model.LoadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	m := model.NewCompressedModel(filepath.Base(path), false, &model.Stage{Name: "m", Proto: p, Path: path})
	in, _ := graphIO(p)
	l := randomSamples(32, in[0].Name, []int64{1, 3, 128, 128}, 7)
	convs := convInputs(p)
	minMax := []pipeline.StatSpec{{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}}
	withMean := append(minMax[:2:2], pipeline.StatSpec{Kind: pipeline.StatChannelMean, Axis: 1})
	for _, bc := range []struct {
		name   string
		layout pipeline.StatsLayout
	}{
		{"Plain", nil},
		{"MinMax", layoutOf(convs, minMax)},
		{"MinMaxChannelMean", layoutOf(convs, withMean)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := New(l, Options{Threads: 1, Requests: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if err := e.SetModel(b.Context(), m); err != nil {
				b.Fatal(err)
			}
			opts := pipeline.PredictOptions{StatsLayout: bc.layout}
			if _, err := e.Predict(b.Context(), opts); err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := e.Predict(b.Context(), opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkComputeGoChannelMean is the Go reduction of one Conv input of
// ppocr_det-like shape: min, max and per-channel mean.
func BenchmarkComputeGoChannelMean(b *testing.B) {
	shape := []int64{1, 24, 64, 64}
	data := make([]float32, 24*64*64)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	ts, err := newTensorStats("x", []pipeline.StatSpec{{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}, {Kind: pipeline.StatChannelMean, Axis: 1}})
	if err != nil {
		b.Fatal(err)
	}
	var res sampleResult
	var buf [2][]float32
	b.SetBytes(int64(4 * len(data)))
	for b.Loop() {
		if err := ts.computeGo(data, shape, &res, &buf); err != nil {
			b.Fatal(err)
		}
	}
}
