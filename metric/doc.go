// Package metric holds fleetcal's built-in metrics behind pipeline.Metric and
// a registry by name, so a config's "metric": {"name": "accuracy", "top_k": 1}
// builds one:
//
//	m, err := metric.New(json.RawMessage(`{"name": "accuracy", "top_k": 5}`))
//	m.Update(outputs, annotation) // per sample
//	m.Value()                     // {"accuracy@top5": [1]}: the last Update's sample
//	m.AvgValue()                  // {"accuracy@top5": 0.93}: every sample since Reset
//
// The metrics register in pipeline's metric registry when the package is
// imported, so that pipeline.LoadConfig decodes engine.metric, checking its
// keys and values, to a pipeline.MetricConfig whose New builds the metric.
// Register your own with Register; Names lists them for error messages.
// The package is pure Go: it must never import onnxruntime_go or nats.go.
package metric
