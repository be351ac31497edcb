package pipeline

import (
	"context"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/reduce"
)

// Sample is one item of a data set: the model inputs by input name, and what
// the metric compares the outputs with.
type Sample struct {
	Inputs     map[string]Tensor
	Annotation any
	Metadata   map[string]any
}

// DataLoader gives random access to a data set (POT's DataLoader).
// Item must be safe for concurrent use and must return an error wrapping
// ErrIndexOutOfRange for an index outside [0, Len()).
type DataLoader interface {
	Len() int
	Item(ctx context.Context, i int) (Sample, error)
}

// MetricAttributes says how to read a metric: Direction is "higher-better"
// or "higher-worse"; Type is a free-form kind such as "accuracy".
type MetricAttributes struct {
	Direction string `json:"direction"`
	Type      string `json:"type"`
}

// Metric accumulates a quality measure over model outputs (POT's Metric).
// Update is called once per sample with that sample's outputs (by output
// name) and annotation; engines call it in ascending sample-index order.
//
// Value and AvgValue follow POT's value and avg_value. Value is the
// metric of the samples of the last Update, by metric name, a list with
// one value per sample (POT: one per sample of the batch; engines update
// one sample at a time, so each list holds one value, and that value is
// what PredictResult.PerSample records with MetricPerSample). AvgValue is
// the metric aggregated over every sample since Reset (the mean for an
// accuracy), what PredictResult.Metrics holds. Before any Update, Value
// may be empty.
type Metric interface {
	// Value is the per-sample values of the last Update, by metric name.
	Value() map[string][]float64
	// AvgValue is the metric aggregated over every Update since Reset.
	AvgValue() map[string]float64
	HigherBetter() bool
	Update(outputs map[string]Tensor, annotation any) error
	Reset()
	Attributes() map[string]MetricAttributes
}

// SampleUpdater is implemented by metrics that need each sample's index
// (to compare with per-sample references, or to record outputs): engines
// call UpdateSample instead of Update for them, in ascending index order.
type SampleUpdater interface {
	UpdateSample(index int, outputs map[string]Tensor, annotation any) error
}

// UpdateMetric updates m with one sample, through UpdateSample when m
// implements SampleUpdater.
func UpdateMetric(m Metric, index int, outputs map[string]Tensor, annotation any) error {
	if su, ok := m.(SampleUpdater); ok {
		return su.UpdateSample(index, outputs, annotation)
	}
	return m.Update(outputs, annotation)
}

// Sampler yields the batches of sample indices an Engine visits.
type Sampler interface {
	Batches() [][]int
}

// PredictOptions is what Predict does: which statistics to collect, over
// which samples, and whether to keep the metric per sample.
type PredictOptions struct {
	// Model, when set, is the model this call runs instead of the one
	// SetModel set (which it leaves as it is): calls that carry their
	// models, and metrics of their own, may run at the same time on one
	// engine, so that a fleet overlaps their tails.
	Model *model.CompressedModel
	// StatsLayout names the tensors to observe and the statistics on each;
	// nil collects nothing.
	StatsLayout StatsLayout
	// Sampler chooses the samples; nil visits every sample, batch size 1.
	Sampler Sampler
	// Metric is updated with every sample's outputs; nil skips evaluation.
	Metric Metric
	// MetricPerSample keeps each sample's metric value in the result.
	MetricPerSample bool
	// Progress, when set, is called after each batch with the samples done so far.
	Progress func(done, total int)
}

// ConcurrentEngine is implemented by engines whose Predict honours
// PredictOptions.Model and may run such calls at the same time.
// ConcurrentPredicts is how many are worth keeping in flight (1: none
// gained).
type ConcurrentEngine interface {
	Engine
	ConcurrentPredicts() int
}

// MetricCloner is implemented by metrics that can make a new, reset metric
// of the same kind and parameters: callers that run several Predicts at
// once give each its own (a Metric holds the state of one pass).
type MetricCloner interface {
	Clone() Metric
}

// PerSampleMetric is one sample's metric values: Metric.Value after the
// sample's Update, one value per metric name (SampleValues).
type PerSampleMetric struct {
	Index  int
	Values map[string]float64
}

// PredictResult is what Predict returns.
type PredictResult struct {
	// Metrics is Metric.AvgValue after the pass (nil without a metric).
	Metrics map[string]float64
	// PerSample holds each sample's metric, in index order, when asked for.
	PerSample []PerSampleMetric
	// Stats holds the statistics of StatsLayout, per sample, keyed by index.
	Stats *reduce.Set
	// Samples is the number of samples run.
	Samples int
	// Skipped lists, ascending, the samples left out because their data
	// held NaN or Inf (only when the engine was asked to skip them).
	Skipped []int
}

// Engine runs a model over a data set (POT's Engine). The ONNX Runtime engine
// runs in this process; the cluster engine spreads the same work over workers.
//
// Predict may be called from several goroutines when each call carries its
// model (PredictOptions.Model) and its own Metric.
type Engine interface {
	// SetModel makes m the model of later Predicts; ctx bounds what it
	// blocks on (loading sessions, uploading the model to a fleet).
	SetModel(ctx context.Context, m *model.CompressedModel) error
	Predict(ctx context.Context, opts PredictOptions) (PredictResult, error)
}
