package defaultq

import (
	"encoding/json"
	"testing"

	"github.com/fleetcal/fleetcal/algorithms/fastbias"
	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestReportJSON checks that Report is written as the object keyed by
// algorithm name report.json has always held (a map of the chain's
// reports), and that its summary is MinMaxQuantization's plus the layers
// placement left in float.
func TestReportJSON(t *testing.T) {
	mm := minmax.Report{Preset: "performance", CalibrationSize: 3, RangeEstimator: [2]string{"min", "max"},
		Activations: []minmax.ActivationEntry{{Tensor: "a", Min: -1, Max: 2, Scale: 0.5, Type: "UINT8"}, {Tensor: "b", SharesWith: "a"}},
		SlowLayers:  []minmax.SlowLayer{{Node: "dw", Op: "Conv", Reason: "depthwise"}}}
	fb := fastbias.Report{Layers: []fastbias.LayerShift{{Node: "conv", MaxAbsShift: 0.25}}}
	lat := &LatencyReport{CPU: "x", LeftInFloat: []FloatLayer{{Node: "fc", Op: "Gemm", Reason: "slower"}}}
	for _, tc := range []struct {
		name string
		r    Report
		old  map[string]any // the map report.json was written from before Report
	}{
		{"minmax only", Report{MinMax: mm}, map[string]any{minmax.Name: mm}},
		{"fast bias", Report{MinMax: mm, BiasName: fastbias.Name, Bias: &fb}, map[string]any{minmax.Name: mm, fastbias.Name: fb}},
		{"bias and latency", Report{MinMax: mm, BiasName: fastbias.BiasCorrectionName, Bias: &fb, Latency: lat},
			map[string]any{minmax.Name: mm, fastbias.BiasCorrectionName: fb, LatencyPlacementName: lat}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.MarshalIndent(map[string]any{"details": tc.r}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.MarshalIndent(map[string]any{"details": tc.old}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("Report JSON:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	var s pipeline.Summary
	Report{MinMax: mm, Latency: lat}.Summarize(&s)
	q := s.Quantization
	if q == nil || q.CalibrationSamples != 3 || len(q.Activations) != 2 || q.RangeEstimator != "min: min; max: max" {
		t.Fatalf("quantization summary %+v", q)
	}
	// "b" shares "a"'s parameters: it shows a's range.
	if b := q.Activations[1]; b.Min != -1 || b.Max != 2 || b.SharesWith != "a" {
		t.Errorf("shared activation %+v, want a's range [-1, 2]", b)
	}
	if len(s.LeftInFloat) != 2 || s.LeftInFloat[0].Node != "dw" || s.LeftInFloat[1].Node != "fc" || s.LeftInFloat[1].By != LatencyPlacementName {
		t.Errorf("left in float %+v, want dw (cost rule) then fc (placement)", s.LeftInFloat)
	}
}
