package pipeline

import "fmt"

// MetricFeed updates a Metric with samples' outputs in ascending sample
// order, whatever order the outputs arrive in (the samples of a pass run
// in parallel, in process or on a fleet), so that a metric sees the same
// sequence of updates on any engine and any number of workers. It records
// each sample's values when asked (PredictOptions.MetricPerSample). It is
// not safe for concurrent use: an engine calls it under its own lock.
type MetricFeed struct {
	metric    Metric
	post      func(map[string]Tensor, map[string]any) (map[string]Tensor, error)
	perSample bool
	order     []int // every index of the pass, ascending
	next      int   // order[next] is the next sample for the metric
	pending   map[int]FeedItem
	results   []PerSampleMetric
	wrap      func(index int, meta map[string]any, err error) error
}

// FeedItem is one sample's outputs for a MetricFeed.
type FeedItem struct {
	// Skip marks an invalid sample left out of the pass: no update.
	Skip       bool
	Outputs    map[string]Tensor
	Annotation any
	// Meta is the sample's metadata, for postprocess and error messages.
	Meta map[string]any
}

// MetricFeedOptions configure a MetricFeed.
type MetricFeedOptions struct {
	// PerSample records each sample's values (PerSample).
	PerSample bool
	// Postprocess runs on a sample's outputs before the update (nil: none).
	Postprocess func(map[string]Tensor, map[string]any) (map[string]Tensor, error)
	// WrapError names the sample in an error (nil: "sample N: ...").
	WrapError func(index int, meta map[string]any, err error) error
}

// NewMetricFeed feeds m the samples of order (every index of the pass,
// ascending).
func NewMetricFeed(m Metric, order []int, o MetricFeedOptions) *MetricFeed {
	f := &MetricFeed{metric: m, post: o.Postprocess, perSample: o.PerSample, order: order,
		pending: map[int]FeedItem{}, wrap: o.WrapError}
	if f.wrap == nil {
		f.wrap = func(index int, _ map[string]any, err error) error { return fmt.Errorf("sample %d: %w", index, err) }
	}
	return f
}

// Add hands over sample index's item and updates the metric with every
// sample now in sequence. The first error (postprocess, metric) is
// returned wrapped with the sample; the caller stops feeding then.
func (f *MetricFeed) Add(index int, it FeedItem) error {
	f.pending[index] = it
	for f.next < len(f.order) {
		i := f.order[f.next]
		o, ok := f.pending[i]
		if !ok {
			break
		}
		delete(f.pending, i)
		f.next++
		if o.Skip {
			continue
		}
		outs := o.Outputs
		if f.post != nil {
			var err error
			if outs, err = f.post(outs, o.Meta); err != nil {
				return f.wrap(i, o.Meta, fmt.Errorf("postprocess: %w", err))
			}
		}
		if err := UpdateMetric(f.metric, i, outs, o.Annotation); err != nil {
			return f.wrap(i, o.Meta, fmt.Errorf("metric: %w", err))
		}
		if f.perSample {
			vals, err := SampleValues(f.metric)
			if err != nil {
				return f.wrap(i, o.Meta, err)
			}
			f.results = append(f.results, PerSampleMetric{Index: i, Values: vals})
		}
	}
	return nil
}

// Missing returns the first sample of the pass not delivered yet (ok
// false when every sample was).
func (f *MetricFeed) Missing() (index int, ok bool) {
	if f.next < len(f.order) {
		return f.order[f.next], true
	}
	return 0, false
}

// PerSample is the values recorded per sample, in sample order.
func (f *MetricFeed) PerSample() []PerSampleMetric { return f.results }
