package cluster

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/pipeline"
)

// inlineLimit is the size of a result's payloads (statistics plus outputs)
// above which they go to the Object Store instead of the result envelope:
// base64 makes 512 KiB into 683 KiB, within NATS' default 1 MiB payload.
const inlineLimit = 512 << 10

// ackTimeout bounds the wait for the server to confirm a shard's
// acknowledgement.
const ackTimeout = 5 * time.Second

// WorkerOptions configures a worker.
type WorkerOptions struct {
	// Name identifies the worker in errors, logs and results (default
	// "<hostname>-<random>").
	Name string
	// Concurrency is the number of shards run in parallel (default 1).
	Concurrency int
	// Threads is ONNX Runtime's intra-op thread count per shard (default 1).
	Threads int
	// Metrics, when set, receives the worker's metrics.
	Metrics *WorkerMetrics
	// Log receives progress and errors (default: discarded).
	Log *slog.Logger
	// ORTVersion is the ONNX Runtime version the worker announces; default
	// engine.Version(). Setting it only makes sense in tests of the
	// version check.
	ORTVersion string
	// WrapLoader, when set, wraps every data loader the worker opens (for
	// instrumentation, caching or tests).
	WrapLoader func(pipeline.DataLoader) pipeline.DataLoader
	// TempDir is where shipped data is downloaded, in one folder per
	// worker removed when Run returns (default os.TempDir()).
	TempDir string
	// Secret is the fleet secret shared with the coordinator (required, at
	// least MinSecretLen bytes): the worker checks run specs and shards
	// with the run key derived from it and authenticates its results.
	Secret string
}

// Worker serves shards: it pulls one shard at a time per Concurrency slot
// from the work queue, runs it with ONNX Runtime and stores its partial
// statistics.
type Worker struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts WorkerOptions
	log  *slog.Logger
	m    *WorkerMetrics
	ort  string
	c    *cache

	inlineLimit int

	// running holds the shards running, so that a coordinator's cancel
	// message stops them; ended and endedRuns list the predicts and runs
	// ended lately, whose shards are dropped on delivery.
	runMu     sync.Mutex
	running   map[uint64]runningShard
	runSeq    uint64
	ended     []string
	endedRuns []string
}

// runningShard is a shard being run, with what stops it.
type runningShard struct {
	run, predict string
	cancel       context.CancelCauseFunc
}

// maxEnded bounds Worker.ended and Worker.endedRuns.
const maxEnded = 64

// errPredictEnded cancels the shards of a predict its coordinator ended;
// errRunEnded those of a run that is gone (its coordinator ended it, or
// its spec is no longer in RunsBucket).
var (
	errPredictEnded = errors.New("the coordinator ended the predict")
	errRunEnded     = errors.New("the run is gone")
)

// endedCause reports whether cause is one of the above: the shard is
// dropped, not retried nor reported.
func endedCause(cause error) bool { return cause == errPredictEnded || cause == errRunEnded }

