package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// subset is a shuffled subset of 0..13, as a sampler's subset_indices.
var subset = []int{13, 0, 5, 2, 9, 11, 1, 7, 12, 3, 8, 4}

// TestDeterminism checks that the cluster engine's statistics and metric
// are bit-identical to the local engine's for 1, 2 and 3 workers and shard
// sizes 3 and 7.
func TestDeterminism(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	// The workers have the worker role (workerPermissions) and no more.
	wnc := connectAs(t, srv.ClientURL(), srv.WorkerConn())
	defer noPermissionErrors(t, wnc)
	d := makeDataset(t, 14, 1)
	m := loadModel(t, "convnet_op13.onnx")
	opts := func(metric pipeline.Metric) pipeline.PredictOptions {
		return pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, subset),
			Metric: metric, MetricPerSample: true}
	}
	want := reference(t, d, m, opts(newAccuracy(t)))
	for _, n := range []int{1, 2, 3} {
		for _, size := range []int{3, 7} {
			t.Run(fmt.Sprintf("workers=%d/shard=%d", n, size), func(t *testing.T) {
				ws := startWorkers(t, wnc, n, WorkerOptions{})
				defer ws.stop()
				e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: size})
				if err := e.SetModel(t.Context(), m); err != nil {
					t.Fatal(err)
				}
				var calls []int
				o := opts(newAccuracy(t))
				o.Progress = func(done, total int) { calls = append(calls, done) }
				got, err := e.Predict(t.Context(), o)
				if err != nil {
					t.Fatal(err)
				}
				sameStats(t, got, want)
				if !reflect.DeepEqual(got.Metrics, want.Metrics) {
					t.Errorf("metrics %v, want %v", got.Metrics, want.Metrics)
				}
				if !reflect.DeepEqual(got.PerSample, want.PerSample) {
					t.Errorf("per-sample metrics %v, want %v", got.PerSample, want.PerSample)
				}
				// ⌈12/size⌉ shards, one progress call each, ending at 12.
				if wantCalls := (len(subset) + size - 1) / size; len(calls) != wantCalls || calls[len(calls)-1] != len(subset) {
					t.Errorf("progress calls %v, want %d ending at %d", calls, wantCalls, len(subset))
				}
				if v := testutil.ToFloat64(e.m.ShardsDone); v != float64(len(calls)) {
					t.Errorf("shards done metric %v, want %d", v, len(calls))
				}
			})
		}
	}
	t.Run("dynamic batch 2", func(t *testing.T) {
		md := loadModel(t, "convnet_dynamic.onnx")
		o := pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 2, subset)}
		want := reference(t, d, md, o)
		ws := startWorkers(t, wnc, 2, WorkerOptions{})
		defer ws.stop()
		e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 3}) // rounded up to 4: two whole batches
		if err := e.SetModel(t.Context(), md); err != nil {
			t.Fatal(err)
		}
		got, err := e.Predict(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		sameStats(t, got, want)
		if v := testutil.ToFloat64(e.m.ShardsDone); v != 3 { // 12 samples / 4
			t.Errorf("shards done %v, want 3", v)
		}
	})
	t.Run("partials in the object store", func(t *testing.T) {
		ws := startWorkers(t, wnc, 2, WorkerOptions{})
		defer ws.stop()
		for _, w := range ws.list {
			w.inlineLimit = 0
		}
		e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 5})
		if err := e.SetModel(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		got, err := e.Predict(t.Context(), opts(newAccuracy(t)))
		if err != nil {
			t.Fatal(err)
		}
		sameStats(t, got, want)
		if !reflect.DeepEqual(got.Metrics, want.Metrics) {
			t.Errorf("metrics %v, want %v", got.Metrics, want.Metrics)
		}
		// The coordinator deletes the partials it read.
		list, err := e.res.partials.List(t.Context())
		if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
			t.Fatal(err)
		}
		if len(list) != 0 {
			t.Errorf("%d partials left in the object store", len(list))
		}
	})
}

