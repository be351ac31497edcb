package main

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fleetcal/fleetcal/app"
	"github.com/fleetcal/fleetcal/cluster"
)

func init() { register(newQuantizeCmd) }

func newQuantizeCmd() *cobra.Command {
	var o app.QuantizeOptions
	var logLevel string
	cmd := &cobra.Command{
		Use:   "quantize -c CONFIG -o OUTPUT_DIR",
		Short: "Calibrate and quantize a model to INT8 (QDQ ONNX) as the config says",
		Long: `Calibrate and quantize a model to INT8 (QDQ ONNX) as the config says.

OUTPUT_DIR receives <model_name>.onnx (one per cascade stage, with .onnx.data
where the input had external weights), report.json and report.html with
report_files/, written as a set: everything is staged first, then renamed
into place; a failed or interrupted run leaves OUTPUT_DIR as it was, a
successful one removes the files of the previous run it did not write again
(listed in OUTPUT_DIR/.fleetcal-outputs). A non-empty folder fleetcal did not
write is refused unless --force.

SIGINT or SIGTERM stops the run: its shards leave the work queue, workers
drop it, temporary folders are removed; exit 130 (143 for SIGTERM). A second
signal exits at once.`,
		Args: cobra.NoArgs,
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
	f.StringVarP(&o.OutputDir, "output", "o", "", "output folder for <model_name>.onnx, report.json and report.html, written as a set: a failed run leaves it as it was, a new run replaces every file of the previous one")
	f.IntVar(&o.Workers, "workers", 0, "parallel inference workers (default: one per CPU core; at most 4 per core)")
	f.BoolVar(&o.SkipEvaluation, "skip-eval", false, "skip the FP32/INT8 metric and latency comparison")
	f.BoolVar(&o.Force, "force", false, "write into OUTPUT_DIR even if it holds files fleetcal did not write (they are kept; files of the same names are replaced)")
	f.BoolVar(&o.ReportHTML, "report-html", true, "write OUTPUT_DIR/report.html with histograms of the quantized activations (--report-html=false: skip)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl := &o.Fleet
	f.StringVar(&fl.NATS, "nats", "", "NATS URL of a fleet whose workers calibrate (default: embedded server and --workers local workers)")
	f.StringVar(&fl.Listen, "listen", "", "address the embedded NATS server listens on for remote workers; they join with --user/--password or --nkey, or the generated credentials logged once")
	f.StringVar(&fl.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this host:port")
	f.IntVar(&fl.ShardSize, "shard-size", 0, "samples per shard (default 16)")
	f.BoolVar(&fl.ShipData, "ship-data", false, "send the calibration data to workers through the NATS Object Store (no shared storage needed)")
	f.StringVar(&fl.SecretFile, "secret-file", "", "file holding the fleet secret shared with the workers (default: $"+cluster.EnvSecret+"; required with --nats, generated otherwise)")
	f.BoolVar(&fl.InProcess, "in-process", false, "calibrate in this process with ONNX Runtime, without NATS")
	f.StringVar(&fl.RunID, "run-id", "", "name the run on the --nats server and make it resumable: the same command started again after the coordinator died reads back the results already stored and computes only the rest")
	addConnFlags(f, &fl.Conn)
	return cmd
}

// addConnFlags adds the NATS credential and TLS flags.
func addConnFlags(f *pflag.FlagSet, c *cluster.ConnOptions) {
	f.StringVar(&c.User, "user", "", "NATS user (with --nats: this client's; with the embedded server: the remote workers')")
	f.StringVar(&c.Password, "password", "", "NATS password (with --user)")
	f.StringVar(&c.Token, "token", "", "NATS token (--nats only)")
	f.StringVar(&c.CredsFile, "creds", "", "NATS .creds file (--nats only)")
	f.StringVar(&c.NKeyFile, "nkey", "", "NATS NKey seed file (with --nats: this client's; with the embedded server: the remote workers')")
	f.StringVar(&c.TLSCA, "tls-ca", "", "CA file to verify the NATS server")
	f.StringVar(&c.TLSCert, "tls-cert", "", "client certificate file for NATS")
	f.StringVar(&c.TLSKey, "tls-key", "", "client key file for NATS")
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func printSummary(w io.Writer, r *app.Report) {
	switch total := r.StageSeconds["total"]; {
	case r.NothingQuantized != "":
		fmt.Fprintf(w, "nothing quantized in %s: the output is the float model (%s) in %.1fs\n", r.Model, r.NothingQuantized, total)
	default:
		fmt.Fprintf(w, "quantized %s on %d calibration samples (of %d) in %.1fs\n", r.Model, r.CalibrationSamples, r.Samples, total)
	}
	switch {
	case r.NATS != "" && r.LocalWorkers > 0:
		fmt.Fprintf(w, "  calibrated by %d local workers over embedded NATS at %s\n", r.LocalWorkers, r.NATS)
	case r.NATS != "":
		fmt.Fprintf(w, "  calibrated by the fleet at %s\n", r.NATS)
	}
	for _, f := range r.Files {
		fmt.Fprintf(w, "  wrote %s\n", f.Model)
		if f.Weights != "" {
			fmt.Fprintf(w, "  wrote %s\n", f.Weights)
		}
	}
	if r.HTMLReport != "" {
		fmt.Fprintf(w, "  wrote %s\n", r.HTMLReport)
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
