// Package defaultq is POT's DefaultQuantization: MinMaxQuantization followed
// by FastBiasCorrection (use_fast_bias, on by default), with the preset
// "performance" (symmetric) or "mixed" (asymmetric activations).
package defaultq
