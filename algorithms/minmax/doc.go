// Package minmax is POT's MinMaxQuantization: it collects per-sample range
// statistics of every activation a QDQ model quantizes, aggregates them
// with POT's range estimators, and writes QuantizeLinear/DequantizeLinear
// pairs, int8 weights (per channel for Conv) and int32 biases.
//
//	a, _ := minmax.New(minmax.Params{Preset: "performance"}, env)
//	q, err := a.Run(ctx, floatModel) // q.Reference is the prepared float model
//
// The plan (which tensors get Q/DQ) depends only on the graph and, under
// the cost rule (min_macs_per_element, plan.go), the shapes of calibration
// sample 0: never on timing, so the output is the same on any CPU or
// fleet. Pure Go, never imports cgo or NATS.
package minmax
