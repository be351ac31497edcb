// Package defaultq is POT's DefaultQuantization: MinMaxQuantization followed
// by FastBiasCorrection (use_fast_bias, on by default) or, with
// use_fast_bias false, by BiasCorrection (as in POT), with the preset
// "performance" (symmetric) or "mixed" (asymmetric activations).
package defaultq
