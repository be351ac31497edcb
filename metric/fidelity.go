package metric

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/fleetcal/fleetcal/pipeline"
)

// FidelityName is the registered name of the output-fidelity metric.
const FidelityName = "output_fidelity"

func init() {
	Register(FidelityName, newFidelity)
}

// Fidelity is the annotation-free metric: how closely a model's outputs
// follow reference (FP32) outputs of the same samples. For a classifier (an
// output of shape [1,C] or [C], C > 1) it is top-1 agreement: the fraction
// of samples whose argmax equals the reference's (ties go to the lower
// index, as argmax does). For any other output it is the cosine similarity
// of the output and the reference, averaged over samples (two zero vectors
// count 1, one zero vector 0). A NaN in an output makes the value NaN.
//
// Update gets no sample index, so the references are positional: the k-th
// Update after Reset compares with refs[k]. This relies on the Engine
// contract that Predict resets the metric and calls Update once per sample
// in ascending sample-index order of the sampler's indices; build the
// references over the same sorted index list the sampler visits (Recorder
// does that when it records with such a sampler). Annotations are ignored.
//
// Registered as "output_fidelity" (config keys: output), the metric has no
// references: AccuracyAwareQuantization recognises it and runs in
// annotation-free mode; anywhere else Update returns an error.
type Fidelity struct {
	// Output names the compared output; "" takes the first by name.
	Output string

	refs      []pipeline.Tensor
	bound     bool
	next      int
	sum, last float64
	n         int
}

func newFidelity(raw json.RawMessage) (pipeline.Metric, error) {
	var cfg struct {
		Name   string `json:"name"`
		Output string `json:"output"`
	}
	if err := pipeline.DecodeStrict(raw, &cfg, "engine.metric"); err != nil {
		return nil, err
	}
	return &Fidelity{Output: cfg.Output}, nil
}

// NewFidelity returns output fidelity against refs, the reference values
// of output (or of the first output by name when output is "") for the
// samples Predict will visit, in ascending sample-index order.
func NewFidelity(output string, refs []pipeline.Tensor) *Fidelity {
	return &Fidelity{Output: output, refs: refs, bound: true}
}

// HasReferences reports whether f was built with reference outputs.
func (f *Fidelity) HasReferences() bool { return f.bound }

// Classifier reports whether f compares top-1 classes (true) or cosine
// similarity (false), judged from its first reference.
func (f *Fidelity) Classifier() bool {
	return len(f.refs) > 0 && isClassifier(f.refs[0].Shape)
}

func isClassifier(shape []int64) bool {
	switch len(shape) {
	case 1:
		return shape[0] > 1
	case 2:
		return shape[0] == 1 && shape[1] > 1
	}
	return false
}

// Value is the agreement (0 or 1) or cosine similarity of the last
// Update's sample: a list of one value (empty before any Update).
func (f *Fidelity) Value() map[string][]float64 {
	if f.n == 0 {
		return map[string][]float64{FidelityName: nil}
	}
	return map[string][]float64{FidelityName: {f.last}}
}

// AvgValue is the mean over the samples since Reset (0 before any).
func (f *Fidelity) AvgValue() map[string]float64 {
	if f.n == 0 {
		return map[string]float64{FidelityName: 0}
	}
	return map[string]float64{FidelityName: f.sum / float64(f.n)}
}

// HigherBetter is true: 1 is identical to the reference.
func (f *Fidelity) HigherBetter() bool { return true }

// Reset forgets every sample and restarts at the first reference.
func (f *Fidelity) Reset() { f.next, f.sum, f.last, f.n = 0, 0, 0, 0 }

// Attributes names the kind: "top1_agreement" or "cosine_similarity".
func (f *Fidelity) Attributes() map[string]pipeline.MetricAttributes {
	typ := "cosine_similarity"
	if f.Classifier() {
		typ = "top1_agreement"
	}
	if !f.bound {
		typ = FidelityName
	}
	return map[string]pipeline.MetricAttributes{FidelityName: {Direction: "higher-better", Type: typ}}
}

