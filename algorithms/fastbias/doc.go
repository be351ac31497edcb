// Package fastbias is POT's FastBiasCorrection: after quantization, each
// quantized Conv/Gemm's int32 bias is shifted so that the layer's mean
// output per channel over the calibration subset matches the float model's.
//
// It runs after a quantizer in a pipeline (the quantized model carries its
// float Reference); DefaultQuantization runs it when use_fast_bias is true.
// The means are averaged in sample-index order, so the result does not
// depend on how samples were split. Pure Go: never imports cgo or NATS.
package fastbias
