package main

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fleetcal/fleetcal/app"
)

func init() { register(newQuantizeCmd) }

func newQuantizeCmd() *cobra.Command {
	var o app.QuantizeOptions
	var logLevel string
	cmd := &cobra.Command{
		Use:   "quantize -c CONFIG -o OUTPUT_DIR",
		Short: "Calibrate and quantize a model to INT8 (QDQ ONNX) as the config says",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			o.Log, o.Progress = log, cmd.ErrOrStderr()
			if err := o.Validate(); err != nil {
				return err
			}
			rep, err := app.Quantize(cmd.Context(), o)
			if err != nil {
				return err
			}
			printSummary(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Config, "config", "c", "", "POT config file (JSON or YAML)")
	f.StringVarP(&o.OutputDir, "output", "o", "", "output folder for <model_name>.onnx and report.json")
	f.IntVar(&o.Workers, "workers", 0, "parallel inference workers (default: one per CPU core)")
	f.BoolVar(&o.SkipEvaluation, "skip-eval", false, "skip the FP32/INT8 metric and latency comparison")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func printSummary(w io.Writer, r *app.Report) {
	fmt.Fprintf(w, "quantized %s on %d calibration samples in %.1fs\n", r.Model, r.Samples, r.StageSeconds["total"])
	for _, f := range r.Files {
		fmt.Fprintf(w, "  wrote %s\n", f.Model)
		if f.Weights != "" {
			fmt.Fprintf(w, "  wrote %s\n", f.Weights)
		}
	}
	if r.FP32 != nil && r.INT8 != nil {
		for _, k := range slices.Sorted(maps.Keys(r.FP32.Metrics)) {
			fmt.Fprintf(w, "  %-12s FP32 %.4f  INT8 %.4f  (%+.2f points)\n", k, r.FP32.Metrics[k], r.INT8.Metrics[k],
				100*(r.INT8.Metrics[k]-r.FP32.Metrics[k]))
		}
		fmt.Fprintf(w, "  latency      FP32 %.3f ms  INT8 %.3f ms  (%.2fx, 1 thread, batch 1)\n",
			r.FP32.LatencyMs, r.INT8.LatencyMs, r.FP32.LatencyMs/r.INT8.LatencyMs)
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "  warnings:\n    %s\n", strings.Join(r.Warnings, "\n    "))
	}
}
