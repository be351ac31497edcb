package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/fleetcal/fleetcal/engine"
)

// WorkerConfig is what `worker` runs: where NATS is, how to authenticate,
// the worker's options and where to serve its metrics.
type WorkerConfig struct {
	// NATS is the server URL (comma-separated for several).
	NATS string
	Conn ConnOptions
	// Worker: Name, Concurrency, Threads, Log, WrapLoader are used;
	// Metrics is set by RunWorker.
	Worker WorkerOptions
	// MetricsAddr, when set, serves /metrics on this host:port.
	MetricsAddr string
	// SecretFile holds the fleet secret (Worker.Secret); Validate loads it
	// from there or from $FLEETCAL_SECRET when Worker.Secret is empty.
	SecretFile string
}

// Validate checks the configuration before anything connects.
func (c *WorkerConfig) Validate() error {
	if strings.TrimSpace(c.NATS) == "" {
		return fmt.Errorf("%w: --nats URL is required", ErrBadSpec)
	}
	if c.Worker.Concurrency < 1 {
		return fmt.Errorf("%w: --concurrency %d: want at least 1", ErrBadSpec, c.Worker.Concurrency)
	}
	if c.Worker.Threads < 1 {
		return fmt.Errorf("%w: --threads %d: want at least 1", ErrBadSpec, c.Worker.Threads)
	}
	if err := c.checkParallelism(); err != nil {
		return err
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("%w: --metrics-addr %q: %v", ErrBadSpec, c.MetricsAddr, err)
		}
	}
	if err := c.Conn.Validate(); err != nil {
		return err
	}
	if c.Worker.Secret == "" {
		s, err := LoadSecret(c.SecretFile)
		if err != nil {
			return err
		}
		if s == "" {
			return fmt.Errorf("%w: the fleet secret is required: --secret-file FILE or $%s (the coordinator's; a coordinator with --listen logs it)", ErrBadSpec, EnvSecret)
		}
		c.Worker.Secret = s
	}
	return nil
}

// RunWorker connects to NATS, serves metrics when asked and runs a worker
// until ctx ends (then it hands back its shard and returns nil) or
// something fails.
func RunWorker(ctx context.Context, cfg WorkerConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Conn.Name == "" {
		cfg.Conn.Name = "fleetcal-worker"
		if cfg.Worker.Name != "" {
			cfg.Conn.Name += " " + cfg.Worker.Name
		}
	}
	var ln net.Listener // opened first: a busy address fails at once
	if cfg.MetricsAddr != "" {
		var err error
		if ln, err = ListenMetrics(ctx, cfg.MetricsAddr); err != nil {
			return err
		}
		defer ln.Close()
	}
	nc, err := Connect(ctx, cfg.NATS, cfg.Conn)
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Worker.Metrics = NewWorkerMetrics(reg)
	w, err := NewWorker(nc, cfg.Worker)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if ln != nil {
		g.Go(func() error { return serveMetrics(gctx, ln, reg) })
	}
	g.Go(func() error {
		err := w.Run(gctx)
		if err == nil && ctx.Err() == nil {
			// The worker stopped because the metrics server failed;
			// that error is the one g.Wait returns.
			return nil
		}
		return err
	})
	return g.Wait()
}

// checkParallelism checks --concurrency and --threads against the machine
// (engine.CheckWorkers, engine.CheckThreads): too many is an error, more
// threads than cores are capped, and both are warned about in the log.
func (c *WorkerConfig) checkParallelism() error {
	warn, err := engine.CheckWorkers("--concurrency", c.Worker.Concurrency)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	threads, twarn, err := engine.CheckThreads("--threads", c.Worker.Threads)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	c.Worker.Threads = threads
	for _, w := range []string{warn, twarn} {
		if w != "" && c.Worker.Log != nil {
			c.Worker.Log.Warn(w)
		}
	}
	return nil
}