// NewWorker returns a worker on nc. It loads ONNX Runtime and fails when
// the library cannot be found.
func NewWorker(nc *nats.Conn, opts WorkerOptions) (*Worker, error) {
	if nc == nil {
		return nil, fmt.Errorf("worker: %w: nil NATS connection", ErrBadSpec)
	}
	if opts.Concurrency < 0 || opts.Threads < 0 {
		return nil, fmt.Errorf("worker: %w: concurrency and threads must not be negative", ErrBadSpec)
	}
	if err := checkSecret(opts.Secret); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if err := engine.Init(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	opts.Concurrency = max(opts.Concurrency, 1)
	opts.Threads = max(opts.Threads, 1)
	if opts.Name == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		opts.Name = host + "-" + randomID(3)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewWorkerMetrics(prometheus.NewRegistry())
	}
	ort := opts.ORTVersion
	if ort == "" {
		ort = engine.Version()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &Worker{nc: nc, js: js, opts: opts, log: opts.Log.With("worker", opts.Name), m: opts.Metrics, ort: ort, inlineLimit: inlineLimit,
		running: map[uint64]runningShard{}}
	w.c = newCache(w)
	return w, nil
}

// Name is the worker's name.
func (w *Worker) Name() string { return w.opts.Name }

// Run serves shards until ctx ends, then hands back (Naks) the shards it
// is running so that they are redelivered at once, releases its sessions
// and downloads, and returns nil. On start it removes the download folders
// that killed workers left in TempDir (see downloadPrefix). Before a coordinator has created the work
// queue, it waits for it. Run returns an error when the connection closes.
// A Worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	defer w.c.close()
	for _, dir := range removeStaleDownloads(w.opts.TempDir) {
		w.log.Info("removed the download folder of a worker that is gone", "folder", dir)
	}
	var res *resources
	var cons jetstream.Consumer
	waiting := false
	for {
		var err error
		res, cons, err = bindResources(ctx, w.js)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if w.nc.IsClosed() {
			return fmt.Errorf("worker: %w", nats.ErrConnectionClosed)
		}
		if !waiting {
			w.log.Info("waiting for a coordinator to create the work queue", "err", err)
			waiting = true
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return nil
		}
	}
	w.c.res = res
	sub, err := w.nc.Subscribe(CancelSubjectPrefix+".*", func(m *nats.Msg) {
		id := strings.TrimPrefix(m.Subject, CancelSubjectPrefix+".")
		if string(m.Data) == cancelRunBody {
			w.endRun(id)
			return
		}
		w.endPredict(id)
	})
	if err != nil {
		return fmt.Errorf("worker: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	w.log.Info("serving shards", "concurrency", w.opts.Concurrency, "onnxruntime", w.ort)
	g, gctx := errgroup.WithContext(ctx)
	for range w.opts.Concurrency {
		g.Go(func() error { return w.loop(gctx, cons) })
	}
	err = g.Wait()
	_ = w.nc.FlushTimeout(2 * time.Second) // deliver the last acks and naks
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loop pulls one shard at a time until ctx ends.
func (w *Worker) loop(ctx context.Context, cons jetstream.Consumer) error {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		batch, err := cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if w.nc.IsClosed() {
				return fmt.Errorf("worker: %w", nats.ErrConnectionClosed)
			}
			w.log.Warn("fetch shard", "err", err)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				if c, err := w.js.Consumer(ctx, StreamName, ConsumerName); err == nil {
					cons = c
				}
			}
			sleep(ctx, time.Second)
			continue
		}
		for msg := range batch.Messages() {
			w.handle(ctx, msg)
		}
		cancel()
		if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) &&
			!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			w.log.Warn("fetch shard", "err", err)
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, nats.ErrNoResponders) {
				sleep(ctx, time.Second)
				if c, err := w.js.Consumer(ctx, StreamName, ConsumerName); err == nil {
					cons = c
				}
			}
		}
	}
	return nil
}

// track registers the cancel function of a shard of run and predict;
// untrack forgets it. A shard of a predict or run that has ended is
// canceled at once.
func (w *Worker) track(run, predict string, cancel context.CancelCauseFunc) (untrack func()) {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	switch {
	case slices.Contains(w.endedRuns, run):
		cancel(errRunEnded)
	case slices.Contains(w.ended, predict):
		cancel(errPredictEnded)
	}
	w.runSeq++
	id := w.runSeq
	w.running[id] = runningShard{run: run, predict: predict, cancel: cancel}
	return func() {
		w.runMu.Lock()
		defer w.runMu.Unlock()
		delete(w.running, id)
	}
}

// endPredict stops the shards of a predict its coordinator ended.
func (w *Worker) endPredict(predict string) {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	for _, r := range w.running {
		if r.predict == predict {
			r.cancel(errPredictEnded)
		}
	}
	w.ended = remember(w.ended, predict)
}

// endRun stops the shards of a run that is gone, drops its shards still
// queued when they are delivered, and releases the run's sessions and
// downloaded data.
func (w *Worker) endRun(run string) {
	w.runMu.Lock()
	for _, r := range w.running {
		if r.run == run {
			r.cancel(errRunEnded)
		}
	}
	w.endedRuns = remember(w.endedRuns, run)
	w.runMu.Unlock()
	w.c.forget(run)
}

// remember appends id to the list of the last maxEnded ids.
func remember(ids []string, id string) []string {
	if slices.Contains(ids, id) {
		return ids
	}
	ids = append(ids, id)
	if len(ids) > maxEnded {
		ids = slices.Delete(ids, 0, len(ids)-maxEnded)
	}
	return ids
}

// emit publishes a progress event; events are hints, so errors are ignored.
func (w *Worker) emit(predict string, ev event) {
	ev.Worker = w.opts.Name
	if b, err := json.Marshal(ev); err == nil {
		_ = w.nc.Publish(eventSubject(predict), b)
	}
}

