// Package accuracyaware is POT's AccuracyAwareQuantization: quantize with a
// base algorithm, and when the metric drops more than maximal_drop, leave
// the most sensitive layers in float until it does not.
//
//	a, _ := accuracyaware.New(accuracyaware.Params{MaximalDrop: &drop}, env)
//	q, err := a.Run(ctx, floatModel)
//	rep := a.Report().(accuracyaware.Report) // metrics, ranking, reverted layers
//
// The steps, each measurement one Engine.Predict (spread over the workers
// by a cluster engine; this package never calls ONNX Runtime):
//
//  1. The FP32 model is evaluated once on every sample (metric and
//     per-sample values kept).
//  2. The base algorithm (DefaultQuantization = MinMaxQuantization +
//     FastBiasCorrection, or MinMaxQuantization) quantizes; its model is
//     evaluated on every sample. A drop ≤ maximal_drop ends here. With
//     convert_to_mixed_preset and the performance preset, the mixed preset
//     is tried next (one more statistics pass), and kept when its drop is
//     not larger.
//  3. Ranking (when the drop is too large): every model of the search is
//     written by minmax.Requantize from the statistics already collected
//     (no statistics pass) and without bias correction, which would cost a
//     statistics pass per corrected layer for each candidate. So the search
//     starts from the base model without bias correction, evaluated on
//     every sample. A subset of ranking_subset_size samples is chosen: the
//     metric_subset_ratio share of it among the samples that model
//     degrades most (largest per-sample drop, ties by index), the rest
//     spread evenly over the other samples. For each quantized layer
//     (minmax's QuantizedLayers: Conv, Gemm, MatMul, Add, pooling, ...) the
//     model with only that layer in float is evaluated on the subset; its
//     sensitivity is how much the metric recovers. Layers are ordered by
//     sensitivity, ties by node name.
//  4. Search: layers are reverted in that order, cumulatively, one per
//     iteration, up to max_iter_num, each step evaluated on every sample.
//     With use_prev_if_drop_increase a step that makes the drop larger is
//     undone and the next layer is tried. The search stops at
//     drop ≤ maximal_drop.
//  5. With DefaultQuantization, its bias correction (FastBiasCorrection, or
//     BiasCorrection with use_fast_bias false) then runs once on the
//     layers the search settled on, and that model is evaluated. The result
//     is the bias-corrected model if it is within maximal_drop, else the
//     search's model if it is; else the measured model with the smallest
//     drop (the initial one on ties). The model returned is always one that
//     was measured on every sample.
//
// The metric is the config's (AlgorithmEnv.Metric). Without one, with
// annotation_free, or with engine.metric {"name": "output_fidelity"}, it
// is metric.Fidelity: top-1 agreement with the FP32 model for classifier
// outputs, cosine similarity otherwise. Its references are the FP32
// outputs, recorded in step 1 by sample index (metric.Recorder); Update
// gets no index, so the evaluation relies on the Engine contract that
// Predict calls Update in ascending sample-index order, and builds each
// Fidelity with the references of exactly the sorted indices its sampler
// visits. Memory for the references is samples × output size. Samples an
// engine skips as invalid (engine.Options.SkipInvalidSamples) in the FP32
// pass are left out of every later evaluation.
//
// Determinism: subsets, ranking and steps depend only on metric values, and
// the engine's are independent of workers and shard order, so two runs
// write byte-identical models. Drops are compared with maximal_drop with a
// tolerance of 1e-9, so that 1.0 - 0.99 passes a maximal drop of 0.01.
//
// The package imports neither engine (cgo) nor cluster (NATS): it works
// through pipeline.Engine only.
//
// fleetcal's metric_subset_ratio differs from POT's, which only applies
// with predefined baseline metric values (not supported here): POT ranks on
// the hardest samples alone (ratio 1 here). tune_hyperparams is refused.
package accuracyaware
