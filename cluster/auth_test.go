package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// TestSeal: a sealed message opens only with its key, purpose and context.
func TestSeal(t *testing.T) {
	k := runKey(testSecret, "run-a")
	b, err := seal(k, purposeResult, "p.0", envelope{V: wireVersion, Worker: "w"})
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := unseal(k, purposeResult, "p.0", b, &env); err != nil || env.Worker != "w" {
		t.Fatalf("unseal: %v, worker %q", err, env.Worker)
	}
	tampered := strings.Replace(string(b), `"worker":"w"`, `"worker":"x"`, 1)
	noMAC, _ := json.Marshal(envelope{V: wireVersion, Worker: "w"})
	tests := []struct {
		name             string
		key              []byte
		purpose, context string
		value            string
	}{
		{"another secret", runKey("another-secret-0123456789", "run-a"), purposeResult, "p.0", string(b)},
		{"another run", runKey(testSecret, "run-b"), purposeResult, "p.0", string(b)},
		{"another shard", k, purposeResult, "p.1", string(b)},
		{"another purpose", k, purposeShard, "p.0", string(b)},
		{"tampered body", k, purposeResult, "p.0", tampered},
		{"garbage", k, purposeResult, "p.0", "\x00garbage{"},
		{"no MAC", k, purposeResult, "p.0", string(noMAC)},
		{"short", k, purposeResult, "p.0", sealMagic + "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := unseal(tc.key, tc.purpose, tc.context, []byte(tc.value), &envelope{}); !errors.Is(err, errUnauthenticated) {
				t.Errorf("got %v, want errUnauthenticated", err)
			}
		})
	}
	if keyID(k) == keyID(runKey(testSecret, "run-b")) || keyID(k) == keyID(runKey("another-secret-0123456789", "run-a")) {
		t.Error("key ids of different keys are equal")
	}
	if _, err := NewEngine(nil, RunSpec{}, EngineOptions{}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("NewEngine without a connection: %v", err)
	}
}

// TestWorkerPermissions: the worker role cannot publish shards, write run
// specs, read results by subscription or create streams; a client without
// credentials cannot connect at all.
func TestWorkerPermissions(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 2, 3)
	e := newEngine(t, nc, d.spec(), EngineOptions{})
	if _, err := e.ensureRun(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, o := range []ConnOptions{{}, {User: srv.WorkerConn().User, Password: "guess"}, {User: coordinatorUser, Password: "guess"}, {Token: "guess"}} {
		if c, err := Connect(t.Context(), srv.ClientURL(), o); !errors.Is(err, ErrAuth) {
			if c != nil {
				c.Close()
			}
			t.Errorf("connect with %+v: %v, want ErrAuth", o, err)
		}
	}
	tests := []struct {
		name string
		do   func(c *nats.Conn) error
	}{
		{"publish a shard", func(c *nats.Conn) error { return c.Publish(shardSubject(e.RunID(), "p"), []byte("{}")) }},
		{"write a run spec", func(c *nats.Conn) error { return c.Publish("$KV."+RunsBucket+"."+e.RunID(), []byte("{}")) }},
		{"write a model", func(c *nats.Conn) error { return c.Publish("$O."+ModelsBucket+".C.x", []byte("x")) }},
		{"watch results", func(c *nats.Conn) error { _, err := c.SubscribeSync("$KV." + ResultsBucket + ".>"); return err }},
		// Results and partial statistics, of this run or another, are not
		// for workers to read.
		{"read a result", func(c *nats.Conn) error {
			return c.Publish("$JS.API.DIRECT.GET.KV_"+ResultsBucket+".$KV."+ResultsBucket+"."+e.RunID()+"-x-1.0-2", nil)
		}},
		{"read a result by sequence", func(c *nats.Conn) error {
			return c.Publish("$JS.API.STREAM.MSG.GET.KV_"+ResultsBucket, []byte(`{"seq": 1}`))
		}},
		{"read partial statistics", func(c *nats.Conn) error {
			return c.Publish("$JS.API.CONSUMER.CREATE.OBJ_"+PartialsBucket, []byte("{}"))
		}},
		{"read a chunk of partial statistics", func(c *nats.Conn) error {
			return c.Publish("$JS.API.DIRECT.GET.OBJ_"+PartialsBucket+".$O."+PartialsBucket+".C.x", nil)
		}},
		{"create a stream", func(c *nats.Conn) error { return c.Publish("$JS.API.STREAM.CREATE.EVIL", []byte("{}")) }},
		{"delete the work queue", func(c *nats.Conn) error { return c.Publish("$JS.API.STREAM.DELETE."+StreamName, nil) }},
		{"cancel a predict", func(c *nats.Conn) error { return c.Publish(cancelSubject("p"), nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := connectAs(t, srv.ClientURL(), srv.WorkerConn())
			if err := tc.do(c); err != nil {
				t.Fatal(err)
			}
			_ = c.Flush()
			checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if err := c.LastError(); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
					return fmt.Errorf("last error %v, want a permissions violation", err)
				}
				return nil
			})
		})
	}
	info, err := e.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d messages on the work queue, want 0", info.State.Msgs)
	}
}

