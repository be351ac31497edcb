// Package fastbias is POT's FastBiasCorrection and BiasCorrection: after
// quantization, each quantized Conv/Gemm's int32 bias is shifted so that
// the layer's mean output per channel matches the float model's.
// BiasCorrection (precise.go; DefaultQuantization with use_fast_bias false)
// measures every layer on every sample in one pass of its own; see precise.
//
// It runs after a quantizer in a pipeline (the quantized model carries its
// float Reference); DefaultQuantization runs it when use_fast_bias is true.
//
// Mode "fast" (the default) is POT's recipe and costs no pass of its own
// inside DefaultQuantization: MinMaxQuantization collects, in its
// statistics pass, the per-channel mean x̄ of the input of every Conv/Gemm
// it quantizes (LayoutFor, added with minmax.Algorithm.AddLayerStats; Layout
// lists every Conv/Gemm); then each layer is computed alone
// on its input filled with x̄, in float and quantized (dequantized weight,
// fake-quantized input, int32 bias), and the bias moves by the difference
// per output channel:
//
//	mm.AddLayerStats(fastbias.LayoutFor)
//	q, _ := mm.Run(ctx, fp)
//	q, _ = fb.RunWithStats(ctx, q, mm.Stats())
//
// Conv and Gemm are affine, so a layer's mean output on a constant input is
// its weight summed over the kernel times x̄: the layers are computed in
// float64 in Go, in a fixed order, with no ONNX Runtime session. The result
// depends on neither the calibrating CPU nor the number of workers (the
// means are averaged in sample-index order). Padding is left out of both
// terms of the difference, which drops only the border fraction times the
// quantization error; POT subtracts the quantized layer from the measured
// FP32 output mean, which would also keep the float layer's whole border
// effect (a layer's mean output differs from W·x̄ where the kernel reads
// zero padding).
//
// Mode "sequential" corrects the layers one at a time, in graph order, each
// measured on the whole model with every earlier correction applied: one
// pass over the subset per layer. Its INT8 means are measured on a copy of
// the model in which the measured layer and every weight an x86 integer
// kernel could saturate (beyond the 7-bit grid) are dequantized to float
// (simulate.go), so the output does not depend on the calibrating CPU.
// Pure Go: never imports cgo or NATS.
package fastbias