// handle runs one delivered shard and acknowledges it, hands it back or
// terminates it.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	md, err := msg.Metadata()
	if err != nil {
		w.log.Error("shard without metadata", "err", err)
		_ = msg.Term()
		return
	}
	var job shardMsg
	key, err := w.openShard(msg.Data(), &job)
	if errors.Is(err, errOtherSecret) {
		// Maybe another worker holds the run's secret: hand it back.
		w.log.Error("cannot serve the shard", "run", job.Run, "shard", job.Shard, "err", err)
		w.emit(job.Predict, event{Kind: eventRetry, Shard: job.Shard, Delivered: md.NumDelivered, Err: err.Error()})
		_ = msg.NakWithDelay(max(job.retryDelay(), 100*time.Millisecond))
		return
	}
	if err != nil {
		w.log.Error("drop shard", "err", err)
		_ = msg.TermWithReason(err.Error())
		return
	}
	job.key = key
	log := w.log.With("predict", job.Predict, "shard", job.Shard, "delivery", md.NumDelivered)
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer w.track(job.Run, job.Predict, cancel)()
	if cause := context.Cause(sctx); endedCause(cause) {
		log.Debug("shard dropped", "cause", cause)
		_ = msg.Term()
		return
	}
	if md.NumDelivered > 1 {
		w.m.Redeliveries.Inc()
	}
	w.emit(job.Predict, event{Kind: eventStart, Shard: job.Shard, Delivered: md.NumDelivered})
	w.m.ShardsInFlight.Inc()
	defer w.m.ShardsInFlight.Dec()

	stop := w.heartbeat(msg, &job)
	stats, outputs, skipped, kind, cause, err := w.runShard(sctx, &job)
	stop()
	if err != nil {
		if errors.Is(err, errRunEnded) {
			// The run's spec is gone: its coordinator ended it (or it
			// expired). Nothing to compute, nobody to report to.
			w.endRun(job.Run)
			log.Info("run gone; shard dropped")
			_ = msg.Term()
			return
		}
		if cause := context.Cause(sctx); ctx.Err() == nil && endedCause(cause) {
			// Its coordinator purged the shard (and reports another
			// failure, or was interrupted).
			log.Debug("shard stopped", "cause", cause, "err", err)
			_ = msg.Term()
			return
		}
		w.failed(ctx, msg, &job, md.NumDelivered, kind, cause, err, log)
		return
	}
	// The shard is computed: store and acknowledge it even when shutting down.
	stctx, stcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer stcancel()
	dup, err := w.store(stctx, &job, stats, outputs, skipped, time.Since(start))
	if err != nil {
		log.Error("store result", "err", err)
		_ = msg.NakWithDelay(job.retryDelay())
		return
	}
	if dup {
		w.m.DuplicatesDropped.Inc()
		w.emit(job.Predict, event{Kind: eventDuplicate, Shard: job.Shard, Delivered: md.NumDelivered})
		log.Info("result already stored by another delivery; dropped mine")
	}
	// The result is stored: a lost acknowledgement only means a redelivery
	// that finds it there. Do not wait long for the server's confirmation
	// (a server restarted since the delivery may never send it).
	actx, acancel := context.WithTimeout(stctx, ackTimeout)
	defer acancel()
	if err := msg.DoubleAck(actx); err != nil {
		log.Warn("acknowledge shard", "err", err)
	}
	w.m.ShardsDone.Inc()
	w.m.SamplesDone.Add(float64(len(job.Indices)))
	w.m.PartialBytes.Add(float64(len(stats) + len(outputs)))
	w.m.ShardDuration.Observe(time.Since(start).Seconds())
	log.Debug("shard done", "samples", len(job.Indices), "seconds", time.Since(start).Seconds())
}

// errOtherSecret: the shard's run key is not the one this worker derives.
var errOtherSecret = errors.New("this worker does not hold the run's fleet secret (give it the coordinator's: --secret-file or $" + EnvSecret + ")")

