package metric

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

func tensor(shape []int64, v ...float32) pipeline.Tensor {
	return pipeline.Tensor{Shape: shape, Data: v}
}

func TestFidelityTop1Agreement(t *testing.T) {
	refs := []pipeline.Tensor{
		tensor([]int64{1, 3}, 0.1, 0.9, 0.0), // class 1
		tensor([]int64{1, 3}, 2, 1, 0),       // class 0
		tensor([]int64{3}, 0, 0, 5),          // class 2, rank-1 [C]
	}
	f := NewFidelity("", refs)
	if !f.Classifier() || f.Attributes()[FidelityName].Type != "top1_agreement" {
		t.Fatalf("[1,3] references must make a top-1 classifier metric: %+v", f.Attributes())
	}
	for i, tc := range []struct {
		out  []float32
		want float64
	}{
		{[]float32{0, 3, 1}, 1},     // class 1 = ref
		{[]float32{0.5, 0.5, 0}, 1}, // tie: argmax takes class 0 = ref
		{[]float32{9, 0, 1}, 0},     // class 0 ≠ ref class 2
	} {
		outs := map[string]pipeline.Tensor{"logits": tensor(refs[i].Shape, tc.out...)}
		if err := f.Update(outs, nil); err != nil {
			t.Fatal(err)
		}
		if got := f.Value()[FidelityName]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("sample %d: value %v, want %v", i, got, tc.want)
		}
	}
	// 2 of 3 samples agree.
	if got := f.AvgValue()[FidelityName]; got != 2.0/3 {
		t.Errorf("avg = %v, want 2/3", got)
	}
	// A fourth sample has no reference.
	if err := f.Update(map[string]pipeline.Tensor{"logits": refs[0]}, nil); err == nil || !strings.Contains(err.Error(), "only 3 reference outputs") {
		t.Errorf("update past the references: err = %v", err)
	}
	// Reset restarts at the first reference: an identical pass scores 1.
	f.Reset()
	for _, r := range refs {
		if err := f.Update(map[string]pipeline.Tensor{"logits": r}, "ignored annotation"); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.AvgValue()[FidelityName]; got != 1 {
		t.Errorf("references against themselves: %v, want 1", got)
	}
}

func TestFidelityCosine(t *testing.T) {
	refs := []pipeline.Tensor{
		tensor([]int64{1, 2, 2}, 1, 0, 0, 0),
		tensor([]int64{1, 2, 2}, 0, 0, 0, 0),
		tensor([]int64{1, 2, 2}, 1, 1, 1, 1),
	}
	f := NewFidelity("y", refs)
	if f.Classifier() {
		t.Fatal("[1,2,2] outputs are not a classifier's")
	}
	for i, tc := range []struct {
		out  []float32
		want float64
	}{
		{[]float32{1, 1, 0, 0}, 1 / math.Sqrt2}, // 45 degrees
		{[]float32{0, 0, 0, 0}, 1},              // both zero: identical
		{[]float32{-2, -2, -2, -2}, -1},         // opposite direction
	} {
		if err := f.Update(map[string]pipeline.Tensor{"y": tensor(refs[i].Shape, tc.out...), "z": refs[0]}, nil); err != nil {
			t.Fatal(err)
		}
		if got := f.Value()[FidelityName]; len(got) != 1 || math.Abs(got[0]-tc.want) > 1e-12 {
			t.Errorf("sample %d: cosine %v, want %v", i, got, tc.want)
		}
	}
	// (1/√2 + 1 - 1) / 3.
	if got, want := f.AvgValue()[FidelityName], 1/math.Sqrt2/3; math.Abs(got-want) > 1e-12 {
		t.Errorf("avg = %v, want %v", got, want)
	}
}

func TestFidelityNaNAndErrors(t *testing.T) {
	nan := float32(math.NaN())
	for _, ref := range []pipeline.Tensor{tensor([]int64{1, 2}, 1, 0), tensor([]int64{2, 2}, 1, 0, 0, 1)} {
		f := NewFidelity("", []pipeline.Tensor{ref})
		bad := make([]float32, ref.Len())
		bad[1] = nan
		if err := f.Update(map[string]pipeline.Tensor{"o": tensor(ref.Shape, bad...)}, nil); err != nil {
			t.Fatal(err)
		}
		if v := f.AvgValue()[FidelityName]; !math.IsNaN(v) {
			t.Errorf("shape %v: a NaN output gives %v, want NaN", ref.Shape, v)
		}
	}
	f := NewFidelity("", []pipeline.Tensor{tensor([]int64{1, 2}, 1, 0)})
	if err := f.Update(map[string]pipeline.Tensor{"o": tensor([]int64{1, 3}, 1, 0, 0)}, nil); err == nil || !strings.Contains(err.Error(), "shape [1 3], reference [1 2]") {
		t.Errorf("shape mismatch: err = %v", err)
	}
	f = NewFidelity("logits", []pipeline.Tensor{tensor([]int64{1, 2}, 1, 0)})
	if err := f.Update(map[string]pipeline.Tensor{"o": tensor([]int64{1, 2}, 1, 0)}, nil); err == nil || !strings.Contains(err.Error(), `no output "logits"; outputs: o`) {
		t.Errorf("missing output: err = %v", err)
	}
}

func TestFidelityFromConfig(t *testing.T) {
	m, err := New(json.RawMessage(`{"name": "output_fidelity", "output": "logits"}`))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.(*Fidelity)
	if !ok || f.HasReferences() || f.Output != "logits" {
		t.Fatalf("config metric = %#v, want an unbound *Fidelity on logits", m)
	}
	if err := f.Update(out(1, 2), nil); err == nil || !strings.Contains(err.Error(), "AccuracyAwareQuantization") {
		t.Errorf("unbound update: err = %v, want it to say where the metric works", err)
	}
	for _, tc := range []struct{ raw, want string }{
		{`{"name": "output_fidelity", "top_k": 1}`, `unknown key "top_k"; valid keys: name, output`},
		{`{"name": "fidelity"}`, `unknown metric "fidelity"; valid: accuracy, output_fidelity`},
	} {
		if _, err := New(json.RawMessage(tc.raw)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s): err = %v, want %q", tc.raw, err, tc.want)
		}
	}
}

func TestRecorderCopies(t *testing.T) {
	r := NewRecorder("")
	buf := []float32{1, 2}
	outs := map[string]pipeline.Tensor{"b": tensor([]int64{1, 2}, buf...), "a": {Shape: []int64{1, 2}, Data: buf}}
	if err := r.Update(outs, nil); err != nil {
		t.Fatal(err)
	}
	buf[0] = 99 // the engine may reuse its buffers
	got := r.Outputs()
	if len(got) != 1 || got[0].Float32s()[0] != 1 {
		t.Fatalf("recorded %v, want a copy of output a = [1 2]", got)
	}
	if r.AvgValue()["recorded"] != 1 {
		t.Errorf("value = %v, want 1 sample", r.AvgValue())
	}
	r.Reset()
	if len(r.Outputs()) != 0 {
		t.Error("Reset kept outputs")
	}
}
