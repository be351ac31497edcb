package pipeline

import (
	"fmt"
	"maps"
	"slices"
)

// SampleValues is m.Value after the Update of one sample, one value per
// metric name: what engines record in PredictResult.PerSample. A list
// that does not hold exactly one value is an error naming the metric.
func SampleValues(m Metric) (map[string]float64, error) {
	v := m.Value()
	out := make(map[string]float64, len(v))
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if len(v[k]) != 1 {
			return nil, fmt.Errorf("metric %q: Value holds %d values after one sample's Update, want 1 (a list per sample of the last Update)", k, len(v[k]))
		}
		out[k] = v[k][0]
	}
	return out, nil
}
