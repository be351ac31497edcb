package engine

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestMeasureLatency(t *testing.T) {
	a, err := os.ReadFile(fixture("convnet_op13.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fixture("convnet_op11.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := randomSamples(1, "input", []int64{1, 3, 16, 16}, 1).Item(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := MeasureLatency(t.Context(), [][]byte{a, b}, s.Inputs, LatencyOptions{Threads: 1, MinRounds: 7, Budget: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if c.Rounds < 7 || len(c.Models) != 2 || len(c.Speedup) != 1 || c.Threads != 1 {
		t.Fatalf("comparison %+v: want >= 7 rounds, 2 models, 1 speed-up", c)
	}
	for i, st := range append(c.Models, c.Speedup...) {
		if !(st.P10Ms > 0 && st.P10Ms <= st.MedianMs && st.MedianMs <= st.P90Ms) {
			t.Errorf("stats %d = %+v: want 0 < p10 <= median <= p90", i, st)
		}
	}

	// Bad inputs: a missing input and a corrupt model name what failed.
	if _, err := MeasureLatency(t.Context(), [][]byte{a}, nil, LatencyOptions{}); !errors.Is(err, ErrBadInput) {
		t.Errorf("no inputs: err = %v, want ErrBadInput", err)
	}
	if _, err := MeasureLatency(t.Context(), [][]byte{a, []byte("not onnx")}, s.Inputs, LatencyOptions{}); !errors.Is(err, ErrBadModel) {
		t.Errorf("corrupt model: err = %v, want ErrBadModel", err)
	}
}
