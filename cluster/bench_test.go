package cluster

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetcal/fleetcal/algorithms/qmath"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
	"github.com/fleetcal/fleetcal/sharding"
)

// The simulated fleet: the coordinator's side of a calibration pass fed
// with recorded worker results, to measure what the coordinator costs per
// shard (decode, verify, merge) and what it holds in memory, without ONNX
// Runtime in the way.
const (
	simTensors   = 50 // activations observed, as in a mid-sized CNN
	simShardSize = 16 // samples per shard: EngineOptions' default
	simWorkers   = 64
	simBins      = 2048 // the histogram estimator's default bins
)

// simKinds are the kinds of partial statistics a worker returns:
//   - MinMax: per-sample min and max of every tensor (what DefaultQuantization's
//     first pass asked for before its estimators folded their statistics,
//     and what the median and *_no_outliers aggregators still ask for); the
//     coordinator keeps one value per sample by design (reduce.PerSample),
//     so its memory grows with the samples;
//   - Default: the statistics of DefaultQuantization's default range
//     estimators, symmetric (min, min; abs_max, mean) and asymmetric (min,
//     mean; max, mean), folded over samples (reduce.Fold): four folds of
//     every tensor, whose size does not depend on the samples;
//   - Hist: a 2048-bin |x| histogram of every tensor (the histogram
//     estimator's second pass), which merges into tensors × bins counts.
var simKinds = []string{"MinMax", "Default", "Hist"}

// simDefaultSpecs are the statistics of the Default kind, from the default
// range estimators.
var simDefaultSpecs = func() []pipeline.StatSpec {
	var specs []pipeline.StatSpec
	for _, symmetric := range []bool{true, false} {
		mn, mx, err := qmath.RangeEstimator{}.Resolve(symmetric)
		if err != nil {
			panic(err)
		}
		for _, s := range []pipeline.StatSpec{mn.StatSpec(), mx.StatSpec()} {
			if !slices.ContainsFunc(specs, func(o pipeline.StatSpec) bool { return o.Key() == s.Key() }) {
				specs = append(specs, s)
			}
		}
	}
	return specs
}()

// simPartial is one recorded worker result, replayed for any shard of
// simShardSize consecutive samples.
type simPartial struct {
	kind string
	// pieces is the encoded Set of a shard whose first sample is 0, cut
	// where each per-sample statistic writes its first index (a
	// varint); the other indices are written as deltas, the same for every
	// shard of consecutive samples.
	pieces [][]byte
}

func simTensor(i int) string {
	return fmt.Sprintf("/stage%d/block%d/conv%d/Conv_output_0", i/16, i/4%4, i%4)
}

// simLayout is the statistics layout of a kind (what the shard messages carry).
func simLayout(kind string) pipeline.StatsLayout {
	l := pipeline.StatsLayout{}
	for i := range simTensors {
		switch kind {
		case "Hist":
			l[simTensor(i)] = []pipeline.StatSpec{{Kind: pipeline.StatAbsHistogram, Bins: simBins, Hi: 8}}
		case "Default":
			l[simTensor(i)] = simDefaultSpecs
		default:
			l[simTensor(i)] = []pipeline.StatSpec{{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}}
		}
	}
	return l
}