// TestForgedResults: results forged without the run key, replayed from
// another run, garbage and forged error results change nothing: each is
// written by a client with the worker role (which may pull shards and
// write results) that steals the shard first; the coordinator drops it,
// counts it and redoes the shard, and the statistics are bit-identical to
// an undisturbed run. Clients without credentials are refused by the
// server.
func TestForgedResults(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 8, 5)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)}
	want := reference(t, d, m, o)

	// A genuine result of another run, to replay.
	wnc := connectAs(t, srv.ClientURL(), srv.WorkerConn())
	defer noPermissionErrors(t, wnc)
	other := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4})
	if err := other.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	ws := startWorkers(t, wnc, 1, WorkerOptions{})
	if _, err := other.Predict(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	ws.stop()
	genuine, err := other.res.results.Get(t.Context(), resultKey(fmt.Sprintf("%s-%s-1", other.RunID(), other.nonce), "0", ""))
	if err != nil {
		t.Fatal(err)
	}

	wrongKey := func(run string) []byte { return runKey("not-the-fleet-secret-0123", run) }
	empty, err := reduce.NewSet().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		value func(job *shardMsg) []byte
	}{
		{"forged", func(job *shardMsg) []byte {
			b, _ := seal(wrongKey(job.Run), purposeResult, job.resultKey(), envelope{V: wireVersion, Worker: "evil", Samples: len(job.Indices),
				Stats: &blob{Inline: empty, SHA256: sum(empty), Size: len(empty)}})
			return b
		}},
		{"replayed from another run", func(*shardMsg) []byte { return genuine.Value() }},
		{"garbage", func(*shardMsg) []byte { return []byte("\x00garbage{") }},
		{"unsealed envelope", func(job *shardMsg) []byte {
			b, _ := json.Marshal(envelope{V: wireVersion, Worker: "evil", Samples: len(job.Indices), Stats: &blob{Inline: empty, SHA256: sum(empty), Size: len(empty)}})
			return b
		}},
		{"forged error", func(job *shardMsg) []byte {
			b, _ := seal(wrongKey(job.Run), purposeResult, job.resultKey(), envelope{V: wireVersion, Worker: "evil", Samples: len(job.Indices),
				Error: "sample 0: boom", Kind: kindDeterministic, Cause: "bad_input"})
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Without credentials, or with a guessed password: refused.
			for _, co := range []ConnOptions{{}, {User: srv.WorkerConn().User, Password: "guess"}} {
				if c, err := Connect(t.Context(), srv.ClientURL(), co); !errors.Is(err, ErrAuth) {
					if c != nil {
						c.Close()
					}
					t.Fatalf("unauthorized client: %v, want ErrAuth", err)
				}
			}
			e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4})
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
			// With the worker role: steal shard 0, write the value, ack.
			attacker := connectAs(t, srv.ClientURL(), srv.WorkerConn())
			job := steal(t, attacker, "0")
			js, err := jetstream.New(attacker)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(t.Context(), ResultsBucket)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Create(t.Context(), job.resultKey(), tc.value(job)); err != nil {
				t.Fatal(err)
			}
			checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if n := testutil.ToFloat64(e.m.ResultsRejected.WithLabelValues(rejectUnauthenticated)); n != 1 {
					return fmt.Errorf("%v results rejected, want 1", n)
				}
				return nil
			})
			ws := startWorkers(t, wnc, 2, WorkerOptions{})
			defer ws.stop()
			out := <-done
			if out.err != nil {
				t.Fatal(out.err)
			}
			sameStats(t, out.res, want)
			if n := testutil.ToFloat64(e.m.ShardsDone); n != 2 {
				t.Errorf("shards done %v, want 2", n)
			}
			noPermissionErrors(t, attacker)
		})
	}
}

