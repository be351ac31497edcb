package minmax

import (
	"fmt"

	"github.com/fleetcal/fleetcal/pipeline"
)

// Summarize makes r the run's quantization (pipeline.Summarizer): its
// activations (a tensor that shares another's parameters shows that
// range), its layers, and the layers the cost rule left in float.
func (r Report) Summarize(s *pipeline.Summary) {
	q := &pipeline.QuantizationSummary{Preset: r.Preset, CalibrationSamples: r.CalibrationSize,
		NothingQuantized: r.NothingQuantized, FloatOps: r.FloatOps,
		RangeEstimator: fmt.Sprintf("min: %s; max: %s", r.RangeEstimator[0], r.RangeEstimator[1])}
	ranges := map[string][2]float64{}
	for _, a := range r.Activations {
		if a.SharesWith == "" {
			ranges[a.Tensor] = [2]float64{a.Min, a.Max}
		}
	}
	for _, a := range r.Activations {
		rg := [2]float64{a.Min, a.Max}
		if a.SharesWith != "" {
			rg = ranges[a.SharesWith]
		}
		q.Activations = append(q.Activations, pipeline.QuantizedActivation{Tensor: a.Tensor, Min: rg[0], Max: rg[1],
			Scale: float64(a.Scale), ZeroPoint: a.ZeroPoint, Type: a.Type, SharesWith: a.SharesWith})
	}
	for _, l := range r.Layers {
		q.Layers = append(q.Layers, pipeline.QuantizedLayer{Node: l.Node, Op: l.Op, Weight: l.Weight, Granularity: l.Granularity,
			Channels: l.Channels, MinScale: float64(l.MinScale), MaxScale: float64(l.MaxScale), Int32Bias: l.Bias})
	}
	s.Quantization = q
	for _, l := range r.SlowLayers {
		s.LeftInFloat = append(s.LeftInFloat, pipeline.FloatLayer{Node: l.Node, Op: l.Op, By: Name, Reason: l.Reason})
	}
}

// LastReport is the report of the last Run, typed (Report returns it as
// any for pipeline.Reporter).
func (a *Algorithm) LastReport() Report { return a.report }
