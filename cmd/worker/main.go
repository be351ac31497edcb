// Command worker joins a fleetcal NATS JetStream cluster and serves
// calibration shards: it pulls one shard at a time per --concurrency slot,
// runs it with ONNX Runtime and stores its partial statistics. SIGTERM or
// SIGINT stops it gracefully: the shard in progress is handed back for
// immediate redelivery, and the folder where it downloads shipped data
// ($TMPDIR/fleetcal-downloads-*) is removed; a worker that starts removes
// the folders of killed workers. It drops the shards of runs that are
// gone (ended by their coordinator) without computing them.
//
//	FLEETCAL_SECRET=... worker --nats nats://coordinator:4222 --user fleet --password secret \
//	       --concurrency 2 --threads 2 --metrics-addr :9102
//
// The fleet secret (--secret-file or $FLEETCAL_SECRET) is the coordinator's:
// run specs, shards and results are authenticated with keys derived from it.
//
// The logic lives in package cluster (cluster.WorkerConfig, cluster.RunWorker).
//
// Test hook: when FLEETCAL_WORKER_TEST_SAMPLE_DELAY holds a duration (e.g.
// "200ms"), the worker sleeps that long before reading each sample. It
// exists only so that tests can kill a worker in the middle of a shard;
// never set it in production.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/pipeline"
)

// envSampleDelay is the test hook's variable (see the package comment).
const envSampleDelay = "FLEETCAL_WORKER_TEST_SAMPLE_DELAY"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code. An error is one
// line on stderr: "worker: <message>".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "worker: internal error: %v\n", oneLine(fmt.Sprint(r)))
			code = 2
		}
	}()
	cmd := newCmd(ctx, stderr)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(stderr, "worker: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

func newCmd(ctx context.Context, stderr io.Writer) *cobra.Command {
	cfg := cluster.WorkerConfig{}
	var logLevel string
	cmd := &cobra.Command{
		Use:           "worker --nats URL",
		Short:         "Serve fleetcal calibration shards from a NATS JetStream cluster",
		Args:          cobra.NoArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			cfg.Worker.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			if v := os.Getenv(envSampleDelay); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%s=%q: %v", envSampleDelay, v, err)
				}
				cfg.Worker.WrapLoader = func(l pipeline.DataLoader) pipeline.DataLoader { return &delayLoader{l, d} }
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return cluster.RunWorker(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NATS, "nats", "", "NATS server URL, e.g. nats://host:4222 (comma-separated for several)")
	f.IntVar(&cfg.Worker.Concurrency, "concurrency", 1, "shards run in parallel (at most 4 per CPU core)")
	f.IntVar(&cfg.Worker.Threads, "threads", 1, "ONNX Runtime intra-op threads per shard (capped to the CPU cores, at most 4 per core)")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on host:port/metrics (and \"ok\" on /healthz for probes)")
	f.StringVar(&cfg.Worker.Name, "name", "", "worker name in logs and errors (default: host name and a random suffix)")
	f.StringVar(&cfg.SecretFile, "secret-file", "", "file holding the fleet secret shared with the coordinator (default: $"+cluster.EnvSecret+"); results are authenticated with it")
	f.StringVar(&cfg.Conn.User, "user", "", "NATS user (with --password)")
	f.StringVar(&cfg.Conn.Password, "password", "", "NATS password")
	f.StringVar(&cfg.Conn.Token, "token", "", "NATS token")
	f.StringVar(&cfg.Conn.CredsFile, "creds", "", "NATS user credentials file")
	f.StringVar(&cfg.Conn.NKeyFile, "nkey", "", "NATS NKey seed file")
	f.StringVar(&cfg.Conn.TLSCA, "tls-ca", "", "CA certificates (PEM) to verify the server")
	f.StringVar(&cfg.Conn.TLSCert, "tls-cert", "", "client certificate (PEM, with --tls-key)")
	f.StringVar(&cfg.Conn.TLSKey, "tls-key", "", "client key (PEM)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// delayLoader is the test hook: it sleeps before each sample.
type delayLoader struct {
	pipeline.DataLoader
	d time.Duration
}

func (l *delayLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	t := time.NewTimer(l.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return pipeline.Sample{}, ctx.Err()
	}
	return l.DataLoader.Item(ctx, i)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