// TestDuplicateResults publishes every shard twice: the second delivery's
// result is dropped by its worker (the first Create wins), and a result
// put again under an accepted key is dropped by the coordinator. The
// statistics do not change.
func TestDuplicateResults(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 8, 2)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)}
	want := reference(t, d, m, o)

	// One worker, one shard at a time: the queue is s0 s0' s1 s1' s2 s2'
	// s3 s3', and sample 7 (in s3) waits for the gate.
	gate := make(chan struct{})
	wreg := prometheus.NewRegistry()
	wm := NewWorkerMetrics(wreg)
	ws := startWorkers(t, nc, 1, WorkerOptions{Metrics: wm, WrapLoader: func(l pipeline.DataLoader) pipeline.DataLoader {
		return &slowLoader{DataLoader: l, gate: map[int]chan struct{}{7: gate}}
	}})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 2})
	e.copies = 1
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res pipeline.PredictResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := e.Predict(t.Context(), o)
		done <- outcome{res, err}
	}()
	// s0', s1' and s2' are run and dropped by the worker, and reported.
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if w, c := testutil.ToFloat64(wm.DuplicatesDropped), testutil.ToFloat64(e.m.DuplicatesDropped); w != 3 || c != 3 {
			return fmt.Errorf("duplicates dropped: worker %v, coordinator %v; want 3 and 3", w, c)
		}
		return nil
	})
	// A second value under an accepted key: first check that Create refuses it,
	// then force it with Put; the coordinator drops it.
	key := resultKey(fmt.Sprintf("%s-%s-1", e.RunID(), e.nonce), "0", "")
	if _, err := e.res.results.Create(t.Context(), key, []byte(`{"v":1}`)); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("second Create of %s: %v, want ErrKeyExists", key, err)
	}
	if _, err := e.res.results.Put(t.Context(), key, []byte(`{"v":1,"worker":"impostor"}`)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if c := testutil.ToFloat64(e.m.DuplicatesDropped); c != 4 {
			return fmt.Errorf("coordinator dropped %v duplicates, want 4", c)
		}
		return nil
	})
	close(gate)
	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	sameStats(t, out.res, want)
}

// TestWorkerJoinsMidRun starts a second worker after the first shard is done.
func TestWorkerJoinsMidRun(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 16, 3)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)}
	want := reference(t, d, m, o)

	slow := func(l pipeline.DataLoader) pipeline.DataLoader {
		return &slowLoader{DataLoader: l, delay: 20 * time.Millisecond}
	}
	first := startWorkers(t, nc, 1, WorkerOptions{Name: "first", WrapLoader: slow})
	defer first.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 2})
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	var progressed atomic.Int64
	o.Progress = func(done, total int) { progressed.Store(int64(done)) }
	done := make(chan error, 1)
	var got pipeline.PredictResult
	go func() {
		var err error
		got, err = e.Predict(t.Context(), o)
		done <- err
	}()
	checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		if progressed.Load() == 0 {
			return errors.New("no shard done yet")
		}
		return nil
	})
	lateReg := prometheus.NewRegistry()
	late := startWorkers(t, nc, 1, WorkerOptions{Name: "late", WrapLoader: slow, Metrics: NewWorkerMetrics(lateReg)})
	defer late.stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameStats(t, got, want)
	if n := testutil.ToFloat64(late.list[0].m.ShardsDone); n == 0 {
		t.Errorf("the late worker ran no shard (8 shards of 2 samples at 20ms a sample)")
	}
}

// failingLoader fails Item for the samples fail says, with a plain error:
// one the worker cannot tell from a passing fault, so the shard is retried
// and split.
type failingLoader struct {
	pipeline.DataLoader
	fail func(i int) bool
}

func (l *failingLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	if l.fail(i) {
		return pipeline.Sample{}, fmt.Errorf("read sample %d: input/output error", i)
	}
	return l.DataLoader.Item(ctx, i)
}

