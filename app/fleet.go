package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/pipeline"
)

// FleetOptions say where calibration runs: on workers of an external NATS
// cluster (NATS set), or on Workers local workers of an embedded server.
type FleetOptions struct {
	// NATS is the URL of an external cluster whose workers serve the run;
	// empty embeds a NATS server and starts local workers.
	NATS string
	// Listen is the embedded server's client address (default a random
	// loopback port). Remote workers join with the worker credentials: Conn's
	// user and password or NKey seed, or generated ones, logged once with
	// the fleet secret when generated.
	Listen string
	// Conn holds the credentials (and TLS files) for NATS: the client's
	// with NATS, the remote workers' with the embedded server.
	Conn cluster.ConnOptions
	// Secret is the fleet secret shared with the workers: results are
	// authenticated with a key derived from it. Validate loads it from
	// SecretFile or $FLEETCAL_SECRET; required with NATS, generated
	// otherwise.
	Secret     string
	SecretFile string
	// ShardSize is the number of samples per shard (default 16).
	ShardSize int
	// ShipData puts the calibration data in the Object Store for workers
	// without shared storage.
	ShipData bool
	// MetricsAddr serves Prometheus /metrics of the coordinator (and of the
	// local workers) on this host:port.
	MetricsAddr string
	// InProcess skips NATS entirely: one in-process ONNX Runtime engine.
	InProcess bool
	// RunID names the run on an external server (NATS) and makes it
	// resumable: a coordinator started again with the same RunID, config
	// and secret after one died (SIGKILL, a lost machine) reads back the
	// results the dead one's shards stored and computes only the others
	// (cluster.EngineOptions.Resume). Empty: a random id, not resumable.
	RunID string
}

// Validate checks the options and loads the fleet secret.
func (o *FleetOptions) Validate() error {
	if err := o.Conn.Validate(); err != nil {
		return err
	}
	if o.InProcess {
		return nil
	}
	if o.NATS == "" && (o.Conn.Token != "" || o.Conn.CredsFile != "") {
		return fmt.Errorf("%w: --token and --creds are for an external server (--nats); the embedded server takes --user/--password or --nkey for its workers", cluster.ErrBadSpec)
	}
	if o.Secret == "" {
		s, err := cluster.LoadSecret(o.SecretFile)
		if err != nil {
			return err
		}
		o.Secret = s
	}
	if o.NATS != "" && o.Secret == "" {
		return fmt.Errorf("%w: --nats needs the fleet secret its workers hold: --secret-file FILE or $%s", cluster.ErrBadSpec, cluster.EnvSecret)
	}
	if o.RunID != "" && o.NATS == "" {
		return fmt.Errorf("%w: --run-id %s: a run resumes on an external server (--nats): the embedded server's store ends with this process", cluster.ErrBadSpec, o.RunID)
	}
	return nil
}

// fleet is a calibration fleet: the engine calibration runs on, and, with
// the embedded server, the local workers.
type fleet struct {
	engine pipeline.Engine
	url    string
	local  int // local workers started

	log     *slog.Logger
	ce      *cluster.Engine // nil in process
	srv     *cluster.Server // the embedded server, nil with --nats
	conn    closer          // the coordinator's connection
	workers []localWorker
	metrics net.Listener // /metrics, served by Run
	reg     *prometheus.Registry
	endOnce sync.Once
}

// localWorker is a worker of the embedded server and its connection.
type localWorker struct {
	w    *cluster.Worker
	conn closer
}

// closer is a NATS connection as app sees it (app does not import nats.go).
type closer interface{ Close() }

// localWorkerStarting, when set, is called with each local worker's
// connection before the worker runs (tests close it to make the worker
// fail).
var localWorkerStarting func(name string, conn closer)