// steal pulls shards from the work queue as a worker-role client until it
// gets the first attempt of shard key, acknowledges it and returns it;
// other shards are handed back.
func steal(t *testing.T, nc *nats.Conn, key string) *shardMsg {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, StreamName, ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		var job shardMsg
		body, err := sealedBody(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, &job); err != nil {
			t.Fatal(err)
		}
		if job.Shard != key || job.Attempt != "" {
			_ = msg.Nak()
			continue
		}
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		return &job
	}
	t.Fatalf("shard %s never came", key)
	return nil
}

// TestForgedShard: a shard message not sealed with the run key (here
// published by a client with every right, as on a server without
// permissions) is dropped by the worker, which stores no result for it.
func TestForgedShard(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 4, 6)
	e := newEngine(t, nc, d.spec(), EngineOptions{})
	if err := e.SetModel(t.Context(), loadModel(t, "convnet_op13.onnx")); err != nil {
		t.Fatal(err)
	}
	rev, err := e.ensureRun(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wm := NewWorkerMetrics(nil)
	ws := startWorkers(t, nc, 1, WorkerOptions{Metrics: wm})
	defer ws.stop()
	job := shardMsg{V: wireVersion, Run: e.RunID(), RunRev: rev, Predict: e.RunID() + "-forged-1", Shard: "0", KeyID: e.keyID,
		Indices: []int{0, 1}, Model: *e.model, BatchSize: 1, AckWaitMS: 5000, MaxDeliver: 1}
	b, err := seal(wrongKeyFor(e.RunID()), purposeShard, job.resultKey(), &job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.js.Publish(t.Context(), shardSubject(e.RunID(), job.Predict), b); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		info, err := e.stream.Info(t.Context())
		if err != nil || info.State.Msgs != 0 {
			return fmt.Errorf("shard still queued (%v)", err)
		}
		return nil
	})
	if _, err := e.res.results.Get(t.Context(), job.resultKey()); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("result of the forged shard: %v, want none", err)
	}
	if n := testutil.ToFloat64(wm.ShardsDone); n != 0 {
		t.Errorf("worker ran %v shards, want 0", n)
	}
}

func wrongKeyFor(run string) []byte { return runKey("not-the-fleet-secret-0123", run) }

// TestDataMismatch: a worker whose data files differ from the ones the
// coordinator hashed refuses the run with an error naming the file.
func TestDataMismatch(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	m := loadModel(t, "convnet_op13.onnx")
	tests := []struct {
		name   string
		change func(t *testing.T, d *dataset) string // returns the file named
	}{
		{"same size, other bytes", func(t *testing.T, d *dataset) string {
			p := filepath.Join(d.dir, "calib", "002.npy")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-1] ^= 0x40
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return p + ": SHA-256 "
		}},
		{"missing file", func(t *testing.T, d *dataset) string {
			p := filepath.Join(d.dir, "calib", "001.npy")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return p + ": missing on this worker"
		}},
		{"extra file", func(t *testing.T, d *dataset) string {
			p := filepath.Join(d.dir, "calib", "009.npy")
			writeNpy(t, p, []int{3, 16, 16}, make([]float32, 3*16*16))
			return p + ": not on the coordinator"
		}},
		{"other labels", func(t *testing.T, d *dataset) string {
			p := filepath.Join(d.dir, "labels.json")
			if err := os.WriteFile(p, []byte(`{"000": 1}`), 0o644); err != nil {
				t.Fatal(err)
			}
			return p + ": "
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := makeDataset(t, 4, 8)
			e := newEngine(t, nc, d.spec(), EngineOptions{MaxDeliver: 1})
			if err := e.SetModel(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			// The coordinator hashes its files; then the worker's differ.
			if _, err := e.ensureRun(t.Context()); err != nil {
				t.Fatal(err)
			}
			frag := tc.change(t, d)
			ws := startWorkers(t, nc, 1, WorkerOptions{})
			defer ws.stop()
			_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: testLayout()})
			if !errors.Is(err, ErrDataMismatch) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "data file "+frag) {
				t.Fatalf("got %v, want ErrDataMismatch naming %q", err, frag)
			}
		})
	}
}