// TestPoisonSample: sample 5 fails to load on every delivery, with an error
// that may be passing; its shard is retried, then split until the sample
// is alone, and Predict names it.
func TestPoisonSample(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 8, 4)
	m := loadModel(t, "convnet_op13.onnx")
	ws := startWorkers(t, nc, 2, WorkerOptions{WrapLoader: func(l pipeline.DataLoader) pipeline.DataLoader {
		return &failingLoader{DataLoader: l, fail: func(i int) bool { return i == 5 }}
	}})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4, MaxDeliver: 2})
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)})
	t.Log(err)
	var se *ShardError
	if !errors.As(err, &se) || !errors.Is(err, ErrDeadLetter) {
		t.Fatalf("got %v, want a *ShardError wrapping ErrDeadLetter", err)
	}
	// Shard 1 = [4 5 6 7] → 1.0 = [4 5] → 1.0.1 = [5].
	if se.Shard != "1.0.1" || !strings.HasPrefix(se.Worker, "w") {
		t.Errorf("shard %q worker %q, want shard 1.0.1 and a worker", se.Shard, se.Worker)
	}
	if want := "sample 5: load: read sample 5: input/output error"; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %q does not end with %q", err, want)
	}
	if n := testutil.ToFloat64(e.m.DeadLettered); n != 3 {
		t.Errorf("dead-lettered shards %v, want 3 (1, 1.0, 1.0.1)", n)
	}
	if n := testutil.ToFloat64(e.m.Redeliveries); n != 3 {
		t.Errorf("redeliveries %v, want 3 (one for each of 1, 1.0, 1.0.1)", n)
	}
}

// TestBadSampleFailsAtOnce: sample 5 has the wrong shape. Any worker would
// fail on it, so the first delivery of its shard ends Predict, without a
// retry or a split, with the message of the local engine naming the
// sample, its file and the input.
func TestBadSampleFailsAtOnce(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 8, 4, 5)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)}
	local, err := engine.New(d.loader(t, m), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if err := local.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	_, want := local.Predict(t.Context(), o)
	if want == nil {
		t.Fatal("the local engine accepted sample 5")
	}
	logs := &logRecords{}
	ws := startWorkers(t, nc, 2, WorkerOptions{Log: slog.New(logs)})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4, MaxDeliver: 4, Log: slog.New(logs)})
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	_, err = e.Predict(t.Context(), o)
	t.Log(err)
	var se *ShardError
	if !errors.As(err, &se) || !errors.Is(err, ErrDeterministic) || errors.Is(err, ErrDeadLetter) {
		t.Fatalf("got %v, want a *ShardError wrapping ErrDeterministic", err)
	}
	if se.Shard != "1" || se.Err.Error() != want.Error() {
		t.Errorf("shard %q, error %q\nwant shard 1, error %q (the local engine's)", se.Shard, se.Err, want)
	}
	for _, frag := range []string{"sample 5 (", "005.npy", `input "input"`, "shape [1 3 8 8], model wants [1 3 16 16]"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error %q lacks %q", err, frag)
		}
	}
	if n := testutil.ToFloat64(e.m.DeadLettered); n != 1 {
		t.Errorf("dead-lettered shards %v, want 1 (no split)", n)
	}
	if n := testutil.ToFloat64(e.m.Redeliveries); n != 0 {
		t.Errorf("redeliveries %v, want 0", n)
	}
	if w := logs.atLeast(slog.LevelWarn); len(w) != 0 {
		t.Errorf("warnings logged: %q", w)
	}
}

// TestPassingFaultRetried: a load error the worker cannot tell from a
// passing fault is retried, and the retry succeeds.
func TestPassingFaultRetried(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 8, 8)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)}
	want := reference(t, d, m, o)
	var failed atomic.Bool
	ws := startWorkers(t, nc, 2, WorkerOptions{WrapLoader: func(l pipeline.DataLoader) pipeline.DataLoader {
		return &failingLoader{DataLoader: l, fail: func(i int) bool { return i == 3 && failed.CompareAndSwap(false, true) }}
	}})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4})
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got, err := e.Predict(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	sameStats(t, got, want)
	if n := testutil.ToFloat64(e.m.Redeliveries); n != 1 {
		t.Errorf("redeliveries %v, want 1", n)
	}
	if n := testutil.ToFloat64(e.m.DeadLettered); n != 0 {
		t.Errorf("dead-lettered %v, want 0", n)
	}
}

