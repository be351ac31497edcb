// Package qmath is the arithmetic of post-training INT8 quantization: POT's
// range estimators, which turn merged per-sample statistics into a real
// range, and the ONNX Runtime conventions that turn a range into the scale
// and zero point of a QuantizeLinear/DequantizeLinear pair.
//
// An activation goes from configuration to QDQ parameters in four steps:
//
//	// 1. Resolve POT's range_estimator config (preset + overrides).
//	re := qmath.RangeEstimator{Preset: "quantile"}
//	minEst, maxEst, err := re.Resolve(false) // asymmetric
//
//	// 2. Ask the engine for the per-sample statistics they need, folded
//	// over samples where the aggregator allows (mean, min, max).
//	layout := pipeline.StatsLayout{"conv1_out": {minEst.StatSpec(), maxEst.StatSpec()}}
//	res, err := eng.Predict(ctx, pipeline.PredictOptions{StatsLayout: layout, ...})
//
//	// 3. Aggregate them over samples (exact sums: deterministic).
//	lo, hi, err := qmath.ActivationRange(minEst, maxEst, res.Stats, "conv1_out")
//
//	// 4. Scale and zero point for the activation's uint8 QDQ pair.
//	scale, zp, err := qmath.Compute(lo, hi, qmath.ActivationSpec(false, false))
//
// In symmetric mode the min statistic only decides the sign, as in POT:
// Compute(0, hi, qmath.ActivationSpec(true, lo >= 0)).
//
// Weights are exact, taken from the initializer, and quantized per output
// channel; the bias follows from the input and weight scales:
//
//	q, wScales, _, err := qmath.QuantizeWeights(w, []int64{64, 3, 3, 3}, 0, qmath.WeightSpec(false))
//	qb, bScales, err := qmath.QuantizeBias(bias, scale, wScales)
//
// Choices, and why:
//   - Activations are uint8 everywhere: asymmetric with a computed zero
//     point, symmetric non-negative with zero point 0, symmetric signed with
//     zero point 128 (the int8 grid shifted by 128), because ONNX Runtime's
//     x86 kernels take uint8 activations times int8 weights, and one element
//     type lets Q/DQ pairs meet across Concat or Add.
//   - Weights are int8, symmetric, zero point 0, [-127, 127]; reduced range
//     is 7 bits, [-64, 63], against vpmaddubsw saturation on AVX2 without VNNI.
//   - A zero range gives scale 1, as ONNX Runtime's quantizer does: 0 stays
//     exact and bias scales stay normal numbers.
//   - Rounding is half to even everywhere (zero points, QuantizeLinear, bias).
//
// The package is pure: it must never import cgo, onnxruntime_go, NATS or the
// clock, and never iterates a map where order could reach a result.
package qmath