// openShard decodes a shard message and checks its MAC with the run key,
// which it returns. A shard whose key this worker cannot derive fails with
// errOtherSecret (job holds its unauthenticated run, predict and shard
// for the log); a forged or undecodable one with ErrBadMessage.
func (w *Worker) openShard(b []byte, job *shardMsg) ([]byte, error) {
	body, err := sealedBody(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if err := json.Unmarshal(body, job); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if err := job.validate(); err != nil {
		return nil, err
	}
	if !predictPattern.MatchString(job.Predict) {
		return nil, fmt.Errorf("%w: predict id %q", ErrBadMessage, job.Predict)
	}
	key := runKey(w.opts.Secret, job.Run)
	if job.KeyID != keyID(key) {
		return nil, fmt.Errorf("run %s: %w", job.Run, errOtherSecret)
	}
	if !hmac.Equal(b[len(sealMagic):sealHeader], mac(key, purposeShard, job.resultKey(), body)) {
		return nil, fmt.Errorf("%w: shard %s of run %s: %w", ErrBadMessage, job.Shard, job.Run, errUnauthenticated)
	}
	return key, nil
}

// heartbeat tells the server (InProgress) and the coordinator (an event)
// that the shard is alive every AckWait/3, until stop is called.
func (w *Worker) heartbeat(msg jetstream.Msg, job *shardMsg) (stop func()) {
	every := max(job.ackWait()/3, 10*time.Millisecond)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
				w.emit(job.Predict, event{Kind: eventBeat, Shard: job.Shard})
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// failed hands a failed shard back for another delivery, or, on its last
// delivery or for a failure any worker would repeat (deterministicKind),
// stores the failure for the coordinator and terminates it.
func (w *Worker) failed(ctx context.Context, msg jetstream.Msg, job *shardMsg, delivered uint64, kind, cause string, err error, log *slog.Logger) {
	if ctx.Err() != nil {
		_ = msg.Nak()
		log.Info("shutting down: shard handed back")
		return
	}
	w.m.ShardsFailed.WithLabelValues(kind).Inc()
	switch {
	case deterministicKind(kind):
		// Not the worker's trouble: the coordinator reports it to the user.
		log.Info("shard failed as it would on any worker; reported without retry", "kind", kind, "cause", cause, "err", err)
	case delivered < uint64(job.MaxDeliver):
		log.Warn("shard failed; handed back for another delivery", "kind", kind, "err", err)
		w.emit(job.Predict, event{Kind: eventRetry, Shard: job.Shard, Delivered: delivered, Err: err.Error()})
		_ = msg.NakWithDelay(job.retryDelay())
		return
	default:
		log.Error("shard failed on its last delivery", "kind", kind, "err", err)
	}
	rkey := job.resultKey()
	b, serr := seal(job.key, purposeResult, rkey, envelope{V: wireVersion, Worker: w.opts.Name, Samples: len(job.Indices), Error: err.Error(), Kind: kind, Cause: cause})
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr != nil {
		log.Error("report shard failure", "err", serr)
	} else if _, cerr := w.createResult(sctx, rkey, b); cerr != nil {
		log.Error("report shard failure", "err", cerr)
	}
	reason := err.Error()
	if len(reason) > 256 {
		reason = reason[:256]
	}
	_ = msg.TermWithReason(reason)
	w.m.DeadLettered.Inc()
}

// runShard computes a shard's statistics (and outputs) and encodes them.
// A failure comes with its kind and, when deterministic, its cause (see
// classify).
func (w *Worker) runShard(ctx context.Context, job *shardMsg) (stats, outputs []byte, skipped []int, kind, cause string, err error) {
	if job.ORT != "" && job.ORT != w.ort {
		return nil, nil, nil, kindRefused, "", fmt.Errorf("%w: worker %s runs ONNX Runtime %s, the coordinator expects %s",
			ErrRefused, w.opts.Name, w.ort, job.ORT)
	}
	eng, loader, release, err := w.c.acquire(ctx, job)
	if err != nil {
		kind, cause = classify(err, kindSetup)
		return nil, nil, nil, kind, cause, err
	}
	defer release()
	opts := pipeline.PredictOptions{
		StatsLayout: job.Layout,
		Sampler:     &pipeline.BatchSampler{BatchSize: job.BatchSize, SubsetIndices: job.Indices, N: loader.Len()},
	}
	var capture *captureMetric
	if job.Outputs {
		capture = newCaptureMetric(job.Indices)
		opts.Metric = capture
	}
	res, err := eng.Predict(ctx, opts)
	if errors.Is(err, pipeline.ErrUnknownStatistic) {
		// Known to the coordinator (it checks the layout), not here: a
		// worker binary built without the user's statistics. Reported at
		// once, as any worker of that binary would fail the same way.
		err = fmt.Errorf("this worker binary does not register the statistic (pipeline.RegisterStatistic before worker.Main): %w", err)
	}
	if err != nil {
		kind, cause = classify(err, kindSample)
		return nil, nil, nil, kind, cause, err
	}
	if capture != nil {
		if capture.err != nil {
			return nil, nil, nil, kindSetup, "", capture.err
		}
		outputs = capture.enc.bytes()
	}
	if stats, err = res.Stats.MarshalBinary(); err != nil {
		return nil, nil, nil, kindSetup, "", err
	}
	return stats, outputs, res.Skipped, "", "", nil
}

// store puts the result under the shard's key; dup reports that another
// delivery had stored it first (this result is then dropped).
func (w *Worker) store(ctx context.Context, job *shardMsg, stats, outputs []byte, skipped []int, took time.Duration) (dup bool, err error) {
	env := envelope{V: wireVersion, Worker: w.opts.Name, CPU: ptr(engine.HostCPU()), Samples: len(job.Indices), Seconds: took.Seconds(), Skipped: skipped}
	inline := len(stats)+len(outputs) <= w.inlineLimit
	var objects []string
	defer func() {
		if dup || err != nil {
			w.deleteObjects(objects)
		}
	}()
	put := func(b []byte, what string) (*blob, error) {
		bl := &blob{SHA256: sum(b), Size: len(b)}
		if inline {
			bl.Inline = b
			return bl, nil
		}
		name := fmt.Sprintf("%s/%s/%s.%s", job.Predict, job.Shard, randomID(6), what)
		if _, err := w.c.res.partials.PutBytes(ctx, name, b); err != nil {
			return nil, fmt.Errorf("object store %s: put %s: %w", PartialsBucket, name, err)
		}
		objects = append(objects, name)
		bl.Object = name
		return bl, nil
	}
	if env.Stats, err = put(stats, "stats"); err != nil {
		return false, err
	}
	if job.Outputs {
		if env.Outputs, err = put(outputs, "outputs"); err != nil {
			return false, err
		}
	}
	rkey := job.resultKey()
	b, err := seal(job.key, purposeResult, rkey, env)
	if err != nil {
		return false, err
	}
	exists, err := w.createResult(ctx, rkey, b)
	if err != nil {
		return false, fmt.Errorf("key-value bucket %s: create %s: %w", ResultsBucket, rkey, err)
	}
	return exists, nil
}

// createResult stores b under the result key rkey unless the key holds a
// value or a delete marker already (exists true): a publish that expects
// no earlier message on the key's subject. Unlike KeyValue.Create, it
// never reads the key, so the worker role needs no right to read results
// (workerPermissions).
func (w *Worker) createResult(ctx context.Context, rkey string, b []byte) (exists bool, err error) {
	_, err = w.c.res.js.Publish(ctx, "$KV."+ResultsBucket+"."+rkey, b, jetstream.WithExpectLastSequencePerSubject(0))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return true, nil
	}
	return false, err
}

func (w *Worker) deleteObjects(names []string) {
	for _, n := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = w.c.res.partials.Delete(ctx, n)
		cancel()
	}
}