// TestVersionRefused: a worker with another ONNX Runtime refuses shards,
// and Predict says why.
func TestVersionRefused(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 2, 5)
	ws := startWorkers(t, nc, 1, WorkerOptions{Name: "old", ORTVersion: "0.0.0-test"})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{MaxDeliver: 2})
	if err := e.SetModel(t.Context(), loadModel(t, "convnet_op13.onnx")); err != nil {
		t.Fatal(err)
	}
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: testLayout()})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want ErrRefused", err)
	}
	want := fmt.Sprintf("shard 0 (worker old): shard refused: worker old runs ONNX Runtime 0.0.0-test, the coordinator expects %s", e.opts.ORTVersion)
	if err.Error() != want {
		t.Errorf("error\n%q\nwant\n%q", err, want)
	}
	if n := testutil.ToFloat64(ws.list[0].m.ShardsFailed.WithLabelValues(kindRefused)); n != 2 {
		t.Errorf("refusals %v, want 2 (MaxDeliver)", n)
	}
}

// TestNoWorker: without workers Predict fails after the idle timeout, and
// returns at once when its context ends.
func TestNoWorker(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 2, 6)
	e := newEngine(t, nc, d.spec(), EngineOptions{IdleTimeout: 300 * time.Millisecond})
	if err := e.SetModel(t.Context(), loadModel(t, "convnet_op13.onnx")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{})
	want := fmt.Sprintf("no worker progress: no worker took shard 0 within 300ms; are workers running against %s?", srv.ClientURL())
	if !errors.Is(err, ErrNoWorker) || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}

	e.opts.IdleTimeout = -1
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := e.Predict(ctx, pipeline.PredictOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	// Nothing is left on the work queue.
	info, err := e.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d shards left in the stream", info.State.Msgs)
	}
}

// TestBadResult: authenticated results that cannot be used are redone up
// to MaxDeliver times, then fail Predict with an error naming the shard
// and worker, never a panic. (Unauthenticated ones: TestForgedResults.)
func TestBadResult(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 2, 7)
	good, err := reduce.NewSet().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte("FCRS\x02\xff\xff\xff\xff\xff")
	over := reduce.NewSet() // three samples folded; the shard has two
	for range 3 {
		_ = over.AddFold("relu_0_out", "sum(max)", reduce.FoldSum, 1)
	}
	overB, err := over.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	env := func(stats []byte, sha string, outputs *blob) envelope {
		return envelope{V: wireVersion, Worker: "evil", Samples: 2, Stats: &blob{Inline: stats, SHA256: sha, Size: len(stats)}, Outputs: outputs}
	}
	tests := []struct {
		name   string
		value  envelope
		metric bool
		want   []error
		frag   string
	}{
		{"statistics do not decode", env(garbage, sum(garbage), nil), false, []error{ErrBadResult, reduce.ErrCorrupt}, "shard 0 (worker evil): bad shard result: statistics: decode statistics: at byte 10 of 10: corrupt statistics encoding"},
		{"checksum mismatch", env(good, sum(garbage), nil), false, []error{ErrBadResult}, "shard 0 (worker evil): statistics: bad shard result: 9 bytes with SHA-256"},
		{"more samples folded than the shard has", env(overB, sum(overB), nil), false, []error{ErrBadResult}, "shard 0 (worker evil): bad shard result: tensor \"relu_0_out\": sum(max): 3 samples folded, the shard has 2"},
		{"outputs do not decode", env(good, sum(good), &blob{Inline: []byte("FCOU\x01\x05"), SHA256: sum([]byte("FCOU\x01\x05")), Size: 6}), true, []error{ErrBadResult}, "shard 0 (worker evil): bad shard result: outputs: corrupt outputs encoding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, nc, d.spec(), EngineOptions{MaxDeliver: 1})
			if err := e.SetModel(t.Context(), loadModel(t, "convnet_op13.onnx")); err != nil {
				t.Fatal(err)
			}
			o := pipeline.PredictOptions{StatsLayout: testLayout()}
			if tc.metric {
				o.Metric = newAccuracy(t)
			}
			// No worker runs: the test stores the result once the shard is published.
			go func() {
				checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
					info, err := e.stream.Info(context.Background())
					if err != nil || info.State.Msgs == 0 {
						return errors.New("shard not published yet")
					}
					return nil
				})
				key := resultKey(fmt.Sprintf("%s-%s-1", e.RunID(), e.nonce), "0", "")
				b, err := seal(e.key, purposeResult, key, tc.value)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := e.res.results.Create(context.Background(), key, b); err != nil {
					t.Error(err)
				}
			}()
			_, err := e.Predict(t.Context(), o)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %v is not %v", err, w)
				}
			}
			var se *ShardError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.frag) {
				t.Errorf("error %q: want a *ShardError containing %q", err, tc.frag)
			}
		})
	}
}