// TestOtherSecret: a worker holding another fleet secret hands shards back
// and says why; with no other worker, Predict fails naming the cause.
func TestOtherSecret(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 1, 4)
	ws := startWorkers(t, nc, 1, WorkerOptions{Secret: "not-the-fleet-secret-0123"})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{MaxDeliver: 2, AckWait: time.Second})
	if err := e.SetModel(t.Context(), loadModel(t, "convnet_op13.onnx")); err != nil {
		t.Fatal(err)
	}
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: testLayout()})
	if !errors.Is(err, ErrDeadLetter) || !strings.Contains(err.Error(), "does not hold the run's fleet secret") {
		t.Fatalf("got %v, want ErrDeadLetter naming the secret", err)
	}
	if n := testutil.ToFloat64(e.m.ShardsDone); n != 0 {
		t.Errorf("shards done %v, want 0", n)
	}
}

// BenchmarkDataDigest measures the data check of a run without shipped
// data: the coordinator's hashing of every file (newManifest) and a
// worker's check (verifyData), on 256 files of 256 KiB (64 MiB, in the
// page cache). bytes/op is the data set's size.
func BenchmarkDataDigest(b *testing.B) {
	dir := b.TempDir()
	calib := filepath.Join(dir, "calib")
	if err := os.Mkdir(calib, 0o755); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	for i := range 256 {
		buf[0] = byte(i)
		if err := os.WriteFile(filepath.Join(calib, fmt.Sprintf("%03d.npy", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	src := decodeSource(b, `{"type": "npy", "path": "calib"}`, dir)
	m, err := newManifest(b.Context(), src, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Coordinator", func(b *testing.B) {
		b.SetBytes(256 * 256 << 10)
		for b.Loop() {
			if _, err := newManifest(b.Context(), src, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Worker", func(b *testing.B) {
		b.SetBytes(256 * 256 << 10)
		for b.Loop() {
			if err := verifyData(b.Context(), m, src, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WorkerNextRun", func(b *testing.B) { // the digests are cached
		b.SetBytes(256 * 256 << 10)
		var c digestCache
		if err := verifyData(b.Context(), m, src, nil, &c); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := verifyData(b.Context(), m, src, nil, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDigestCache: a worker's cached digests are used only while a file
// keeps its size, modification time and inode: a file rewritten in place,
// or replaced by another with the old modification time, is hashed again
// and the difference found.
func TestDigestCache(t *testing.T) {
	d := makeDataset(t, 3, 10)
	spec := d.spec()
	m, err := newManifest(t.Context(), spec.DataSource, spec.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(ctx context.Context, c *digestCache) error {
		return verifyData(ctx, m, spec.DataSource, spec.Annotations, c)
	}
	var c digestCache
	if err := verify(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.m) != 4 { // three samples and the labels
		t.Fatalf("%d digests cached, want 4", len(c.m))
	}
	p := filepath.Join(d.dir, "calib", "001.npy")
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	changed := append([]byte(nil), orig...)
	changed[len(changed)-1] ^= 1
	for _, how := range []string{"rewritten later", "replaced, old time"} {
		t.Run(how, func(t *testing.T) {
			if how == "rewritten later" {
				if err := os.WriteFile(p, changed, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, st.ModTime().Add(time.Second), st.ModTime().Add(time.Second)); err != nil {
					t.Fatal(err)
				}
			} else {
				tmp := p + ".new"
				if err := os.WriteFile(tmp, changed, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(tmp, st.ModTime(), st.ModTime()); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, p); err != nil {
					t.Fatal(err)
				}
			}
			if err := verify(t.Context(), &c); !errors.Is(err, ErrDataMismatch) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v, want ErrDataMismatch naming %s", err, p)
			}
			if err := os.WriteFile(p, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := verify(t.Context(), &c); err != nil {
				t.Fatalf("original bytes back: %v", err)
			}
		})
	}
}

// TestBadPayloadRedone: an authenticated result that cannot be used (its
// statistics do not match their checksum) is dropped and its shard redone;
// the statistics are those of an undisturbed run.
func TestBadPayloadRedone(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 4, 11)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout()}
	want := reference(t, d, m, o)
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4})
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
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		info, err := e.stream.Info(t.Context())
		if err != nil || info.State.Msgs == 0 {
			return errors.New("shard not published yet")
		}
		return nil
	})
	key := resultKey(fmt.Sprintf("%s-%s-1", e.RunID(), e.nonce), "0", "")
	stats := []byte("not these bytes")
	b, err := seal(e.key, purposeResult, key, envelope{V: wireVersion, Worker: "buggy", Samples: 4, Stats: &blob{Inline: stats, SHA256: sum([]byte("other")), Size: len(stats)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.results.Create(t.Context(), key, b); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := testutil.ToFloat64(e.m.ResultsRejected.WithLabelValues(rejectBadPayload)); n != 1 {
			return fmt.Errorf("%v bad payloads, want 1", n)
		}
		return nil
	})
	ws := startWorkers(t, nc, 1, WorkerOptions{})
	defer ws.stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameStats(t, got, want)
}

// TestResultDeletedOrPartialGone: a result deleted before the coordinator
// read it, and a result whose partial is missing from the Object Store
// (both within reach of a worker-role client), get their shard redone
// without limit, even with MaxDeliver 1; the statistics are unchanged.
func TestResultDeletedOrPartialGone(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	wnc := connectAs(t, srv.ClientURL(), srv.WorkerConn())
	d := makeDataset(t, 4, 12)
	m := loadModel(t, "convnet_op13.onnx")
	o := pipeline.PredictOptions{StatsLayout: testLayout()}
	want := reference(t, d, m, o)
	tests := []struct {
		name   string
		reason string
		do     func(t *testing.T, e *Engine, kv jetstream.KeyValue, job *shardMsg)
	}{
		{"deleted", rejectDeleted, func(t *testing.T, _ *Engine, kv jetstream.KeyValue, job *shardMsg) {
			if err := kv.Delete(t.Context(), job.resultKey()); err != nil {
				t.Fatal(err)
			}
		}},
		{"partial gone", rejectUnauthenticated, func(t *testing.T, e *Engine, kv jetstream.KeyValue, job *shardMsg) {
			// As a worker would seal it, pointing at a partial since deleted.
			b, err := seal(e.key, purposeResult, job.resultKey(), envelope{V: wireVersion, Worker: "w", Samples: 4,
				Stats: &blob{Object: job.Predict + "/0/gone.stats", SHA256: sum(nil), Size: 0}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Create(t.Context(), job.resultKey(), b); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4, MaxDeliver: 1})
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
			job := steal(t, wnc, "0")
			js, err := jetstream.New(wnc)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(t.Context(), ResultsBucket)
			if err != nil {
				t.Fatal(err)
			}
			tc.do(t, e, kv, job)
			checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
				if n := testutil.ToFloat64(e.m.ResultsRejected.WithLabelValues(tc.reason)); n != 1 {
					return fmt.Errorf("%v rejected as %s, want 1", n, tc.reason)
				}
				return nil
			})
			ws := startWorkers(t, wnc, 1, WorkerOptions{})
			defer ws.stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			sameStats(t, got, want)
		})
	}
	noPermissionErrors(t, wnc)
}
