// Package app is what the coordinator's commands do, as library functions:
// cmd/coordinator parses flags into QuantizeOptions or EvaluateOptions,
// calls Validate, and calls Quantize or Evaluate.
//
//	rep, err := app.Quantize(ctx, app.QuantizeOptions{Config: "config.json", OutputDir: "out"})
//
// It wires the packages together (config, model, data, metric, engine,
// algorithms) and writes the output files as a set (package outputs: a
// failed or interrupted run leaves the output folder as it was); the logic
// of each step lives in those packages:
//
//   - job.go opens what a config names; quantize.go runs a quantize job;
//     stages.go a cascade whose stages have their own data.
//   - fleet.go is where calibration runs: the fleet's actors (local workers,
//     /metrics) run under one errgroup with the job (fleet.Run, fleet.run),
//     so a failing local worker fails the job at once with its error.
//   - report.go is report.json; what it says of the algorithms comes from
//     their reports through pipeline.Summarize (no algorithm is named here).
//     htmlreport.go hands the same summary to package report, whose
//     Histograms pass runs on the fleet; latency is engine.MeasureModelLatency.
//   - outputs.go writes the set (outputs.Set, outputs.WriteFile: the one
//     atomic writer); logging.go keeps the warnings for report.json.
package app
