package metric

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/fleetcal/fleetcal/pipeline"
)

// Factory builds a metric from its config object (decode it with
// pipeline.DecodeStrict so typos are errors).
type Factory func(raw json.RawMessage) (pipeline.Metric, error)

// ErrUnknownMetric: a metric name nobody registered (pipeline's).
var ErrUnknownMetric = pipeline.ErrUnknownMetric

// Register adds a metric by name to pipeline's metric registry: a config's
// engine.metric {"name": name, ...} is checked by f when the config is
// loaded and decodes to a pipeline.MetricConfig whose New calls f. It
// panics on an empty or duplicate name or a nil f.
func Register(name string, f Factory) {
	if f == nil {
		panic("metric: Register with a nil factory")
	}
	pipeline.RegisterMetric(name, func(raw json.RawMessage) (pipeline.MetricConfig, error) {
		c := Config{Name: name, raw: append(json.RawMessage(nil), raw...), f: f}
		if _, err := c.New(); err != nil { // the parameters, checked once at load
			return nil, err
		}
		return c, nil
	})
}

// Names lists the registered metrics, sorted.
func Names() []string { return pipeline.MetricNames() }

// Config is the pipeline.MetricConfig of a metric registered here.
type Config struct {
	Name string
	raw  json.RawMessage
	f    Factory
}

// MetricName is the registered name.
func (c Config) MetricName() string { return c.Name }

// New builds a new metric from the config's parameters.
func (c Config) New() (pipeline.Metric, error) {
	m, err := c.f(c.raw)
	if err != nil {
		return nil, fmt.Errorf("engine.metric: %w", err)
	}
	return m, nil
}

// New builds the metric a config's "metric" object names
// (pipeline.DecodeMetric, then New).
func New(raw json.RawMessage) (pipeline.Metric, error) {
	c, err := pipeline.DecodeMetric(raw)
	if err != nil {
		return nil, err
	}
	return c.New()
}

func init() {
	Register("accuracy", newAccuracy)
}

// Accuracy is top-k classification accuracy: a sample counts 1 when its
// integer label is among the k largest scores of the model's first output
// (by output name order, or Output when set).
type Accuracy struct {
	TopK   int    `json:"top_k"`
	Output string `json:"output"`

	last        float64
	correct, n  int
	metricName  string
	initialized bool
}

func newAccuracy(raw json.RawMessage) (pipeline.Metric, error) {
	a := &Accuracy{TopK: 1}
	var cfg struct {
		Name   string `json:"name"`
		TopK   *int   `json:"top_k"`
		Output string `json:"output"`
	}
	if err := pipeline.DecodeStrict(raw, &cfg, "engine.metric"); err != nil {
		return nil, err
	}
	if cfg.TopK != nil {
		a.TopK = *cfg.TopK
	}
	if a.TopK < 1 {
		return nil, fmt.Errorf("accuracy: top_k must be at least 1, got %d", a.TopK)
	}
	a.Output = cfg.Output
	return a, nil
}

// NewAccuracy returns a top-k accuracy metric.
func NewAccuracy(k int) *Accuracy { return &Accuracy{TopK: k} }

// Clone returns a new, reset accuracy metric with a's parameters.
func (a *Accuracy) Clone() pipeline.Metric { return &Accuracy{TopK: a.TopK, Output: a.Output} }

func (a *Accuracy) name() string {
	if a.TopK == 1 {
		return "accuracy"
	}
	return fmt.Sprintf("accuracy@top%d", a.TopK)
}

// Value is the accuracy of the last Update's sample, as POT's: a list of
// one value, 1 when the label was among the top k scores, else 0 (empty
// before any Update).
func (a *Accuracy) Value() map[string][]float64 {
	if a.n == 0 {
		return map[string][]float64{a.name(): nil}
	}
	return map[string][]float64{a.name(): {a.last}}
}

// AvgValue is the fraction of samples classified correctly since Reset.
func (a *Accuracy) AvgValue() map[string]float64 {
	if a.n == 0 {
		return map[string]float64{a.name(): 0}
	}
	return map[string]float64{a.name(): float64(a.correct) / float64(a.n)}
}

// HigherBetter is true for accuracy.
func (a *Accuracy) HigherBetter() bool { return true }

// Reset forgets every sample.
func (a *Accuracy) Reset() { a.correct, a.n, a.last = 0, 0, 0 }

// Attributes describes the metric for POT's get_attributes.
func (a *Accuracy) Attributes() map[string]pipeline.MetricAttributes {
	return map[string]pipeline.MetricAttributes{a.name(): {Direction: "higher-better", Type: "accuracy"}}
}

// Update scores one sample: annotation must be an integer class label.
func (a *Accuracy) Update(outputs map[string]pipeline.Tensor, annotation any) error {
	label, err := Label(annotation)
	if err != nil {
		return err
	}
	scores, err := a.scores(outputs)
	if err != nil {
		return err
	}
	if label < 0 || label >= len(scores) {
		return fmt.Errorf("accuracy: label %d outside the %d classes of the output", label, len(scores))
	}
	// The label is in the top k when fewer than k scores beat it; ties go
	// to the lower class index, as argmax does.
	target := scores[label]
	if target != target {
		return fmt.Errorf("accuracy: output score of class %d is NaN", label)
	}
	better := 0
	for i, s := range scores {
		if s > target || (s == target && i < label) {
			better++
		}
	}
	a.last = 0
	if better < a.TopK {
		a.last = 1
		a.correct++
	}
	a.n++
	return nil
}

func (a *Accuracy) scores(outputs map[string]pipeline.Tensor) ([]float32, error) {
	name := a.Output
	if name == "" {
		names := slices.Sorted(maps.Keys(outputs))
		if len(names) == 0 {
			return nil, errors.New("accuracy: the model has no output")
		}
		name = names[0]
	}
	t, ok := outputs[name]
	if !ok {
		return nil, fmt.Errorf("accuracy: no output %q; outputs: %s", name, strings.Join(slices.Sorted(maps.Keys(outputs)), ", "))
	}
	s := t.Float32s()
	if len(s) == 0 {
		return nil, fmt.Errorf("accuracy: output %q is empty", name)
	}
	return s, nil
}

// Label converts an annotation to a class index.
func Label(annotation any) (int, error) {
	switch v := annotation.(type) {
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case int32:
		return int(v), nil
	case uint8:
		return int(v), nil
	case float64:
		if v == float64(int(v)) {
			return int(v), nil
		}
	case json.Number:
		i, err := v.Int64()
		if err == nil {
			return int(i), nil
		}
	case nil:
		return 0, errors.New("accuracy: the sample has no annotation (set engine.annotations)")
	}
	return 0, fmt.Errorf("accuracy: annotation %v (%T) is not a class index", annotation, annotation)
}
