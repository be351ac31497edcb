package metric_test

import (
	"encoding/json"
	"fmt"

	"github.com/fleetcal/fleetcal/metric"
	"github.com/fleetcal/fleetcal/pipeline"
)

// A metric built from a config's "metric" object, updated with one
// sample's outputs at a time: Value is POT's value (a list per sample of
// the last update), AvgValue POT's avg_value (over every sample since
// Reset).
func ExampleNew() {
	m, err := metric.New(json.RawMessage(`{"name": "accuracy", "top_k": 1}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	logits := func(v ...float32) map[string]pipeline.Tensor {
		return map[string]pipeline.Tensor{"logits": {Shape: []int64{1, int64(len(v))}, Data: v}}
	}
	for _, s := range []struct {
		out   map[string]pipeline.Tensor
		label int
	}{{logits(0.1, 0.9), 1}, {logits(0.8, 0.2), 1}, {logits(0.3, 0.7), 1}} {
		if err := m.Update(s.out, s.label); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(m.Value())
	}
	fmt.Printf("%.3f\n", m.AvgValue()["accuracy"])
	_, err = metric.New(json.RawMessage(`{"name": "acuracy"}`))
	fmt.Println(err)
	// Output:
	// map[accuracy:[1]]
	// map[accuracy:[0]]
	// map[accuracy:[1]]
	// 0.667
	// engine.metric: unknown metric "acuracy"; valid: accuracy, output_fidelity
}
