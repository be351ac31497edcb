package engine

import (
	"math"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// TestHistogram: the histogram statistics of a pass equal a histogram filled
// by a plain loop over the tensor taken as a graph output, whatever the
// number of parallel requests and the batch size.
func TestHistogram(t *testing.T) {
	const n = 20
	l := randomSamples(n, "input", []int64{1, 3, 16, 16}, 11)
	hist := pipeline.StatSpec{Kind: pipeline.StatHistogram, Lo: -3, Hi: 5, Bins: 64}
	abs := pipeline.StatSpec{Kind: pipeline.StatAbsHistogram, Lo: 0, Hi: 4, Bins: 2048}
	tensors := []string{"conv_0_out", "relu_1_out"}
	layout := pipeline.StatsLayout{}
	for _, name := range tensors {
		layout[name] = []pipeline.StatSpec{hist, abs, {Kind: pipeline.StatMax}}
	}

	s, err := NewSession(withOutputs(loadProto(t, "convnet_dynamic.onnx"), tensors...), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string][2]*reduce.Histogram{}
	for _, name := range tensors {
		h, _ := reduce.NewHistogram(hist.Lo, hist.Hi, hist.Bins)
		a, _ := reduce.NewHistogram(abs.Lo, abs.Hi, abs.Bins)
		want[name] = [2]*reduce.Histogram{h, a}
	}
	for _, smp := range l.samples {
		outs, err := s.Run(t.Context(), smp.Inputs)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range tensors {
			for _, v := range outs[name].Data.([]float32) {
				want[name][0].Add(float64(v))
				want[name][1].Add(math.Abs(float64(v)))
			}
		}
	}
	for _, tc := range []struct{ requests, batch int }{{1, 1}, {2, 1}, {2, 4}} {
		e := newEngine(t, l, Options{Requests: tc.requests}, "convnet_dynamic.onnx")
		res, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layout, Sampler: pipeline.NewBatchSampler(n, tc.batch, nil)})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range tensors {
			for i, spec := range []pipeline.StatSpec{hist, abs} {
				got := res.Stats.Hist(name, spec.Key())
				if got == nil || !got.Equal(want[name][i]) {
					t.Errorf("requests %d batch %d: %s %s differs from the plain loop (total %v, want %d)",
						tc.requests, tc.batch, name, spec.Key(), total(got), want[name][i].Total())
				}
			}
		}
	}
}

func total(h *reduce.Histogram) any {
	if h == nil {
		return "none"
	}
	return h.Total()
}
