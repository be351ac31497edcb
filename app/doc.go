// Package app is what the coordinator's commands do, as library functions:
// cmd/coordinator parses flags into QuantizeOptions or EvaluateOptions,
// calls Validate, and calls Quantize or Evaluate.
//
//	rep, err := app.Quantize(ctx, app.QuantizeOptions{Config: "config.json", OutputDir: "out"})
//
// It wires the packages together (config, model, data, metric, engine,
// algorithms) and writes the output files as a set (package outputs: a
// failed or interrupted run leaves the output folder as it was); the logic
// of each step lives in those packages.
package app