// TestGracefulStop: a worker stopped mid-shard hands the shard back, and
// another worker runs it at once, long before AckWait.
func TestGracefulStop(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 4, 8)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)}
	want := reference(t, d, m, o)

	gate := make(chan struct{}) // never opened: the first worker blocks on sample 2
	reg := prometheus.NewRegistry()
	wm := NewWorkerMetrics(reg)
	first := startWorkers(t, nc, 1, WorkerOptions{Name: "stopping", Metrics: wm, WrapLoader: func(l pipeline.DataLoader) pipeline.DataLoader {
		return &slowLoader{DataLoader: l, gate: map[int]chan struct{}{2: gate}}
	}})
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4, AckWait: time.Minute})
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var got pipeline.PredictResult
	start := time.Now()
	go func() {
		var err error
		got, err = e.Predict(t.Context(), o)
		done <- err
	}()
	checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		if testutil.ToFloat64(wm.ShardsInFlight) != 1 {
			return errors.New("shard not started")
		}
		return nil
	})
	first.stop() // SIGTERM
	second := startWorkers(t, nc, 1, WorkerOptions{Name: "second"})
	defer second.stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %s: the shard waited for AckWait", took)
	}
	sameStats(t, got, want)
	if n := testutil.ToFloat64(e.m.Redeliveries); n != 1 {
		t.Errorf("redeliveries %v, want 1", n)
	}
}

// TestShipData: workers download the data from the Object Store.
func TestShipData(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	wnc := connectAs(t, srv.ClientURL(), srv.WorkerConn())
	defer noPermissionErrors(t, wnc)
	d := makeDataset(t, 6, 9)
	m := loadModel(t, "convnet_op13.onnx")
	o := func() pipeline.PredictOptions {
		return pipeline.PredictOptions{StatsLayout: testLayout(), Metric: newAccuracy(t)}
	}
	want := reference(t, d, m, o())
	tmp := t.TempDir()
	ws := startWorkers(t, wnc, 2, WorkerOptions{TempDir: tmp})
	// Typed, and built in Go without a type (guessed from the files, on
	// the coordinator, before the source is rebased for the workers).
	for _, src := range []data.Config{{Type: "npy", Path: "calib", BaseDir: d.dir}, {Path: "calib", BaseDir: d.dir}} {
		spec := d.spec()
		spec.DataSource, spec.ShipData = src, true
		e := newEngine(t, nc, spec, EngineOptions{ShardSize: 4})
		if err := e.SetModel(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		got, err := e.Predict(t.Context(), o())
		if err != nil {
			t.Fatalf("data_source type %q: %v", src.Type, err)
		}
		sameStats(t, got, want)
		if !reflect.DeepEqual(got.Metrics, want.Metrics) {
			t.Errorf("data_source type %q: metrics %v, want %v", src.Type, got.Metrics, want.Metrics)
		}
	}
	ws.stop()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		left, err := dirEntries(tmp)
		if err != nil || len(left) != 0 {
			return fmt.Errorf("downloads left after the workers stopped: %v %v", left, err)
		}
		return nil
	})
}

// TestNoModel: Predict before SetModel.
func TestNoModel(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	e := newEngine(t, nc, makeDataset(t, 1, 10).spec(), EngineOptions{})
	if _, err := e.Predict(t.Context(), pipeline.PredictOptions{}); !errors.Is(err, ErrNoModel) {
		t.Fatalf("got %v, want ErrNoModel", err)
	}
	if _, err := NewEngine(nc, RunSpec{RunID: "bad.id", DataSource: data.Config{Path: "x"}}, EngineOptions{}); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("run id with a dot: got %v, want ErrBadSpec", err)
	}
}

