package accuracyaware

import (
	"testing"

	"github.com/fleetcal/fleetcal/algorithms/defaultq"
	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestSummarize: the search's report contributes its base's quantization
// (the final model's), the search, and each reverted layer as left in
// float by AccuracyAwareQuantization.
func TestSummarize(t *testing.T) {
	r := Report{Metric: "accuracy", HigherBetter: true, FP32: 0.9, InitialINT8: 0.8, Final: 0.89, Achieved: true,
		Ranking:    []RankEntry{{Node: "conv2", Sensitivity: 0.05}, {Node: "conv1", Sensitivity: 0.01}},
		Iterations: []Step{{Node: "conv2", Metric: 0.89, Drop: 0.01, Kept: true}},
		Reverted:   []string{"conv2"}, QuantizedLayers: 3,
		Base: &defaultq.Report{MinMax: minmax.Report{Preset: "performance", CalibrationSize: 64,
			Layers: []minmax.LayerEntry{{Node: "conv1"}, {Node: "conv3"}, {Node: "fc"}}}}}
	var s pipeline.Summary
	r.Summarize(&s)
	if q := s.Quantization; q == nil || q.CalibrationSamples != 64 || len(q.Layers) != 3 {
		t.Errorf("quantization %+v, want the base's: 64 samples, 3 layers", q)
	}
	aa := s.AccuracyAware
	if aa == nil || aa.Final != 0.89 || !aa.Achieved || len(aa.Ranking) != 2 || aa.Ranking[0].Node != "conv2" ||
		len(aa.Steps) != 1 || !aa.Steps[0].Kept || len(aa.Reverted) != 1 {
		t.Errorf("accuracy-aware summary %+v", aa)
	}
	if len(s.LeftInFloat) != 1 || s.LeftInFloat[0] != (pipeline.FloatLayer{Node: "conv2", By: Name, Reason: RevertReason}) {
		t.Errorf("left in float %+v, want conv2 reverted by %s", s.LeftInFloat, Name)
	}
}
