package worker

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
	_ "github.com/fleetcal/fleetcal/data" // registers the built-in data source types
	"github.com/fleetcal/fleetcal/pipeline"
)

// EnvTestSampleDelay is the test hook's variable (see the package comment).
const EnvTestSampleDelay = "FLEETCAL_WORKER_TEST_SAMPLE_DELAY"

// Options is what a worker binary adds to the command.
type Options struct {
	// Name is the command's name in --help and in errors (default "worker").
	Name string
	// WrapLoader, when set, wraps every data loader the worker opens (for
	// instrumentation or caching).
	WrapLoader func(pipeline.DataLoader) pipeline.DataLoader
	// Secret is the fleet secret, for workers started by a program that
	// holds it (in the coordinator's process); empty: --secret-file or
	// $FLEETCAL_SECRET.
	Secret string
}

// Main runs the worker command with os.Args until SIGINT or SIGTERM, and
// exits: 0 when it stopped on a signal, 1 on an error (one line on stderr),
// 2 on an internal error.
func Main(opts Options) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr, opts)
	stop()
	os.Exit(code)
}

// Run executes the command line args until ctx ends and returns the exit
// code. An error is one line on stderr: "<name>: <message>". Several Runs
// may serve shards in one process (tests do).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, opts Options) (code int) {
	if opts.Name == "" {
		opts.Name = "worker"
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "%s: internal error: %v\n", opts.Name, oneLine(fmt.Sprint(r)))
			code = 2
		}
	}()
	cmd := newCmd(ctx, stderr, opts)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", opts.Name, oneLine(err.Error()))
		return 1
	}
	return 0
}

func newCmd(ctx context.Context, stderr io.Writer, opts Options) *cobra.Command {
	cfg := cluster.WorkerConfig{}
	var logLevel string
	cmd := &cobra.Command{
		Use:           opts.Name + " --nats URL",
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
			cfg.Worker.WrapLoader, cfg.Worker.Secret = opts.WrapLoader, opts.Secret
			if v := os.Getenv(EnvTestSampleDelay); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%s=%q: %v", EnvTestSampleDelay, v, err)
				}
				wrap := opts.WrapLoader
				cfg.Worker.WrapLoader = func(l pipeline.DataLoader) pipeline.DataLoader {
					if wrap != nil {
						l = wrap(l)
					}
					return &delayLoader{l, d}
				}
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
