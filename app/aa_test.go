package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// aaFixture is the AccuracyAwareQuantization fixture: sensitive_cnn.onnx
// and its labelled samples (algorithms/accuracyaware/testdata/
// gen_sensitive_cnn.py). conv_6's input carries a constant channel of about
// 1000, so per-tensor INT8 crushes the other channels of that input.
const aaFixture = "../algorithms/accuracyaware/testdata"

// aaConfig lays out a config running AccuracyAwareQuantization (maximal
// drop 0.01) on the first n samples of the fixture. labelled adds the
// annotations and the accuracy metric; without them the algorithm compares
// with the FP32 outputs.
func aaConfig(t *testing.T, n int, labelled bool) string {
	t.Helper()
	src, err := filepath.Abs(aaFixture)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	calib := filepath.Join(dir, "calib")
	if err := os.Mkdir(calib, 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(src, "sensitive_cnn_data", "labels.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]int
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(maps.Keys(all))
	if len(names) < n {
		t.Fatalf("the fixture has %d samples, want %d", len(names), n)
	}
	labels := map[string]int{}
	for _, name := range names[:n] {
		b, err := os.ReadFile(filepath.Join(src, "sensitive_cnn_data", name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(calib, name+".npy"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		labels[name] = all[name]
	}
	engine := `"data_source": {"type": "npy", "path": "calib", "dtype": "float32"}`
	if labelled {
		b, _ := json.Marshal(labels)
		if err := os.WriteFile(filepath.Join(dir, "labels.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		engine += `, "annotations": {"path": "labels.json"}, "metric": {"name": "accuracy", "top_k": 1}`
	}
	cfg := fmt.Sprintf(`{"model": {"model_name": "net", "model": %q},
 "engine": {%s},
 "compression": {"algorithms": [{"name": "AccuracyAwareQuantization", "params": {"maximal_drop": 0.01}}]}}`,
		filepath.Join(src, "sensitive_cnn.onnx"), engine)
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// aaDetails is the part of AccuracyAwareQuantization's report.json
// entry the tests check.
type aaDetails struct {
	Metric          string   `json:"metric"`
	AnnotationFree  bool     `json:"annotation_free"`
	FP32            float64  `json:"fp32_metric"`
	InitialDrop     float64  `json:"initial_drop"`
	Final           float64  `json:"final_metric"`
	FinalDrop       float64  `json:"final_drop"`
	Achieved        bool     `json:"drop_achieved"`
	Reverted        []string `json:"reverted_layers"`
	QuantizedLayers int      `json:"quantized_layers"`
}

// aaRun quantizes with cfg and returns the model's bytes and the
// algorithm's entry of report.json, as written.
func aaRun(t *testing.T, cfg string, workers int, fo FleetOptions) ([]byte, aaDetails) {
	t.Helper()
	out := t.TempDir()
	if _, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: workers, SkipEvaluation: true, Fleet: fo}); err != nil {
		t.Fatalf("%d workers, %+v: %v", workers, fo, err)
	}
	m, err := os.ReadFile(filepath.Join(out, "net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Algorithms []struct {
			Name    string    `json:"name"`
			Details aaDetails `json:"details"`
		} `json:"algorithms"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(rep.Algorithms) != 1 || rep.Algorithms[0].Name != "AccuracyAwareQuantization" {
		t.Fatalf("report.json algorithms: %s", raw)
	}
	return m, rep.Algorithms[0].Details
}

// checkSensitive checks that the search found the sensitive layer: the base
// quantization loses more than 2 points, reverting conv_6 alone brings the
// drop within maximal_drop, and the 10 other layers stay quantized.
func checkSensitive(t *testing.T, d aaDetails) {
	t.Helper()
	// gen_sensitive_cnn.py: with conv_6's input in 8 bits the model is
	// near chance (the coordinator measures about -42 points on the 64
	// samples); 11 layers are quantized (9 Conv, the pool, fc).
	if d.InitialDrop <= 0.02 || !d.Achieved || d.FinalDrop > 0.01 ||
		!slices.Equal(d.Reverted, []string{"conv_6"}) || d.QuantizedLayers != 10 {
		t.Errorf("got initial drop %.4f, final drop %.4f (achieved %v), reverted %v, %d layers quantized; want > 0.02, <= 0.01, [conv_6], 10",
			d.InitialDrop, d.FinalDrop, d.Achieved, d.Reverted, d.QuantizedLayers)
	}
}

// TestAccuracyAwareDeterministicAcrossFleets: the AccuracyAwareQuantization
// model is byte-identical with 1 and 2 local workers (shard sizes that
// split every evaluation) and in process. Every metric value the search
// compares comes from Predicts spread over the workers, so any
// order-dependence there would change the ranking or the model.
func TestAccuracyAwareDeterministicAcrossFleets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the accuracy-aware search three times")
	}
	cfg := aaConfig(t, 32, true)
	want, d := aaRun(t, cfg, 2, FleetOptions{InProcess: true})
	checkSensitive(t, d)
	if d.Metric != "accuracy" || d.AnnotationFree || d.FP32 != 1 {
		t.Errorf("metric %q (annotation free %v) FP32 %v, want accuracy from the annotations, 1", d.Metric, d.AnnotationFree, d.FP32)
	}
	for _, f := range []struct{ workers, shard int }{{1, 7}, {2, 3}} {
		got, gd := aaRun(t, cfg, f.workers, FleetOptions{ShardSize: f.shard})
		if !bytes.Equal(got, want) {
			t.Errorf("%d workers, shard size %d: model differs from the in-process one (%d vs %d bytes); report %+v vs %+v",
				f.workers, f.shard, len(got), len(want), gd, d)
		}
	}
}

// TestAccuracyAwareWithoutAnnotations: without annotations and metric the
// search optimizes output_fidelity (top-1 agreement with the FP32 model),
// report.json says so, and it still finds conv_6.
func TestAccuracyAwareWithoutAnnotations(t *testing.T) {
	cfg := aaConfig(t, 32, false)
	_, d := aaRun(t, cfg, 2, FleetOptions{ShardSize: 5})
	if d.Metric != "output_fidelity" || !d.AnnotationFree || d.FP32 != 1 {
		t.Errorf("metric %q, annotation_free %v, FP32 value %v; want output_fidelity, true, 1", d.Metric, d.AnnotationFree, d.FP32)
	}
	checkSensitive(t, d)
}

// timedEngine records how long SetModel and Predict take.
type timedEngine struct {
	pipeline.Engine
	setModel, predict float64 // seconds
	predicts          int
}

func (e *timedEngine) SetModel(ctx context.Context, m *model.CompressedModel) error {
	t := time.Now()
	err := e.Engine.SetModel(ctx, m)
	e.setModel += time.Since(t).Seconds()
	return err
}

func (e *timedEngine) Predict(ctx context.Context, o pipeline.PredictOptions) (pipeline.PredictResult, error) {
	t := time.Now()
	res, err := e.Engine.Predict(ctx, o)
	e.predict += time.Since(t).Seconds()
	e.predicts++
	return res, err
}

// aaStageRun is one run of the algorithms of a config, as Quantize runs
// them, on an engine that times its calls.
type aaStageRun struct {
	seconds float64
	engine  timedEngine
	// busy is the worker-seconds spent in shards (delivery to
	// acknowledgement, model fetch and session creation included), from
	// fleetcal_worker_shard_duration_seconds_sum; 0 in process.
	busy float64
	// cpu is the CPU seconds (user + system) of this process, workers,
	// NATS server and coordinator together, during the stage.
	cpu float64
}

// cpuSeconds is the user + system CPU time of this process so far.
func cpuSeconds(tb testing.TB) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// runAAStage runs cfg's algorithms with workers local workers (or parallel
// requests in process, per fo) and measures them.
func runAAStage(tb testing.TB, cfg string, workers int, fo FleetOptions) aaStageRun {
	tb.Helper()
	ctx := tb.Context()
	if !fo.InProcess {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		fo.MetricsAddr = l.Addr().String()
		l.Close()
	}
	j, err := open(ctx, cfg, "", workers)
	if err != nil {
		tb.Fatal(err)
	}
	defer j.Close()
	log := slog.New(slog.DiscardHandler)
	fl, stop := runFleet(tb, j, fo, log)
	defer stop()
	var r aaStageRun
	r.engine.Engine = fl.engine
	p, err := createPipeline(j.cfg.Compression.Algorithms, pipeline.AlgorithmEnv{Engine: &r.engine, DataLen: j.loader.Len(), Log: log, Metric: j.metric})
	if err != nil {
		tb.Fatal(err)
	}
	t, cpu := time.Now(), cpuSeconds(tb)
	if _, err := p.Run(ctx, j.model); err != nil {
		tb.Fatal(err)
	}
	r.seconds, r.cpu = time.Since(t).Seconds(), cpuSeconds(tb)-cpu
	if fo.InProcess {
		return r
	}
	var text []byte
	// The metrics server starts in the background: poll until it answers.
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get("http://" + fo.MetricsAddr + "/metrics")
		if err == nil {
			text, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil || time.Now().After(deadline) {
			if err != nil {
				tb.Fatal(err)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(l, "fleetcal_worker_shard_duration_seconds_sum "); ok {
			if r.busy, err = strconv.ParseFloat(v, 64); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return r
}

// BenchmarkAccuracyAwareStage times the AccuracyAwareQuantization stage on
// sensitive_cnn with 1 and 2 local workers (embedded NATS, shard size 25)
// and in process with 1 and 2 parallel requests. Small is the committed 64
// samples; Large is the data set in $FLEETCAL_AA_DATA (made by
// scripts/bench_aa.sh: gen_sensitive_cnn.py --data DIR --n 500), skipped
// without it. Besides s/op it reports where the stage's time went:
// Predict calls, the seconds in SetModel and outside the engine, and for
// fleets the share of worker time spent in shards (busy-%); cpu-s is the
// process's CPU time during the stage (coordinator, NATS server and local
// workers share the process).
func BenchmarkAccuracyAwareStage(b *testing.B) {
	sizes := []struct{ name, data string }{{"Small", filepath.Join(aaFixture, "sensitive_cnn_data")}, {"Large", os.Getenv("FLEETCAL_AA_DATA")}}
	for _, size := range sizes {
		b.Run(size.name, func(b *testing.B) {
			if size.data == "" {
				b.Skip("set FLEETCAL_AA_DATA to a folder made by gen_sensitive_cnn.py --data")
			}
			cfg := aaBenchConfig(b, size.data)
			for _, f := range []struct {
				name    string
				workers int
				fo      FleetOptions
			}{
				{"fleet1", 1, FleetOptions{ShardSize: 25}},
				{"fleet2", 2, FleetOptions{ShardSize: 25}},
				{"inproc1", 1, FleetOptions{InProcess: true}},
				{"inproc2", 2, FleetOptions{InProcess: true}},
			} {
				b.Run(f.name, func(b *testing.B) {
					var last aaStageRun
					for b.Loop() {
						last = runAAStage(b, cfg, f.workers, f.fo)
					}
					e := last.engine
					b.ReportMetric(float64(e.predicts), "predicts")
					b.ReportMetric(e.setModel, "set-model-s")
					b.ReportMetric(last.seconds-e.predict-e.setModel, "outside-engine-s")
					b.ReportMetric(last.cpu, "cpu-s")
					if !f.fo.InProcess {
						b.ReportMetric(100*last.busy/(float64(f.workers)*last.seconds), "busy-%")
					}
				})
			}
		})
	}
}

// aaBenchConfig writes an AccuracyAwareQuantization config (maximal drop
// 0.01, stat_subset_size 300) on the labelled .npy folder data.
func aaBenchConfig(tb testing.TB, data string) string {
	tb.Helper()
	src, err := filepath.Abs(aaFixture)
	if err != nil {
		tb.Fatal(err)
	}
	if data, err = filepath.Abs(data); err != nil {
		tb.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"model": {"model_name": "net", "model": %q},
 "engine": {"data_source": {"type": "npy", "path": %q, "dtype": "float32"},
            "annotations": {"path": %q}, "metric": {"name": "accuracy", "top_k": 1}},
 "compression": {"algorithms": [{"name": "AccuracyAwareQuantization", "params": {"maximal_drop": 0.01, "stat_subset_size": 300}}]}}`,
		filepath.Join(src, "sensitive_cnn.onnx"), data, filepath.Join(data, "labels.json"))
	path := filepath.Join(tb.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkSessionsInParallel is the control for the fleet: the FP32
// sensitive_cnn run by 1 or 2 ONNX Runtime sessions (one thread each) in
// parallel on one sample, without the engine, NATS or the coordinator.
// The ns/op is per inference, so the 1/2 ratio is what this machine gives
// two workers at best.
func BenchmarkSessionsInParallel(b *testing.B) {
	m, err := model.Load(model.Config{Name: "net", Model: filepath.Join(aaFixture, "sensitive_cnn.onnx")})
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, 3*32*32)
	for i := range x {
		x[i] = float32(i % 251)
	}
	in := map[string]pipeline.Tensor{"x": {Shape: []int64{1, 3, 32, 32}, Data: x}}
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprint(par), func(b *testing.B) {
			sess := make([]*engine.Session, par)
			for i := range sess {
				if sess[i], err = engine.NewSession(m.Models()[0].Proto, 1); err != nil {
					b.Fatal(err)
				}
				defer sess[i].Close()
				if _, err := sess[i].Run(b.Context(), in); err != nil {
					b.Fatal(err)
				}
			}
			const batch = 100 // inferences per session per iteration
			for b.Loop() {
				var wg sync.WaitGroup
				for _, s := range sess {
					wg.Go(func() {
						for range batch {
							if _, err := s.Run(b.Context(), in); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch*par), "ns/inference")
		})
	}
}
