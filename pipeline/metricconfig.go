package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"
)

// MetricConfig is a decoded engine.metric entry: the metric it names, with
// its parameters checked. New builds a new, reset metric (an engine's
// metric keeps state, so each user builds its own).
type MetricConfig interface {
	// MetricName is the name the metric is registered under.
	MetricName() string
	// New returns a new metric.
	New() (Metric, error)
}

// MetricDecoder decodes an engine.metric object of one metric (its "name"
// included); errors name the key ("engine.metric: unknown key ...").
type MetricDecoder func(raw json.RawMessage) (MetricConfig, error)

var metrics = NewRegistry[MetricDecoder]("pipeline: metric")

// RegisterMetric makes a metric available by name for engine.metric
// (package metric registers its built-in ones, and metric.Register calls
// it). It panics when name is empty or taken or d is nil.
func RegisterMetric(name string, d MetricDecoder) {
	if d == nil {
		panic("pipeline: RegisterMetric with a nil decoder")
	}
	metrics.Register(name, d)
}

// MetricNames lists the registered metrics, sorted.
func MetricNames() []string { return metrics.Names() }

// DecodeMetric decodes an engine.metric object through the registry, by
// its "name".
func DecodeMetric(raw json.RawMessage) (MetricConfig, error) {
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("engine.metric: want an object with \"name\": %w", err)
	}
	d, ok := metrics.Get(head.Name)
	if !ok {
		valid := strings.Join(MetricNames(), ", ")
		if valid == "" {
			valid = `none is registered (import _ "github.com/fleetcal/fleetcal/metric" registers the built-in ones)`
		}
		return nil, fmt.Errorf("engine.metric: %w %q; valid: %s", ErrUnknownMetric, head.Name, valid)
	}
	return d(raw)
}
