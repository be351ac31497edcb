package defaultq

import (
	"encoding/json"

	"github.com/fleetcal/fleetcal/algorithms/fastbias"
	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/pipeline"
)

// LatencyPlacementName keys latency-aware placement's report in Report's
// JSON.
const LatencyPlacementName = "LatencyAwarePlacement"

// Report is DefaultQuantization's report: the reports of its chain. In
// report.json it is an object keyed by algorithm name
// ("MinMaxQuantization", "FastBiasCorrection" or "BiasCorrection",
// "LatencyAwarePlacement").
type Report struct {
	MinMax minmax.Report
	// Bias is the bias correction's report, BiasName the algorithm's name
	// (FastBiasCorrection or BiasCorrection); nil when none ran.
	BiasName string
	Bias     *fastbias.Report
	// Latency is latency-aware placement's report (nil: it did not run).
	Latency *LatencyReport
}

// MarshalJSON writes r as an object keyed by algorithm name.
func (r Report) MarshalJSON() ([]byte, error) {
	m := map[string]any{minmax.Name: r.MinMax}
	if r.Bias != nil {
		m[r.BiasName] = *r.Bias
	}
	if r.Latency != nil {
		m[LatencyPlacementName] = r.Latency
	}
	return json.Marshal(m)
}

// Summarize contributes MinMaxQuantization's summary and the layers
// latency-aware placement left in float (pipeline.Summarizer).
func (r Report) Summarize(s *pipeline.Summary) {
	r.MinMax.Summarize(s)
	if r.Latency != nil {
		for _, l := range r.Latency.LeftInFloat {
			s.LeftInFloat = append(s.LeftInFloat, pipeline.FloatLayer{Node: l.Node, Op: l.Op, By: LatencyPlacementName, Reason: l.Reason})
		}
	}
}

// ChainReport is the report of MinMaxQuantization mm followed by the bias
// correction fb (nil: none).
func ChainReport(mm minmax.Report, fb *fastbias.Algorithm) Report {
	r := Report{MinMax: mm}
	if fb != nil {
		b := fb.LastReport()
		r.BiasName, r.Bias = fb.Name(), &b
	}
	return r
}
