package accuracyaware

import "github.com/fleetcal/fleetcal/pipeline"

// RevertReason is why a layer the search reverted is in float.
const RevertReason = "reverted to float by the accuracy-aware search to bring the metric drop within maximal_drop"

// Summarize contributes the base algorithm's summary for the final model,
// the search and the layers it reverted (pipeline.Summarizer).
func (r Report) Summarize(s *pipeline.Summary) {
	if r.Base != nil {
		r.Base.Summarize(s)
	}
	aa := &pipeline.AccuracyAwareSummary{Metric: r.Metric, AnnotationFree: r.AnnotationFree,
		HigherBetter: r.HigherBetter, DropType: r.DropType, MaximalDrop: r.MaximalDrop, Samples: r.Samples,
		FP32: r.FP32, InitialINT8: r.InitialINT8, Final: r.Final, InitialDrop: r.InitialDrop,
		FinalDrop: r.FinalDrop, Achieved: r.Achieved, RankingSamples: r.RankingSamples,
		Reverted: r.Reverted, QuantizedLayers: r.QuantizedLayers}
	for _, e := range r.Ranking {
		aa.Ranking = append(aa.Ranking, pipeline.LayerRank{Node: e.Node, Sensitivity: e.Sensitivity})
	}
	for _, st := range r.Iterations {
		aa.Steps = append(aa.Steps, pipeline.SearchStep{Node: st.Node, Metric: st.Metric, Drop: st.Drop, Kept: st.Kept})
	}
	s.AccuracyAware = aa
	for _, n := range r.Reverted {
		s.LeftInFloat = append(s.LeftInFloat, pipeline.FloatLayer{Node: n, By: Name, Reason: RevertReason})
	}
}

func ptr[T any](v T) *T { return &v }
