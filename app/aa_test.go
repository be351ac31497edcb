package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range all {
			if !yield(k) {
				return
			}
		}
	})
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