// TestDeliveriesExhausted: a shard delivered MaxDeliver times without an
// acknowledgement (its workers died) is reported by the server's advisory,
// split and finished by a live worker.
func TestDeliveriesExhausted(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 2, 11)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)}
	want := reference(t, d, m, o)
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 2, MaxDeliver: 2, AckWait: 200 * time.Millisecond})
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var got pipeline.PredictResult
	go func() {
		var err error
		got, err = e.Predict(t.Context(), o)
		done <- err
	}()
	// A zombie takes the shard twice and never answers.
	zombie := connect(t, srv)
	js, err := jetstream.New(zombie)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(t.Context(), StreamName, ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	for delivery := 1; delivery <= 2; {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			if md, _ := msg.Metadata(); md.NumDelivered != uint64(delivery) {
				t.Fatalf("delivery %d, want %d", md.NumDelivered, delivery)
			}
			delivery++
		}
	}
	ws := startWorkers(t, nc, 1, WorkerOptions{})
	defer ws.stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameStats(t, got, want)
	if n := testutil.ToFloat64(e.m.DeadLettered); n != 1 {
		t.Errorf("dead-lettered %v, want 1", n)
	}
	if n := testutil.ToFloat64(e.m.ShardsDone); n != 2 {
		t.Errorf("shards done %v, want 2 (the halves 0.0 and 0.1)", n)
	}
}

// TestSetupError: failures that may be the worker's own (a data folder it
// does not see) are retried, then fail Predict without splitting; failures
// any worker would repeat (an unknown tensor in the layout, a statistics
// model ONNX Runtime refuses, a statistic of an integer tensor) fail it on
// their first delivery.
func TestSetupError(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 4, 12)
	ws := startWorkers(t, nc, 2, WorkerOptions{})
	defer ws.stop()
	// A folder the coordinator sees when the engine is made (NewEngine
	// checks) and the workers do not when they run the shard.
	missing := d.spec()
	missing.DataSource = data.Config{Type: "npy", Path: "nowhere", BaseDir: d.dir}
	missing.SameHost = true // the coordinator has no data to hash either
	if err := os.Mkdir(filepath.Join(d.dir, "nowhere"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		spec        RunSpec
		layout      pipeline.StatsLayout
		frag        string
		is          error
		redelivered float64
		lie         bool // a model ONNX Runtime refuses (see withShapeStat)
	}{
		{"missing data", missing, testLayout(), "nowhere", ErrSetup, 1, false},
		{"unknown tensor", d.spec(), pipeline.StatsLayout{"no_such_tensor": {{Kind: pipeline.StatMax}}}, "no_such_tensor", engine.ErrUnknownTensor, 0, false},
		{"model refused", d.spec(), pipeline.StatsLayout{"input_shape": {{Kind: pipeline.StatMax}}}, "input_shape", engine.ErrBadModel, 0, true},
		{"integer tensor", d.spec(), pipeline.StatsLayout{"input_dims": {{Kind: pipeline.StatMax}}}, "INT64", engine.ErrBadStats, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, nc, tc.spec, EngineOptions{ShardSize: 4, MaxDeliver: 2})
			if err := e.SetModel(t.Context(), withShapeStat(t, tc.lie)); err != nil {
				t.Fatal(err)
			}
			if tc.name == "missing data" {
				if err := os.Remove(filepath.Join(d.dir, "nowhere")); err != nil {
					t.Fatal(err)
				}
			}
			_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: tc.layout})
			t.Log(err)
			var se *ShardError
			if !errors.Is(err, tc.is) || !errors.As(err, &se) || se.Shard != "0" || !strings.Contains(err.Error(), tc.frag) {
				t.Fatalf("got %v, want a *ShardError on shard 0 wrapping %v and naming %q", err, tc.is, tc.frag)
			}
			if errors.Is(err, ErrDeterministic) != (tc.is != ErrSetup) {
				t.Errorf("errors.Is(err, ErrDeterministic) = %v", errors.Is(err, ErrDeterministic))
			}
			if n := testutil.ToFloat64(e.m.DeadLettered); n != 1 {
				t.Errorf("dead-lettered %v, want 1 (no split)", n)
			}
			if n := testutil.ToFloat64(e.m.Redeliveries); n != tc.redelivered {
				t.Errorf("redeliveries %v, want %v", n, tc.redelivered)
			}
		})
	}
}
