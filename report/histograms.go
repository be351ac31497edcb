package report

import (
	"context"
	"fmt"
	"slices"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// HistogramOptions say what the histogram pass visits.
type HistogramOptions struct {
	// DataLen is the number of samples of the engine's data set; Samples
	// bounds how many of the first ones are counted (0: every one).
	DataLen, Samples int
	// Progress, when set, receives the pass's progress.
	Progress func(done, total int)
}

// Histograms collects a histogram of each quantized activation (edges
// from HistogramEdges on its quantization range) in one statistics pass of
// eng over m, the float model the quantizer started from, and returns the
// activations with their histograms and the number of samples counted. An
// activation the pass did not observe has no histogram.
func Histograms(ctx context.Context, eng pipeline.Engine, m *model.CompressedModel, acts []pipeline.QuantizedActivation, o HistogramOptions) ([]Activation, int, error) {
	out := make([]Activation, len(acts))
	specs := make([]pipeline.StatSpec, len(acts))
	layout := pipeline.StatsLayout{}
	for i, a := range acts {
		out[i].QuantizedActivation = a
		lo, hi, bins := HistogramEdges(a.Min, a.Max)
		specs[i] = pipeline.StatSpec{Kind: pipeline.StatHistogram, Lo: lo, Hi: hi, Bins: bins}
		if !slices.Contains(layout[a.Tensor], specs[i]) {
			layout[a.Tensor] = append(layout[a.Tensor], specs[i])
		}
	}
	if len(layout) == 0 {
		return out, 0, nil
	}
	if err := eng.SetModel(ctx, m); err != nil {
		return nil, 0, fmt.Errorf("histograms: %w", err)
	}
	n := o.DataLen
	if o.Samples > 0 {
		n = min(n, o.Samples)
	}
	subset := make([]int, n)
	for i := range subset {
		subset[i] = i
	}
	res, err := eng.Predict(ctx, pipeline.PredictOptions{
		StatsLayout: layout,
		Sampler:     pipeline.NewBatchSampler(o.DataLen, 1, subset),
		Progress:    o.Progress,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("histograms: %w", err)
	}
	for i, a := range acts {
		h := res.Stats.Hist(a.Tensor, specs[i].Key())
		if h == nil {
			continue
		}
		edges := make([]float64, h.Bins()+1)
		for k := range edges {
			edges[k] = h.Edge(k)
		}
		out[i].Hist = &Histogram{Edges: edges, Counts: h.Counts(),
			Underflow: h.Underflow(), Overflow: h.Overflow(), NaN: h.NaN()}
	}
	return out, res.Samples, nil
}
