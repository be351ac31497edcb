package pipeline

import (
	"maps"
	"strings"
	"testing"
)

// listMetric's Value is whatever the test sets.
type listMetric struct{ v map[string][]float64 }

func (m *listMetric) Value() map[string][]float64             { return m.v }
func (m *listMetric) AvgValue() map[string]float64            { return nil }
func (m *listMetric) HigherBetter() bool                      { return true }
func (m *listMetric) Update(map[string]Tensor, any) error     { return nil }
func (m *listMetric) Reset()                                  {}
func (m *listMetric) Attributes() map[string]MetricAttributes { return nil }

// TestSampleValues: one value per name after one sample's Update; a list
// of another length is an error naming the metric.
func TestSampleValues(t *testing.T) {
	got, err := SampleValues(&listMetric{v: map[string][]float64{"acc": {1}, "iou": {0.25}}})
	if want := map[string]float64{"acc": 1, "iou": 0.25}; err != nil || !maps.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, v := range []map[string][]float64{{"acc": {1}, "iou": nil}, {"iou": {1, 0}}} {
		_, err := SampleValues(&listMetric{v: v})
		if err == nil || !strings.HasPrefix(err.Error(), `metric "iou": Value holds `) {
			t.Errorf("Value %v: err = %v, want one naming iou", v, err)
		}
	}
}
