package pipeline

import "testing"

// quantizer is a report that sets the quantization, as a quantizer's does.
type quantizer string

func (q quantizer) Summarize(s *Summary) {
	s.Quantization = &QuantizationSummary{Preset: string(q)}
	s.LeftInFloat = append(s.LeftInFloat, FloatLayer{Node: string(q)})
}

// TestSummarize: reports contribute in pipeline order, a later quantizer's
// summary replaces an earlier one's, and details that are no Summarizer
// (or nil) are skipped.
func TestSummarize(t *testing.T) {
	s := Summarize([]AlgorithmReport{
		{Name: "A", Details: quantizer("first")},
		{Name: "B", Details: map[string]int{"x": 1}},
		{Name: "C"},
		{Name: "D", Details: quantizer("second")},
	})
	if s.Quantization == nil || s.Quantization.Preset != "second" {
		t.Errorf("quantization %+v, want the last quantizer's (second)", s.Quantization)
	}
	if len(s.LeftInFloat) != 2 || s.LeftInFloat[0].Node != "first" || s.LeftInFloat[1].Node != "second" {
		t.Errorf("left in float %+v, want first then second", s.LeftInFloat)
	}
	if s := Summarize(nil); s.Quantization != nil || s.AccuracyAware != nil || s.LeftInFloat != nil {
		t.Errorf("Summarize(nil) = %+v, want the zero Summary", s)
	}
}
