package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// shardBuckets are the shard-duration histogram buckets, in seconds.
var shardBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// fastBuckets are the buckets of short operations (merge, model fetch).
var fastBuckets = []float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30}

// CoordinatorMetrics are the coordinator's Prometheus metrics
// (fleetcal_coordinator_*).
type CoordinatorMetrics struct {
	SamplesDone        prometheus.Counter
	ShardsDone         prometheus.Counter
	ShardDuration      prometheus.Histogram
	ShardsInFlight     prometheus.Gauge
	Redeliveries       prometheus.Counter
	DuplicatesDropped  prometheus.Counter
	ResultsRejected    *prometheus.CounterVec
	DeadLettered       prometheus.Counter
	PartialBytes       prometheus.Counter
	MergeSeconds       prometheus.Histogram
	ModelUploadSeconds prometheus.Histogram
}

// NewCoordinatorMetrics registers the coordinator's metrics with reg.
func NewCoordinatorMetrics(reg prometheus.Registerer) *CoordinatorMetrics {
	f := promauto.With(reg)
	m := &CoordinatorMetrics{
		SamplesDone: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_coordinator_samples_done_total",
			Help: "Samples whose shard result was merged.",
		}),
		ShardsDone: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_coordinator_shards_done_total",
			Help: "Shards whose result was accepted.",
		}),
		ShardDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetcal_coordinator_shard_duration_seconds",
			Help:    "Time from publishing a shard to accepting its result.",
			Buckets: shardBuckets,
		}),
		ShardsInFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "fleetcal_coordinator_shards_in_flight",
			Help: "Shards published and not yet accepted or dead-lettered.",
		}),
		Redeliveries: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_coordinator_redeliveries_total",
			Help: "Shard deliveries after the first, as reported by workers.",
		}),
		DuplicatesDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_coordinator_duplicates_dropped_total",
			Help: "Shard results dropped because a result for the shard was already accepted.",
		}),
		ResultsRejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetcal_coordinator_results_rejected_total",
			Help: "Shard results dropped and their shard redone, by reason: unauthenticated (no valid MAC of the run key: forged, replayed or garbage; or a partial missing or altered in the object store), deleted (before it was read), bad_payload (authenticated but unusable), unknown_key.",
		}, []string{"reason"}),
		DeadLettered: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_coordinator_dead_lettered_shards_total",
			Help: "Shards that failed on every delivery (split or reported).",
		}),
		PartialBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_coordinator_partial_statistics_bytes_total",
			Help: "Bytes of encoded partial statistics and outputs received.",
		}),
		MergeSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetcal_coordinator_merge_seconds",
			Help:    "Time to merge the partial statistics of one pass.",
			Buckets: fastBuckets,
		}),
		ModelUploadSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetcal_coordinator_model_upload_seconds",
			Help:    "Time to put a model stage in the object store (or find it there).",
			Buckets: fastBuckets,
		}),
	}
	// Every reason from the start, at 0: an alert on one finds its series
	// before the first rejection.
	for _, r := range []string{rejectUnknown, rejectUnauthenticated, rejectDeleted, rejectBadPayload} {
		m.ResultsRejected.WithLabelValues(r)
	}
	return m
}

// WorkerMetrics are a worker's Prometheus metrics (fleetcal_worker_*).
type WorkerMetrics struct {
	SamplesDone       prometheus.Counter
	ShardsDone        prometheus.Counter
	ShardsFailed      *prometheus.CounterVec // label kind: sample, setup, refused, invalid, deterministic
	ShardDuration     prometheus.Histogram
	ShardsInFlight    prometheus.Gauge
	Redeliveries      prometheus.Counter
	DuplicatesDropped prometheus.Counter
	DeadLettered      prometheus.Counter
	PartialBytes      prometheus.Counter
	ModelFetchSeconds prometheus.Histogram
}

// NewWorkerMetrics registers a worker's metrics with reg.
func NewWorkerMetrics(reg prometheus.Registerer) *WorkerMetrics {
	f := promauto.With(reg)
	m := &WorkerMetrics{
		SamplesDone: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_worker_samples_done_total",
			Help: "Samples of shards this worker completed.",
		}),
		ShardsDone: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_worker_shards_done_total",
			Help: "Shards this worker completed and acknowledged.",
		}),
		ShardsFailed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetcal_worker_shards_failed_total",
			Help: "Shard deliveries that failed on this worker, by kind of failure.",
		}, []string{"kind"}),
		ShardDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetcal_worker_shard_duration_seconds",
			Help:    "Time to run one shard, from delivery to acknowledgement.",
			Buckets: shardBuckets,
		}),
		ShardsInFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "fleetcal_worker_shards_in_flight",
			Help: "Shards this worker is running.",
		}),
		Redeliveries: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_worker_redeliveries_total",
			Help: "Shards received that had been delivered before.",
		}),
		DuplicatesDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_worker_duplicates_dropped_total",
			Help: "Results this worker computed that another worker had already stored.",
		}),
		DeadLettered: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_worker_dead_lettered_shards_total",
			Help: "Shards this worker terminated with a final failure: on their last allowed delivery, or on the first for a failure any worker would repeat.",
		}),
		PartialBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetcal_worker_partial_statistics_bytes_total",
			Help: "Bytes of encoded partial statistics and outputs stored.",
		}),
		ModelFetchSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetcal_worker_model_fetch_seconds",
			Help:    "Time to fetch, verify and decode one model stage from the object store.",
			Buckets: fastBuckets,
		}),
	}
	for _, k := range []string{kindSample, kindSetup, kindRefused, kindInvalid, kindDeterministic} {
		m.ShardsFailed.WithLabelValues(k)
	}
	return m
}

// MetricsHandler serves reg's metrics in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// ServeMetrics serves reg on http://addr/metrics, and "ok" on
// http://addr/healthz for liveness and readiness probes, until ctx ends,
// then shuts the server down and returns nil.
func ServeMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	ln, err := ListenMetrics(ctx, addr)
	if err != nil {
		return err
	}
	return serveMetrics(ctx, ln, reg)
}

// ListenMetrics opens addr for ServeMetricsOn, so that a caller fails at
// once, before anything runs, when the address is taken: the error then
// says "address in use" and names it.
func ListenMetrics(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, listenError("metrics", addr, err)
	}
	return ln, nil
}

// ServeMetricsOn is ServeMetrics on a listener from ListenMetrics; it
// closes ln.
func ServeMetricsOn(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
	return serveMetrics(ctx, ln, reg)
}

// listenError describes a failure to listen on addr for what; a busy
// address says so in words.
func listenError(what, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s: listen %s: address in use (another process listens there; choose another port)", what, addr)
	}
	return fmt.Errorf("%s: listen %s: %w", what, addr, err)
}

func serveMetrics(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", MetricsHandler(reg))
	// /healthz answers while the process serves; a worker serves only
	// once it has connected to NATS (RunWorker), so it doubles as readiness.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
