package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// fleet is a running calibration fleet.
type fleet struct {
	engine pipeline.Engine
	url    string
	local  int // local workers started
	stop   func()
}

// startFleet connects to the fleet (or starts one) for j's data.
func startFleet(ctx context.Context, j *job, o FleetOptions, workers int, log *slog.Logger) (*fleet, error) {
	if o.InProcess {
		return &fleet{engine: j.engine, stop: func() {}}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	f := &fleet{}
	var srv *cluster.Server
	closeConn := func() {} // closes the coordinator's connection
	var ce *cluster.Engine
	f.stop = func() {
		if ce != nil {
			// Before the connection closes: the run's shards leave the
			// queue and workers forget it, whether it finished or not.
			ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
			if err := ce.End(ectx); err != nil {
				log.Warn("end of the run on the fleet", "err", err)
			}
			ecancel()
		}
		cancel()
		wg.Wait()
		closeConn()
		if srv != nil {
			srv.Shutdown()
		}
	}
	fail := func(err error) (*fleet, error) {
		f.stop()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	cm := cluster.NewCoordinatorMetrics(reg)
	if o.MetricsAddr != "" { // first: a busy address fails at once
		ln, err := cluster.ListenMetrics(ctx, o.MetricsAddr)
		if err != nil {
			return fail(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cluster.ServeMetricsOn(ctx, ln, reg); err != nil && ctx.Err() == nil {
				log.Error("metrics server stopped", "addr", o.MetricsAddr, "err", err)
			}
		}()
	}
	url, secret, coord := o.NATS, o.Secret, o.Conn
	if url == "" {
		if secret == "" {
			secret = cluster.NewSecret()
		}
		var err error
		// The server outlives ctx (an interrupt): stop ends the run on it,
		// then shuts it down.
		srv, err = cluster.StartServer(context.WithoutCancel(ctx), cluster.ServerOptions{Listen: o.Listen,
			User: o.Conn.User, Password: o.Conn.Password, NKeyFile: o.Conn.NKeyFile})
		if err != nil {
			return fail(fmt.Errorf("embedded NATS server: %w", err))
		}
		url, coord = srv.ClientURL(), srv.CoordinatorConn()
		if o.Listen != "" {
			announce(log, srv, o, secret)
		}
		f.local = workers
		wm := cluster.NewWorkerMetrics(reg)
		// Local workers report to the user's log only what goes wrong.
		wlog := slog.New(minLevel{log.Handler(), slog.LevelWarn})
		threads := max(j.cfg.Engine.Threads, 1)
		for i := range workers {
			// Local workers have the worker role, as remote ones.
			nc, err := cluster.Connect(ctx, url, srv.WorkerConn())
			if err != nil {
				return fail(err)
			}
			w, err := cluster.NewWorker(nc, cluster.WorkerOptions{Name: fmt.Sprintf("local-%d", i), Threads: threads, Metrics: wm, Log: wlog, Secret: secret})
			if err != nil {
				nc.Close()
				return fail(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
					log.Error("local worker stopped", "worker", w.Name(), "err", err)
				}
			}()
		}
	}
	f.url = url
	// Not closed when ctx ends (an interrupt): stop ends the run with it.
	nc, err := cluster.Connect(ctx, url, coord)
	if err != nil {
		return fail(err)
	}
	closeConn = nc.Close
	ce, err = cluster.NewEngine(nc, cluster.RunSpec{RunID: o.RunID, DataSource: j.cfg.Engine.DataSource,
		Annotations: j.cfg.Engine.Annotations, ShipData: o.ShipData, Len: j.loader.Len(),
		SkipInvalidSamples: j.cfg.Engine.SkipInvalidSamples, SameHost: o.NATS == "" && o.Listen == ""},
		cluster.EngineOptions{ShardSize: o.ShardSize, Metrics: cm, Log: log, Secret: secret, Resume: o.RunID != ""})
	if err != nil {
		return fail(err)
	}
	f.engine = ce
	return f, nil
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

// minLevel drops records below level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(attrs), m.level}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.level}
}
