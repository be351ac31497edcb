// Package pipeline is the POT API in Go: the interfaces the rest of fleetcal is
// written against and the types that travel between them.
//
//   - DataLoader: Len and Item(ctx, i) → Sample{Inputs, Annotation, Metadata}
//     (POT's DataLoader with __len__ and __getitem__).
//   - Metric: Value, AvgValue, HigherBetter, Update, Reset, Attributes
//     (Value a list per sample of the last Update, AvgValue the aggregate,
//     as POT's value and avg_value).
//   - Engine: SetModel(ctx, m) and Predict(ctx, PredictOptions) → PredictResult with the
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
// The config file is decoded once (LoadConfig): Config.Model is a
// model.Config, engine.data_source a DataSource (Open, Files, Rebase)
// decoded through the data source registry, and relative paths are
// resolved then against the config file's folder. Package data registers
// the built-in data source types ("npy", "images", "idx") when imported:
//
//	import _ "github.com/fleetcal/fleetcal/data"
//
// (an unknown type's error says so when none is registered).
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
// An algorithm's report (Reporter) goes into report.json as it is; a
// report that also implements Summarizer contributes to the run's Summary
// (what was quantized, what was left in float and why, what the
// accuracy-aware search did), which the commands and the HTML report read
// through Summarize without knowing the algorithms:
//
//	s := pipeline.Summarize(p.Reports())
//	if s.Quantization != nil { fmt.Println(len(s.Quantization.Layers), "layers quantized") }
//
// The package is pure Go: it must never import onnxruntime_go (engine/) or
// nats.go (cluster/); an Engine may run in this process or on a fleet.
package pipeline
