package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetcal/fleetcal/pipeline"
)

// runFolders lists the run folders in the download folders of tempDir.
func runFolders(tempDir string) []string {
	dirs, _ := filepath.Glob(filepath.Join(tempDir, downloadPrefix+"*", "run-*"))
	return dirs
}

// TestEndInterruptedRun interrupts a Predict of a run with shipped data and
// ends the run: the work queue holds none of its shards, its spec and data
// are gone from the buckets, the running worker dropped its downloaded
// copy, a shard of the run queued afterwards is dropped uncomputed by a
// worker that joined late, and Predict refuses to run again.
func TestEndInterruptedRun(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 32, 3)
	temp := t.TempDir()
	ws := startWorkers(t, nc, 1, WorkerOptions{TempDir: temp,
		WrapLoader: func(l pipeline.DataLoader) pipeline.DataLoader {
			return &slowLoader{DataLoader: l, delay: 20 * time.Millisecond}
		}})
	defer ws.stop()
	spec := d.spec()
	spec.ShipData = true
	e := newEngine(t, nc, spec, EngineOptions{ShardSize: 2})
	m := loadModel(t, "convnet_op13.onnx")
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := e.Predict(ctx, pipeline.PredictOptions{StatsLayout: testLayout()})
		done <- err
	}()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if len(runFolders(temp)) == 0 {
			return errors.New("the worker has not downloaded the run's data yet")
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Predict after cancel: %v, want context.Canceled", err)
	}
	if err := e.End(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.End(t.Context()); err != nil {
		t.Fatalf("End again: %v", err)
	}

	info, err := e.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d shards left in the stream", info.State.Msgs)
	}
	if _, err := e.res.runs.Get(t.Context(), e.RunID()); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("run spec after End: %v, want ErrKeyNotFound", err)
	}
	if objs, err := e.res.data.List(t.Context()); !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Errorf("shipped data after End: %d objects (%v), want none", len(objs), err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if dirs := runFolders(temp); len(dirs) > 0 {
			return fmt.Errorf("the worker keeps the data of the ended run: %v", dirs)
		}
		return nil
	})
	if _, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: testLayout()}); !errors.Is(err, ErrRunEnded) {
		t.Errorf("Predict after End: %v, want ErrRunEnded", err)
	}

	// A shard of the ended run still queued (e.g. published by a
	// coordinator of the run that was killed) reaches a worker that never
	// heard of the run: no spec, so it is dropped, neither run nor failed.
	ws.stop()
	reg := prometheus.NewRegistry()
	wm := NewWorkerMetrics(reg)
	late := startWorkers(t, nc, 1, WorkerOptions{Name: "late", Metrics: wm, TempDir: temp})
	defer late.stop()
	e.modelMu.RLock()
	ref := *e.model
	e.modelMu.RUnlock()
	msg := shardMsg{V: wireVersion, Run: e.RunID(), RunRev: e.runRev, Predict: e.RunID() + "-late-1", Shard: "0-2",
		Indices: []int{0, 1}, Model: ref, BatchSize: 1, AckWaitMS: 30000, MaxDeliver: 4, RetryDelayMS: 10, KeyID: e.keyID}
	// Sealed as the coordinator seals its shards: the worker drops it for
	// its dead run, not for its MAC.
	b, err := seal(e.key, purposeShard, msg.resultKey(), &msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.js.Publish(t.Context(), shardSubject(e.RunID(), msg.Predict), b); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		info, err := e.stream.Info(t.Context())
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d shards in the stream", info.State.Msgs)
		}
		return nil
	})
	if n := testutil.ToFloat64(wm.ShardsDone); n != 0 {
		t.Errorf("the late worker computed %v shards of the ended run", n)
	}
	for _, kind := range []string{kindSample, kindSetup, kindRefused, kindInvalid, kindDeterministic} {
		if n := testutil.ToFloat64(wm.ShardsFailed.WithLabelValues(kind)); n != 0 {
			t.Errorf("the late worker counted %v failures (%s) for a shard of the ended run", n, kind)
		}
	}
	if _, err := e.res.results.Get(t.Context(), msg.resultKey()); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the late worker stored a result for the ended run: %v", err)
	}
}

// TestStaleDownloadsRemoved: a worker starting removes the download folders
// of workers that are gone (lock file, nobody holding it) and leaves a live
// worker's folder and folders that are not download folders.
func TestStaleDownloadsRemoved(t *testing.T) {
	temp := t.TempDir()
	live, err := newDownloadDir(temp)
	if err != nil {
		t.Fatal(err)
	}
	defer live.remove()
	dead, err := newDownloadDir(temp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead.path, "data.npy"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dead.lock.Close() // as when the process was killed: the lock is released, the folder stays
	other := filepath.Join(temp, downloadPrefix+"not-mine")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}

	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	ws := startWorkers(t, nc, 1, WorkerOptions{TempDir: temp})
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if _, err := os.Stat(dead.path); !os.IsNotExist(err) {
			return fmt.Errorf("the folder of a dead worker is still there (%v)", err)
		}
		return nil
	})
	ws.stop()
	for _, dir := range []string{live.path, other} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s: %v, want it kept", dir, err)
		}
	}
}