// startFleet connects to the fleet (or starts one: the embedded server,
// workers local workers) for j's data. Everything that can fail before
// inference fails here; the workers serve shards once Run runs (see run).
func startFleet(ctx context.Context, j *job, o FleetOptions, workers int, log *slog.Logger) (*fleet, error) {
	f := &fleet{log: log}
	if o.InProcess {
		f.engine = j.engine
		return f, nil
	}
	fail := func(err error) (*fleet, error) {
		f.close()
		return nil, err
	}
	f.reg = prometheus.NewRegistry()
	cm := cluster.NewCoordinatorMetrics(f.reg)
	if o.MetricsAddr != "" { // first: a busy address fails at once
		ln, err := cluster.ListenMetrics(ctx, o.MetricsAddr)
		if err != nil {
			return fail(err)
		}
		f.metrics = ln
	}
	url, secret, coord := o.NATS, o.Secret, o.Conn
	if url == "" {
		if secret == "" {
			secret = cluster.NewSecret()
		}
		var err error
		// The server outlives ctx (an interrupt): close ends the run on it,
		// then shuts it down.
		f.srv, err = cluster.StartServer(context.WithoutCancel(ctx), cluster.ServerOptions{Listen: o.Listen,
			User: o.Conn.User, Password: o.Conn.Password, NKeyFile: o.Conn.NKeyFile})
		if err != nil {
			return fail(fmt.Errorf("embedded NATS server: %w", err))
		}
		url, coord = f.srv.ClientURL(), f.srv.CoordinatorConn()
		if o.Listen != "" {
			announce(log, f.srv, o, secret)
		}
		f.local = workers
		wm := cluster.NewWorkerMetrics(f.reg)
		// Local workers report to the user's log only what goes wrong.
		wlog := slog.New(minLevel{log.Handler(), slog.LevelWarn})
		threads := max(j.cfg.Engine.Threads, 1)
		for i := range workers {
			// Local workers have the worker role, as remote ones.
			nc, err := cluster.Connect(ctx, url, f.srv.WorkerConn())
			if err != nil {
				return fail(err)
			}
			w, err := cluster.NewWorker(nc, cluster.WorkerOptions{Name: fmt.Sprintf("local-%d", i), Threads: threads, Metrics: wm, Log: wlog, Secret: secret})
			if err != nil {
				nc.Close()
				return fail(err)
			}
			f.workers = append(f.workers, localWorker{w: w, conn: nc})
		}
	}
	f.url = url
	// Not closed when ctx ends (an interrupt): close ends the run with it.
	nc, err := cluster.Connect(ctx, url, coord)
	if err != nil {
		return fail(err)
	}
	f.conn = nc
	f.ce, err = cluster.NewEngine(nc, cluster.RunSpec{RunID: o.RunID, DataSource: j.cfg.Engine.DataSource,
		Annotations: j.cfg.Engine.Annotations, ShipData: o.ShipData, Len: j.loader.Len(),
		SkipInvalidSamples: j.cfg.Engine.SkipInvalidSamples, SameHost: o.NATS == "" && o.Listen == ""},
		cluster.EngineOptions{ShardSize: o.ShardSize, Metrics: cm, Log: log, Secret: secret, Resume: o.RunID != ""})
	if err != nil {
		return fail(err)
	}
	f.engine = f.ce
	return f, nil
}

// onFleet starts j's fleet (startFleet) and runs do with it up (run);
// j.Close releases the fleet.
func (j *job) onFleet(ctx context.Context, o FleetOptions, log *slog.Logger, do func(ctx context.Context) error) error {
	j.loaded = time.Now()
	fl, err := startFleet(ctx, j, o, j.requests, log)
	if err != nil {
		return err
	}
	j.fleet = fl
	return fl.run(ctx, do)
}

