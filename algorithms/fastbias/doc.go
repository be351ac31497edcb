// Package fastbias is POT's FastBiasCorrection: after quantization, each
// quantized Conv/Gemm's int32 bias is shifted so that the layer's mean
// output per channel over the calibration subset matches the float model's.
//
// It runs after a quantizer in a pipeline (the quantized model carries its
// float Reference); DefaultQuantization runs it when use_fast_bias is true.
// The means are averaged in sample-index order, so the result does not
// depend on how samples were split. The INT8 means are measured on a copy
// of the model in which the measured layer and every weight an x86 integer
// kernel could saturate (beyond the 7-bit grid) are dequantized to float
// (simulate.go): ONNX Runtime runs those in float instead of the
// calibrating CPU's integer kernels, which saturate on x86 CPUs without
// VNNI, so the correction does not learn one CPU's saturation and the
// output model does not depend on which CPU calibrated it. Pure Go: never imports cgo or NATS.
package fastbias