// Update compares one sample's output with the next reference.
func (f *Fidelity) Update(outputs map[string]pipeline.Tensor, _ any) error {
	if !f.bound {
		return errors.New("output_fidelity: no reference outputs: it compares with the FP32 model inside AccuracyAwareQuantization (annotation-free mode) and cannot evaluate a model alone")
	}
	if f.next >= len(f.refs) {
		return fmt.Errorf("output_fidelity: sample %d visited, but there are only %d reference outputs", f.next+1, len(f.refs))
	}
	ref := f.refs[f.next]
	_, t, err := pickOutput(outputs, f.Output, FidelityName)
	if err != nil {
		return err
	}
	got, want := t.Float32s(), ref.Float32s()
	if len(got) != len(want) || len(got) == 0 {
		return fmt.Errorf("output_fidelity: output has shape %v, reference %v", t.Shape, ref.Shape)
	}
	var v float64
	if isClassifier(ref.Shape) {
		v = agreement(got, want)
	} else {
		v = cosine(got, want)
	}
	f.next++
	f.last = v
	f.sum += v
	f.n++
	return nil
}

// agreement is 1 when the argmaxes match, NaN when got holds a NaN.
func agreement(got, want []float32) float64 {
	ag, aw := argmax(got), argmax(want)
	if ag < 0 || aw < 0 {
		return math.NaN()
	}
	if ag == aw {
		return 1
	}
	return 0
}

// argmax is the index of the largest value (the first on ties), or -1
// when s holds a NaN.
func argmax(s []float32) int {
	best := 0
	for i, v := range s {
		if v != v {
			return -1
		}
		if v > s[best] {
			best = i
		}
	}
	return best
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	switch {
	case math.IsNaN(dot + na + nb):
		return math.NaN()
	case na == 0 && nb == 0:
		return 1
	case na == 0 || nb == 0:
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// pickOutput returns the output called name, or the first by name.
func pickOutput(outputs map[string]pipeline.Tensor, name, who string) (string, pipeline.Tensor, error) {
	if name == "" {
		names := slices.Sorted(maps.Keys(outputs))
		if len(names) == 0 {
			return "", pipeline.Tensor{}, fmt.Errorf("%s: the model has no output", who)
		}
		name = names[0]
	}
	t, ok := outputs[name]
	if !ok {
		return "", pipeline.Tensor{}, fmt.Errorf("%s: no output %q; outputs: %s", who, name, strings.Join(slices.Sorted(maps.Keys(outputs)), ", "))
	}
	return name, t, nil
}

// Recorder is a Metric that records one output of every sample, in the
// order Update is called (ascending sample index under Predict), as float32
// copies: the references of NewFidelity. Its value is the number of samples
// recorded. Memory grows with samples × output size.
type Recorder struct {
	// Output names the recorded output; "" takes the first by name.
	Output  string
	outputs []pipeline.Tensor
}

// NewRecorder records output ("" for the first output by name).
func NewRecorder(output string) *Recorder { return &Recorder{Output: output} }

// Outputs returns what was recorded since Reset.
func (r *Recorder) Outputs() []pipeline.Tensor { return r.outputs }

// Value is what the last Update recorded: one sample (empty before any).
func (r *Recorder) Value() map[string][]float64 {
	if len(r.outputs) == 0 {
		return map[string][]float64{"recorded": nil}
	}
	return map[string][]float64{"recorded": {1}}
}

// AvgValue is the number of samples recorded.
func (r *Recorder) AvgValue() map[string]float64 {
	return map[string]float64{"recorded": float64(len(r.outputs))}
}

// HigherBetter is true (the value is a count).
func (r *Recorder) HigherBetter() bool { return true }

// Reset forgets the recorded outputs.
func (r *Recorder) Reset() { r.outputs = nil }

// Attributes describes the count.
func (r *Recorder) Attributes() map[string]pipeline.MetricAttributes {
	return map[string]pipeline.MetricAttributes{"recorded": {Direction: "higher-better", Type: "count"}}
}

// Update copies the sample's output.
func (r *Recorder) Update(outputs map[string]pipeline.Tensor, _ any) error {
	_, t, err := pickOutput(outputs, r.Output, "recorder")
	if err != nil {
		return err
	}
	data := t.Float32s()
	if data == nil {
		return fmt.Errorf("recorder: output of type %s is not numeric", t.DType())
	}
	r.outputs = append(r.outputs, pipeline.Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(data)})
	return nil
}
