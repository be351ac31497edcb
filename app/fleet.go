package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// loopback port); a non-loopback address requires Conn credentials,
	// which remote workers then give.
	Listen string
	// Conn holds the credentials (and TLS files) for NATS.
	Conn cluster.ConnOptions
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
	url := o.NATS
	if url == "" {
		var err error
		// The server outlives ctx (an interrupt): stop ends the run on it,
		// then shuts it down.
		srv, err = cluster.StartServer(context.WithoutCancel(ctx), cluster.ServerOptions{Listen: o.Listen,
			User: o.Conn.User, Password: o.Conn.Password, Token: o.Conn.Token})
		if err != nil {
			return fail(fmt.Errorf("embedded NATS server: %w", err))
		}
		url = srv.ClientURL()
		f.local = workers
		wm := cluster.NewWorkerMetrics(reg)
		// Local workers report to the user's log only what goes wrong.
		wlog := slog.New(minLevel{log.Handler(), slog.LevelWarn})
		threads := max(j.cfg.Engine.Threads, 1)
		for i := range workers {
			nc, err := cluster.Connect(ctx, url, o.Conn)
			if err != nil {
				return fail(err)
			}
			w, err := cluster.NewWorker(nc, cluster.WorkerOptions{Name: fmt.Sprintf("local-%d", i), Threads: threads, Metrics: wm, Log: wlog})
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
	nc, err := cluster.Connect(ctx, url, o.Conn)
	if err != nil {
		return fail(err)
	}
	closeConn = nc.Close
	ce, err = cluster.NewEngine(nc, cluster.RunSpec{DataSource: j.cfg.Engine.DataSource,
		Annotations: j.cfg.Engine.Annotations, BaseDir: j.cfg.Dir, ShipData: o.ShipData, Len: j.loader.Len(),
		SkipInvalidSamples: j.cfg.Engine.SkipInvalidSamples},
		cluster.EngineOptions{ShardSize: o.ShardSize, Metrics: cm, Log: log})
	if err != nil {
		return fail(err)
	}
	f.engine = ce
	return f, nil
}

// endTimeout bounds the clean-up of a run on the fleet (cluster.Engine.End).
const endTimeout = 2 * time.Second

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