// Run runs the fleet's actors, the local workers and the /metrics server,
// until ctx ends, and then returns nil; a local worker that stops with an
// error ends the others and Run returns its error at once.
func (f *fleet) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if ln := f.metrics; ln != nil {
		f.metrics = nil // ServeMetricsOn closes it
		g.Go(func() error {
			// Not a reason to stop calibrating: said, not returned.
			if err := cluster.ServeMetricsOn(gctx, ln, f.reg); err != nil && gctx.Err() == nil {
				f.log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
			}
			return nil
		})
	}
	for _, lw := range f.workers {
		g.Go(func() error {
			defer lw.conn.Close()
			if localWorkerStarting != nil {
				localWorkerStarting(lw.w.Name(), lw.conn)
			}
			err := lw.w.Run(gctx)
			if err == nil && gctx.Err() == nil {
				err = errors.New("stopped") // Run returns nil only when ctx ends
			}
			if err != nil && gctx.Err() == nil {
				return fmt.Errorf("local worker %s: %w", lw.w.Name(), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// run runs do with the fleet up: do and the fleet's actors (Run) run under
// one errgroup, so that a local worker that fails ends do's context and
// run returns that worker's error, not do's. When do returns, the run ends
// on the fleet (end) and the actors stop.
func (f *fleet) run(ctx context.Context, do func(ctx context.Context) error) error {
	return runBeside(ctx, f.Run, do, f.end)
}

// runBeside runs do with actors beside it under one errgroup, then end. A
// failing actor ends do's context, and its error is returned; once do has
// succeeded (its outputs are written), an actor failing as it is stopped
// does not turn the run into a failure.
func runBeside(ctx context.Context, actors, do func(ctx context.Context) error, end func()) error {
	g, gctx := errgroup.WithContext(ctx)
	actx, stop := context.WithCancel(gctx)
	var succeeded atomic.Bool
	g.Go(func() error { return actors(actx) })
	g.Go(func() error {
		defer stop()
		err := do(gctx)
		end()
		succeeded.Store(err == nil)
		return err
	})
	err := g.Wait()
	if succeeded.Load() {
		return nil
	}
	return err
}

// end ends the run on the fleet, once: its shards leave the queue and
// workers forget it, whether it finished or not.
func (f *fleet) end() {
	f.endOnce.Do(func() {
		if f.ce == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
		defer cancel()
		if err := f.ce.End(ctx); err != nil {
			f.log.Warn("end of the run on the fleet", "err", err)
		}
	})
}

// close ends the run (end) and releases what startFleet opened: the
// connections, the embedded server, a /metrics listener Run did not serve.
// Run has returned, or never ran.
func (f *fleet) close() {
	f.end()
	for _, lw := range f.workers {
		lw.conn.Close()
	}
	if f.metrics != nil {
		_ = f.metrics.Close()
	}
	if f.conn != nil {
		f.conn.Close()
	}
	if f.srv != nil {
		f.srv.Shutdown()
	}
}

// endTimeout bounds the clean-up of a run on the fleet (cluster.Engine.End).
const endTimeout = 2 * time.Second

// announce logs, once, how remote workers join an embedded server that
// listens: its URL, the worker credentials and the fleet secret, each
// shown only when generated (the user knows the ones given).
func announce(log *slog.Logger, srv *cluster.Server, o FleetOptions, secret string) {
	var b strings.Builder
	if o.Secret == "" {
		fmt.Fprintf(&b, "%s=%s ", cluster.EnvSecret, secret)
	} else {
		fmt.Fprintf(&b, "%s=<the fleet secret given> ", cluster.EnvSecret)
	}
	fmt.Fprintf(&b, "worker --nats %s", srv.ClientURL())
	switch wc := srv.WorkerConn(); {
	case srv.WorkerConnGenerated() && o.Conn.NKeyFile == "":
		fmt.Fprintf(&b, " --user %s --password %s", wc.User, wc.Password)
	case o.Conn.NKeyFile != "":
		fmt.Fprintf(&b, " --nkey %s", o.Conn.NKeyFile)
	default:
		fmt.Fprintf(&b, " --user %s --password <the --password given>", wc.User)
	}
	// Info, not Warn: warnings go to report.json, credentials must not.
	log.Info("remote workers join with this command (shown once; it holds credentials)", "command", b.String())
}