// captureMetric is the Metric a worker hands its engine to collect every
// sample's outputs: the engine calls Update in ascending sample-index
// order, so the i-th call is the i-th smallest index of the shard.
type captureMetric struct {
	order []int
	next  int
	enc   outputsEncoder
	err   error
}

func newCaptureMetric(indices []int) *captureMetric {
	order := append([]int(nil), indices...)
	slices.Sort(order)
	return &captureMetric{order: order}
}

func (c *captureMetric) Update(outputs map[string]pipeline.Tensor, annotation any) error {
	return errors.New("capture outputs: the engine must call UpdateSample")
}

// UpdateSample records one sample's outputs under its index.
func (c *captureMetric) UpdateSample(index int, outputs map[string]pipeline.Tensor, annotation any) error {
	if c.next >= len(c.order) {
		return errors.New("capture outputs: more samples than the shard holds")
	}
	if err := c.enc.add(index, outputs, annotation); err != nil {
		c.err = err
		return err
	}
	c.next++
	return nil
}

func (c *captureMetric) Reset()                                           { c.next, c.enc, c.err = 0, outputsEncoder{}, nil }
func (c *captureMetric) Value() map[string][]float64                      { return nil }
func (c *captureMetric) AvgValue() map[string]float64                     { return nil }
func (c *captureMetric) HigherBetter() bool                               { return true }
func (c *captureMetric) Attributes() map[string]pipeline.MetricAttributes { return nil }

func ptr[T any](v T) *T { return &v }
