package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// logRecords is a slog handler keeping every record, for tests that count
// warnings.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// atLeast returns the messages of the records at level or above.
func (l *logRecords) atLeast(level slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var msgs []string
	for _, r := range l.recs {
		if r.Level >= level {
			msgs = append(msgs, r.Message)
		}
	}
	return msgs
}

// withShapeStat is convnet_op13 with two Shape nodes on its input, whose
// outputs "input_shape" and "input_dims" are int64. Undeclared, the engine
// infers their type and refuses a statistic of them itself
// (engine.ErrBadStats). With lie, "input_shape" is declared FLOAT in
// value_info (as a broken exporter writes it), and ONNX Runtime's type check
// refuses the model ("Type Error: Type (tensor(float)) of output arg
// (input_shape) ... does not match expected type (tensor(int64))").
func withShapeStat(t testing.TB, lie bool) *model.CompressedModel {
	t.Helper()
	m := loadModel(t, "convnet_op13.onnx")
	p := proto.Clone(m.Models()[0].Proto).(*onnxpb.ModelProto)
	for _, name := range []string{"input_shape", "input_dims"} {
		p.Graph.Node = append(p.Graph.Node, &onnxpb.NodeProto{
			Name: proto.String(name), OpType: proto.String("Shape"),
			Input: []string{"input"}, Output: []string{name},
		})
	}
	if lie {
		p.Graph.ValueInfo = append(p.Graph.ValueInfo, &onnxpb.ValueInfoProto{
			Name: proto.String("input_shape"),
			Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(model.TypeFloat)}}},
		})
	}
	return model.NewCompressedModel(m.Name, false, &model.Stage{Name: m.Models()[0].Name, Path: m.Models()[0].Path, Proto: p})
}

// TestDeterministicErrorFailsAtOnce: a statistics model ONNX Runtime
// refuses fails the run on its first delivery: one error, no redelivery,
// no retry warning, well before MaxDeliver deliveries of every shard.
func TestDeterministicErrorFailsAtOnce(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 32, 21)
	logs := &logRecords{}
	ws := startWorkers(t, nc, 2, WorkerOptions{Log: slog.New(logs)})
	defer ws.stop()
	// The defaults of a real run: 4 deliveries, 250ms apart.
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4, MaxDeliver: 4, RetryDelay: 250 * time.Millisecond, Log: slog.New(logs)})
	if err := e.SetModel(t.Context(), withShapeStat(t, true)); err != nil {
		t.Fatal(err)
	}
	layout := testLayout()
	layout["input_shape"] = []pipeline.StatSpec{{Kind: pipeline.StatMax}}
	start := time.Now()
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layout})
	took := time.Since(start)
	t.Logf("failed after %s: %v", took, err)
	var se *ShardError
	if !errors.As(err, &se) || se.Worker == "" {
		t.Fatalf("got %v, want a *ShardError naming a worker", err)
	}
	for _, frag := range []string{"bad model", "Type Error", "input_shape"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error %q lacks %q", err, frag)
		}
	}
	if took > 5*time.Second {
		t.Errorf("took %s, want under 5s", took)
	}
	if n := testutil.ToFloat64(e.m.Redeliveries); n != 0 {
		t.Errorf("redeliveries %v, want 0", n)
	}
	if n := testutil.ToFloat64(e.m.DeadLettered); n != 1 {
		t.Errorf("dead-lettered %v, want 1", n)
	}
	if w := logs.atLeast(slog.LevelWarn); len(w) != 0 {
		t.Errorf("%d warnings or errors logged, want none (Predict reports the error): %q", len(w), w)
	}
	info, err := e.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d shards left in the stream", info.State.Msgs)
	}
}

// TestDeterministicErrorStopsOtherShards: when a shard fails the way any
// worker would, the coordinator ends the predict: the shards still queued
// are purged and the ones running elsewhere are stopped, without waiting
// for them.
func TestDeterministicErrorStopsOtherShards(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 12, 22, 5)
	gate := make(chan struct{}) // never opened: sample 0 blocks until its shard is stopped
	defer close(gate)
	logs := &logRecords{}
	ws := startWorkers(t, nc, 2, WorkerOptions{Log: slog.New(logs), WrapLoader: func(l pipeline.DataLoader) pipeline.DataLoader {
		// Samples 0 and 8 block: neither shard 0 nor shard 2 can complete,
		// whichever worker takes shard 2 before the purge.
		return &slowLoader{DataLoader: l, gate: map[int]chan struct{}{0: gate, 8: gate}}
	}})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4, Log: slog.New(logs)})
	if err := e.SetModel(t.Context(), loadModel(t, "convnet_op13.onnx")); err != nil {
		t.Fatal(err)
	}
	// Shard 0 = [0 1 2 3] blocks on sample 0; shard 1 = [4 5 6 7] fails on
	// sample 5 on the other worker; shard 2 waits in the queue, or blocks on
	// sample 8 if a worker took it before the purge.
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, nil)})
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != "1" || !errors.Is(err, ErrDeterministic) {
		t.Fatalf("got %v, want a deterministic failure of shard 1", err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, w := range ws.list {
			if n := testutil.ToFloat64(w.m.ShardsInFlight); n != 0 {
				return fmt.Errorf("worker %s still runs %v shards", w.Name(), n)
			}
		}
		return nil
	})
	info, err := e.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d shards left in the stream", info.State.Msgs)
	}
	var done, failed float64
	for _, w := range ws.list {
		done += testutil.ToFloat64(w.m.ShardsDone)
		failed += testutil.ToFloat64(w.m.ShardsFailed.WithLabelValues(kindDeterministic))
	}
	if done != 0 || failed != 1 {
		t.Errorf("workers completed %v shards and failed %v, want 0 and 1 (shard 0 stopped, shard 2 purged)", done, failed)
	}
	if w := logs.atLeast(slog.LevelWarn); len(w) != 0 {
		t.Errorf("warnings logged: %q", w)
	}
}
