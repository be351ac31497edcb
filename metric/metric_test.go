package metric

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

func out(scores ...float32) map[string]pipeline.Tensor {
	return map[string]pipeline.Tensor{"logits": {Shape: []int64{1, int64(len(scores))}, Data: scores}}
}

func TestAccuracyTopK(t *testing.T) {
	m, err := New(json.RawMessage(`{"name": "accuracy", "top_k": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	// Scores ranked: class 2 (0.9), class 0 (0.5), class 1 (0.1).
	for _, tc := range []struct {
		label int
		want  float64
	}{{2, 1}, {0, 1}, {1, 0}} {
		if err := m.Update(out(0.5, 0.1, 0.9), tc.label); err != nil {
			t.Fatal(err)
		}
		// POT's value: a list per sample of the last update (one here).
		if got := m.Value()["accuracy@top2"]; !slices.Equal(got, []float64{tc.want}) {
			t.Fatalf("label %d: value %v, want %v", tc.label, got, tc.want)
		}
	}
	// 2 of 3 samples correct.
	if got := m.AvgValue()["accuracy@top2"]; got != 2.0/3 {
		t.Fatalf("avg = %v, want 2/3", got)
	}
	m.Reset()
	if got := m.AvgValue()["accuracy@top2"]; got != 0 {
		t.Fatalf("avg after reset = %v", got)
	}
	if got := m.Value()["accuracy@top2"]; len(got) != 0 {
		t.Fatalf("value after reset = %v, want no sample", got)
	}
	if !m.HigherBetter() || m.Attributes()["accuracy@top2"].Direction != "higher-better" {
		t.Fatal("accuracy must be higher-better")
	}
}

func TestAccuracyTiesGoToLowerIndex(t *testing.T) {
	m := NewAccuracy(1)
	_ = m.Update(out(0.5, 0.5), 1)
	if !slices.Equal(m.Value()["accuracy"], []float64{0}) {
		t.Fatal("a tie with a lower class index must not count for top-1 (argmax picks class 0)")
	}
}

func TestMetricErrors(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`{"name": "acuracy"}`, `unknown metric "acuracy"; valid: accuracy`},
		{`{"name": "accuracy", "topk": 1}`, `engine.metric: unknown key "topk"; valid keys: name, output, top_k`},
		{`{"name": "accuracy", "top_k": 0}`, `top_k must be at least 1`},
	} {
		if _, err := New(json.RawMessage(tc.raw)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s): err = %v, want %q", tc.raw, err, tc.want)
		}
	}
	m := NewAccuracy(1)
	for _, tc := range []struct {
		ann  any
		want string
	}{{nil, "no annotation"}, {"cat", "not a class index"}, {7, "outside the 2 classes"}} {
		if err := m.Update(out(1, 2), tc.ann); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Update(ann %v): err = %v, want %q", tc.ann, err, tc.want)
		}
	}
}
