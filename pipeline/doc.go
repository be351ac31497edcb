// Package pipeline is the POT API in Go: the interfaces the rest of fleetcal is
// written against and the types that travel between them.
//
//   - DataLoader: Len and Item(ctx, i) → Sample{Inputs, Annotation, Metadata}
//     (POT's DataLoader with __len__ and __getitem__).
//   - Metric: Value, AvgValue, HigherBetter, Update, Reset, Attributes
//     (Value a list per sample of the last Update, AvgValue the aggregate,
//     as POT's value and avg_value).
//   - Engine: SetModel and Predict(ctx, PredictOptions) → PredictResult with the
//     metric and the statistics asked for in a StatsLayout.
//   - Sampler / BatchSampler: which sample indices are visited, in which batches.
//
// A typical statistics pass:
//
//	layout := pipeline.StatsLayout{"conv1_out": {{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}}}
//	res, err := eng.Predict(ctx, pipeline.PredictOptions{
//		StatsLayout: layout,
//		Sampler:     pipeline.NewBatchSampler(loader.Len(), 1, nil),
//	})
//	mins := res.Stats.Get("conv1_out", pipeline.StatSpec{Kind: pipeline.StatMin}.Key())
//
// Statistics of the user's own are registered by name (RegisterStatistic,
// POT's stats_layout {'node': {'stat': fn}}) with the rule their results
// merge by, per sample or an exact fold, and asked for in a layout by name:
//
//	pipeline.RegisterStatistic("l1", pipeline.Statistic{Compute: meanAbs})
//	layout := pipeline.StatsLayout{"conv1_out": {{Kind: "l1"}}}
//
// Algorithms are registered by name (RegisterAlgorithm) and built by
// NewAlgorithm or Create (POT's create_pipeline); the built-in ones register
// when their packages are imported, all at once with
//
//	import _ "github.com/fleetcal/fleetcal/algorithms/all"
//
// (pipeline cannot import them itself: they are written against it).
//
// The package is pure Go: it must never import onnxruntime_go (engine/) or
// nats.go (cluster/); an Engine may run in this process or on a fleet.
package pipeline