// recordPartial computes the result a worker returns for a shard of
// simShardSize samples starting at first, with seeded values.
func recordPartial(tb testing.TB, kind string, first int) []byte {
	tb.Helper()
	r := rand.New(rand.NewPCG(7, 11))
	set := reduce.NewSet()
	vs := make([]float32, 4096)
	for i := range simTensors {
		name := simTensor(i)
		for _, spec := range simLayout(kind)[name] {
			key := spec.Key()
			if spec.Kind == pipeline.StatAbsHistogram {
				h, err := set.EnsureHist(name, key, 0, spec.Hi, spec.Bins)
				if err != nil {
					tb.Fatal(err)
				}
				for range simShardSize {
					for j := range vs {
						vs[j] = float32(r.ExpFloat64())
					}
					h.AddFloat32s(vs)
				}
				continue
			}
			for s := range simShardSize {
				v := r.NormFloat64()
				switch spec.Kind {
				case pipeline.StatMax:
					v += 4
				case pipeline.StatAbsMax:
					v = math.Abs(v) + 4
				}
				if spec.Fold != reduce.FoldNone {
					// A float32 activation's min or max, as the engine folds it.
					if err := set.AddFold(name, key, spec.Fold, float64(float32(v))); err != nil {
						tb.Fatal(err)
					}
					continue
				}
				if err := set.Add(name, key, first+s, []float64{v}); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	b, err := set.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// record encodes the recorded result once and finds where the first
// indices go: encoded with first sample 0 and 1, the encodings differ
// exactly there (zig-zag varints 0x00 and 0x02). Folds hold no index: a
// Default result is the same bytes for every shard.
func record(tb testing.TB, kind string) *simPartial {
	tb.Helper()
	a, b := recordPartial(tb, kind, 0), recordPartial(tb, kind, 1)
	if len(a) != len(b) {
		tb.Fatalf("%s: encodings of %d and %d bytes", kind, len(a), len(b))
	}
	sp := &simPartial{kind: kind}
	last := 0
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		if a[i] != 0x00 || b[i] != 0x02 {
			tb.Fatalf("%s: byte %d: %#x and %#x, want a first index 0 and 1", kind, i, a[i], b[i])
		}
		sp.pieces = append(sp.pieces, a[last:i])
		last = i + 1
	}
	sp.pieces = append(sp.pieces, a[last:])
	if got := sp.encode(1); !bytes.Equal(got, b) {
		tb.Fatalf("%s: replay of shard 1 differs from its encoding", kind)
	}
	return sp
}

// encode is the recorded result for the shard whose samples are
// first..first+simShardSize-1.
func (sp *simPartial) encode(first int) []byte {
	n := len(sp.pieces[0])
	for _, p := range sp.pieces[1:] {
		n += len(p) + 4
	}
	out := make([]byte, 0, n)
	out = append(out, sp.pieces[0]...)
	for _, p := range sp.pieces[1:] {
		out = appendVarint(out, first)
		out = append(out, p...)
	}
	return out
}

func appendVarint(b []byte, v int) []byte {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

// simKey is the run key of the simulated runs.
var simKey = runKey(testSecret, "sim")

// envelope is the body of the value a worker stores for shard sh; sealed
// (simSeal) for its key, it is that value.
func (sp *simPartial) envelope(tb testing.TB, sh sharding.Shard, worker int) []byte {
	stats := sp.encode(sh.Indices[0])
	b, err := json.Marshal(envelope{V: wireVersion, Worker: fmt.Sprintf("sim-%02d", worker), Samples: len(sh.Indices),
		Seconds: 0.2, Stats: &blob{Inline: stats, SHA256: sum(stats), Size: len(stats)}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// simSeal seals an envelope's body for a result key, as a worker does.
func simSeal(tb testing.TB, e simEntry) simEntry {
	v, err := seal(simKey, purposeResult, e.key, json.RawMessage(e.value))
	if err != nil {
		tb.Fatal(err)
	}
	return simEntry{e.key, v}
}

// simEntry is a KeyValue entry as the results watcher delivers it.
type simEntry struct {
	key   string
	value []byte
}

func (e simEntry) Bucket() string                  { return ResultsBucket }
func (e simEntry) Key() string                     { return e.key }
func (e simEntry) Value() []byte                   { return e.value }
func (e simEntry) Revision() uint64                { return 1 }
func (e simEntry) Created() time.Time              { return time.Time{} }
func (e simEntry) Delta() uint64                   { return 0 }
func (e simEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

// simPlan is the plan of a pass over shards × simShardSize samples.
func simPlan(tb testing.TB, shards int) []sharding.Shard {
	tb.Helper()
	idx := make([]int, shards*simShardSize)
	for i := range idx {
		idx[i] = i
	}
	plan, err := sharding.Plan(idx, simShardSize)
	if err != nil {
		tb.Fatal(err)
	}
	return plan
}

// simArrival is the order in which 64 workers deliver the plan's results:
// each takes the next shard when it is free and needs 0.5 to 1.5 times the
// mean shard time, so results arrive up to a few dozen shards out of order.
func simArrival(n int) []int {
	r := rand.New(rand.NewPCG(3, 5))
	free := make(simHeap, simWorkers) // the time each worker is free
	type done struct {
		shard  int
		finish float64
	}
	out := make([]done, n)
	for i := range n {
		t := heap.Pop(&free).(float64)
		f := t + 0.5 + r.Float64()
		out[i] = done{i, f}
		heap.Push(&free, f)
	}
	order := make([]int, n)
	slices.SortStableFunc(out, func(a, b done) int { return cmp.Compare(a.finish, b.finish) })
	for i, d := range out {
		order[i] = d.shard
	}
	return order
}

type simHeap []float64

func (h simHeap) Len() int           { return len(h) }
func (h simHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h simHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *simHeap) Push(x any)        { *h = append(*h, x.(float64)) }
func (h *simHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// simRun is a coordinator's Predict state for plan, as Predict sets it up
// after publishing the shards (without NATS).
func simRun(plan []sharding.Shard) *predictRun {
	e := &Engine{m: NewCoordinatorMetrics(nil), log: slog.New(slog.DiscardHandler), key: simKey}
	p := &predictRun{e: e, id: "sim", shards: map[string]*shardState{}, bySeq: map[uint64]*shardState{},
		stats: reduce.NewSet(), log: e.log, total: len(plan) * simShardSize}
	for i, sh := range plan {
		p.track(sh, uint64(i+1))
	}
	return p
}

// checkSim checks the merged statistics of a simulated pass.
func checkSim(tb testing.TB, kind string, shards int, res pipeline.PredictResult) {
	tb.Helper()
	name := simTensor(simTensors - 1)
	if kind == "Hist" {
		h := res.Stats.Hist(name, simLayout(kind)[name][0].Key())
		if h == nil || h.Total() != uint64(shards*simShardSize*4096) {
			tb.Fatalf("%s: histogram of %s: %v, want %d values", kind, name, h, shards*simShardSize*4096)
		}
		return
	}
	if kind == "Default" {
		for _, spec := range simDefaultSpecs {
			f := res.Stats.Fold(name, spec.Key())
			if f == nil || f.Count() != uint64(shards*simShardSize) {
				tb.Fatalf("%s: %s of %s: %v, want %d samples", kind, spec.Key(), name, f, shards*simShardSize)
			}
		}
		return
	}
	ps := res.Stats.Get(name, pipeline.StatSpec{Kind: pipeline.StatMax}.Key())
	if ps == nil || ps.Len() != shards*simShardSize {
		tb.Fatalf("%s: max of %s: want %d samples", kind, name, shards*simShardSize)
	}
}

// BenchmarkSimulatedFleetMerge measures the coordinator's path for every
// result of a pass of 1,000 and 10,000 shards of 16 samples: decode the
// envelope (JSON, base64), verify size and SHA-256, decode the statistics,
// check their sample indices and merge them in shard order, as 64 workers
// deliver them (up to a few dozen shards out of order). The results are
// recorded and encoded before the timer starts, but sealed (the worker's
// HMAC) inside it, with the coordinator's check of the MAC; NATS is left
// out (see BenchmarkSimulatedFleetNATS). bytes/op is the encoded statistics.
func BenchmarkSimulatedFleetMerge(b *testing.B) {
	for _, kind := range simKinds {
		sp := record(b, kind)
		for _, shards := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/%dShards", kind, shards), func(b *testing.B) {
				plan := simPlan(b, shards)
				var entries []simEntry
				var n int64
				var same []byte // Hist: every shard's result has the same bytes
				for i, s := range simArrival(shards) {
					v := same
					if v == nil {
						v = sp.envelope(b, plan[s], i%simWorkers)
						if kind != "MinMax" {
							same = v
						}
					}
					entries = append(entries, simEntry{resultKey("sim", plan[s].Key(), ""), v})
					n += int64(len(v))
				}
				b.SetBytes(n)
				b.ReportAllocs()
				ctx := b.Context()
				for b.Loop() {
					p := simRun(plan)
					for _, ent := range entries {
						if err := p.onResult(ctx, simSeal(b, ent)); err != nil {
							b.Fatal(err)
						}
					}
					res, err := p.finish()
					if err != nil {
						b.Fatal(err)
					}
					checkSim(b, kind, shards, res)
				}
				b.ReportMetric(float64(shards*b.N)/b.Elapsed().Seconds(), "shards/s")
			})
		}
	}
}

// simChildEnv makes the test binary run one simulated pass and report.
const simChildEnv = "FLEETCAL_SIMFLEET_CHILD"

// simMemory is what a child reports of its pass.
type simMemory struct {
	MaxRSS       int64   `json:"max_rss"`       // bytes, getrusage
	PeakHeap     uint64  `json:"peak_heap"`     // bytes, HeapInuse sampled every 16 shards
	LiveAfter    uint64  `json:"live_after"`    // bytes, HeapAlloc after GC with the result held
	Seconds      float64 `json:"seconds"`       // the pass, workers' encoding included
	ResultBytes  int64   `json:"result_bytes"`  // encoded size of the merged statistics
	PartialBytes int64   `json:"partial_bytes"` // sum of the results' envelopes
}

// TestSimulatedFleetChild is the child: it runs one simulated pass, the
// workers' results encoded as they arrive (nothing recorded is held), and
// prints its memory use. It does nothing unless simChildEnv is set
// ("KIND,SHARDS", or "KIND,SHARDS,gc" to collect garbage every 4 shards, so
// that the peaks measure what the coordinator holds rather than when Go's
// GC happened to run).
func TestSimulatedFleetChild(t *testing.T) {
	arg := os.Getenv(simChildEnv)
	if arg == "" {
		t.Skip("runs as the child of TestSimulatedFleetMemory and BenchmarkSimulatedFleetMemory")
	}
	kind, n, _ := strings.Cut(arg, ",")
	n, mode, _ := strings.Cut(n, ",")
	shards, err := strconv.Atoi(n)
	if err != nil {
		t.Fatal(err)
	}
	sp := record(t, kind)
	plan := simPlan(t, shards)
	runtime.GC()
	start := time.Now()
	p := simRun(plan)
	var m runtime.MemStats
	var out simMemory
	var same []byte
	for i, s := range simArrival(shards) {
		v := same
		if v == nil {
			v = sp.envelope(t, plan[s], i%simWorkers)
			if kind != "MinMax" {
				same = v
			}
		}
		out.PartialBytes += int64(len(v))
		if err := p.onResult(t.Context(), simSeal(t, simEntry{resultKey("sim", plan[s].Key(), ""), v})); err != nil {
			t.Fatal(err)
		}
		if mode == "gc" && i%4 == 0 {
			runtime.GC()
		}
		if i%16 == 0 {
			runtime.ReadMemStats(&m)
			out.PeakHeap = max(out.PeakHeap, m.HeapInuse)
		}
	}
	res, err := p.finish()
	if err != nil {
		t.Fatal(err)
	}
	out.Seconds = time.Since(start).Seconds()
	runtime.ReadMemStats(&m)
	out.PeakHeap = max(out.PeakHeap, m.HeapInuse)
	checkSim(t, kind, shards, res)
	runtime.GC()
	runtime.ReadMemStats(&m)
	out.LiveAfter = m.HeapAlloc
	enc, err := res.Stats.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	out.ResultBytes = int64(len(enc))
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	out.MaxRSS = ru.Maxrss << 10
	b, _ := json.Marshal(out)
	fmt.Printf("SIMFLEET %s\n", b)
}

// simChild runs a simulated pass of shards in a child process (the test
// binary, with ONNX Runtime loaded as in a coordinator) and returns its
// report; mode "gc" collects garbage every 4 shards.
func simChild(tb testing.TB, kind string, shards int, mode string) simMemory {
	tb.Helper()
	cmd := exec.CommandContext(tb.Context(), os.Args[0], "-test.run=^TestSimulatedFleetChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%s", simChildEnv, kind, shards, mode))
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("child %s %d: %v\n%s", kind, shards, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(line, "SIMFLEET "); ok {
			var m simMemory
			if err := json.Unmarshal([]byte(j), &m); err != nil {
				tb.Fatal(err)
			}
			return m
		}
	}
	tb.Fatalf("child %s %d printed no report:\n%s", kind, shards, out)
	return simMemory{}
}

// TestSimulatedFleetMemory: with histogram partials, and with the folds of
// the default range estimators, the coordinator's peak RSS does not grow
// with the number of samples (10× the shards, less than 10% more);
// per-sample statistics grow by design (one value per sample and
// statistic) and are only reported by the benchmark. The children collect
// garbage every 4 shards: without that, the peak heap of a 100-shard pass
// varies from 6 to 11 MB with the GC's timing (RSS 55 to 60 MB), as much
// as what is measured. Keeping every partial (the coordinator before it
// merged on arrival) takes 80 MB more at 100 shards.
func TestSimulatedFleetMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("four child processes")
	}
	const small = 100 // shards of 16 samples; about 0.5 s of decoding per 100 Hist shards here
	for _, kind := range []string{"Hist", "Default"} {
		a, b := simChild(t, kind, small, "gc"), simChild(t, kind, 10*small, "gc")
		t.Logf("%s: %d shards: max RSS %.1f MB, peak heap %.1f MB; %d shards: max RSS %.1f MB, peak heap %.1f MB",
			kind, small, mb(a.MaxRSS), mb(int64(a.PeakHeap)), 10*small, mb(b.MaxRSS), mb(int64(b.PeakHeap)))
		if float64(b.MaxRSS) > 1.10*float64(a.MaxRSS) {
			t.Errorf("%s: max RSS %.1f MB with %d shards, %.1f MB with %d: more than 10%% growth",
				kind, mb(b.MaxRSS), 10*small, mb(a.MaxRSS), small)
		}
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// BenchmarkSimulatedFleetMemory reports a child's peak RSS and heap for a
// simulated pass of 1,000 and 10,000 shards (16,000 and 160,000 samples);
// the GC4 variants collect garbage every 4 shards, as
// TestSimulatedFleetMemory does (not for MinMax, whose heap of hundreds of
// MB would make that minutes of GC).
func BenchmarkSimulatedFleetMemory(b *testing.B) {
	for _, kind := range simKinds {
		for _, mode := range []string{"", "gc"} {
			if mode == "gc" && kind == "MinMax" {
				continue
			}
			for _, shards := range []int{1000, 10000} {
				name := fmt.Sprintf("%s/%dShards", kind, shards)
				if mode == "gc" {
					name += "/GC4"
				}
				b.Run(name, func(b *testing.B) {
					var m simMemory
					for b.Loop() {
						m = simChild(b, kind, shards, mode)
					}
					b.ReportMetric(mb(m.MaxRSS), "peak-RSS-MB")
					b.ReportMetric(mb(int64(m.PeakHeap)), "peak-heap-MB")
					b.ReportMetric(mb(int64(m.LiveAfter)), "live-heap-MB")
					b.ReportMetric(mb(m.ResultBytes), "result-MB")
					b.ReportMetric(float64(shards)/m.Seconds, "shards/s")
				})
			}
		}
	}
}

// BenchmarkSimulatedFleetNATS runs passes of 10,000 shards of per-sample
// min/max through an embedded NATS server: Engine.Predict publishes the
// shards on the work queue, 64 simulated workers (one connection each) pull
// them one at a time, store the recorded result with KeyValue.Create and
// acknowledge; the coordinator watches, decodes and merges. The server,
// the workers and the coordinator share the machine's cores.
func BenchmarkSimulatedFleetNATS(b *testing.B) {
	const shards = 10000
	sp := record(b, "MinMax")
	srv := startServer(b, ServerOptions{})
	nc := connect(b, srv)
	// The simulated workers read no data; NewEngine wants the folder to exist.
	e := newEngine(b, nc, RunSpec{DataSource: decodeSource(b, `{"type": "npy", "path": "."}`, b.TempDir()), Len: shards * simShardSize, SameHost: true},
		EngineOptions{ShardSize: simShardSize})
	if err := e.SetModel(b.Context(), loadModel(b, "convnet_op13.onnx")); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for w := range simWorkers {
		wnc := connect(b, srv)
		wg.Go(func() {
			if err := simWorker(ctx, wnc, sp, w); err != nil && ctx.Err() == nil {
				b.Error(err)
			}
		})
	}
	opts := pipeline.PredictOptions{StatsLayout: simLayout("MinMax"), Sampler: pipeline.NewBatchSampler(shards*simShardSize, 1, nil)}
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Predict(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		checkSim(b, "MinMax", shards, res)
	}
	b.ReportMetric(float64(shards*b.N)/b.Elapsed().Seconds(), "shards/s")
}

// simWorker serves shards with the recorded result until ctx ends.
func simWorker(ctx context.Context, nc *nats.Conn, sp *simPartial, id int) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	res, cons, err := bindResources(ctx, js)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		for msg := range batch.Messages() {
			var job shardMsg
			body, err := sealedBody(msg.Data())
			if err != nil {
				return err
			}
			if err := json.Unmarshal(body, &job); err != nil {
				return err
			}
			key := runKey(testSecret, job.Run)
			for i, idx := range job.Indices {
				if idx != job.Indices[0]+i || len(job.Indices) != simShardSize {
					return fmt.Errorf("shard %s: indices %v are not %d consecutive samples", job.Shard, job.Indices, simShardSize)
				}
			}
			stats := sp.encode(job.Indices[0])
			b, err := seal(key, purposeResult, job.resultKey(), envelope{V: wireVersion, Worker: fmt.Sprintf("sim-%02d", id), Samples: len(job.Indices),
				Stats: &blob{Inline: stats, SHA256: sum(stats), Size: len(stats)}})
			if err != nil {
				return err
			}
			if _, err := res.results.Create(ctx, job.resultKey(), b); err != nil && ctx.Err() == nil {
				return err
			}
			_ = msg.Ack()
		}
	}
	return nil
}
