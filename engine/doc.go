// Package engine runs ONNX models with ONNX Runtime (CPU) and collects
// statistics on their activations: fleetcal's pipeline.Engine for one
// process, POT's IEEngine.
//
//	if err := engine.Init(); err != nil { ... }      // loads libonnxruntime once
//	eng, err := engine.New(loader, engine.Options{Threads: 1, Requests: 2})
//	defer eng.Close()
//	if err := eng.SetModel(ctx, m); err != nil { ... } // m from model.Load
//	res, err := eng.Predict(ctx, pipeline.PredictOptions{
//		StatsLayout: pipeline.StatsLayout{"relu_0_out": {{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}}},
//		Sampler:     pipeline.NewBatchSampler(loader.Len(), 4, nil),
//	})
//	mins := res.Stats.Get("relu_0_out", "min") // one value per sample, by index
//
// The library is found by LibraryPath: $ONNXRUNTIME_LIB, else
// .deps/onnxruntime/libonnxruntime.so.1 (installed by scripts/setup.sh) above
// the working directory or the executable, else the system's library path.
//
// # Statistics
//
// The tensors of a StatsLayout become extra outputs of a copy of the model
// (or, with StrategyInGraph, inputs of appended ReduceMin/ReduceMax nodes).
// Every statistic is computed per sample, also when a batch holds several
// samples (axis 0 is the batch axis), and recorded with reduce.Set.Add under
// the sample's index. Min and max are exact: float32 values converted to
// float64, with -0 reported as +0. NaN and ±Inf are counted in
// Set.NonFinite and excluded; a statistic with no finite value to compute
// it from (a sample, or a channel, made only of NaN/Inf) is not recorded for
// that sample. Mean is a float64 sum in element order; quantiles interpolate
// linearly between ranks like numpy's default. Registered statistics
// (pipeline.RegisterStatistic) get each sample's float32 activation, NaN
// and ±Inf included, and are recorded by the merge they declared; a
// layout naming one not registered in this process fails Predict before
// any inference (ErrBadStats wrapping pipeline.ErrUnknownStatistic).
//
// Two strategies compute min/max-like statistics (Options.Strategy).
// StrategyGo, the default, exposes each observed activation as a model
// output written into buffers reused from one inference to the next, and
// reduces it in one vectorized pass (C, AVX2 when available) that also
// detects NaN/±Inf. StrategyInGraph appends ReduceMin/ReduceMax/ReduceSum
// nodes right after each producer so only small tensors leave ONNX Runtime;
// its per-node cost makes it slower on CNNs (see BenchmarkCalibration). Both
// skip the output of a Relu whose input is observed too: Relu is monotonic
// and exact, so its min, max and channel ranges are the input's clamped at
// 0. Whenever a shortcut cannot see NaN/±Inf exactly (in-graph reductions,
// derived Relu statistics), the samples concerned are rerun with every
// tensor exposed, so results are the same bit for bit whatever the strategy.
//
// # Batches and parallel requests
//
// When every model input has a dynamic axis 0, the samples of a sampler batch
// are concatenated along it and run at once; otherwise they run one by one.
// Options.Requests inferences run in parallel on one shared session (ONNX
// Runtime's Run is thread-safe, and a shared session measured no slower
// than one session per request); the metric is updated in sample-index
// order and statistics are sorted by index, so results do not depend on
// Requests. Every input is checked against the model (name, element type,
// fixed dimensions) before ONNX Runtime sees it.
//
// For a cascade (model.CompressedModel with several stages) the stages run
// in order on each batch; a stage's outputs feed later stages' inputs of
// the same name, statistics may name a tensor of any stage (the first
// stage holding a name wins), and the metric sees the outputs of every
// stage, by name.
//
// Sessions built for a statistics layout are kept until SetModel or Close,
// one set per distinct layout.
//
// engine is the only package that imports onnxruntime_go (cgo). It must
// never import nats.go (cluster/) and holds no global state besides the
// ONNX Runtime environment.
//
// # Types, latency, kernels, the CPU
//
// Every tensor's element type comes from the model's declarations, else
// from model.InferTypes: a statistic of a tensor that is not float32 is
// refused (ErrBadStats) before ONNX Runtime sees the model. Inputs may be
// 0-d (fed as ONNX Runtime scalars, never batched).
//
// MeasureLatency times models the way an independent client would (plain
// sessions, default options but the thread count, models alternated
// round by round) and reports medians and the spread of the per-round
// ratios (MeasureModelLatency: the first stage of each CompressedModel,
// on one sample of a data loader); ProfileKernels returns ONNX Runtime's own profile (which kernel
// ran each node: QLinearConv, or a float Conv on dequantized weights);
// HostCPU names the processor and the features that decide the INT8
// kernels (VNNI or not).
package engine
