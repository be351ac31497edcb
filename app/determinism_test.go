package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleConfig writes a copy of the shipped example's config with params
// as DefaultQuantization's parameters, paths made absolute.
func exampleConfig(t *testing.T, params string) string {
	t.Helper()
	// The example's five layers (0.1M to 0.9M multiply-adds) are below the
	// cost rule, which would leave it all in float; the shipped config
	// turns it off too.
	params = strings.Replace(params, "{", `{"min_macs_per_element": 0, `, 1)
	ex, err := filepath.Abs("../examples/fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"model": {"model_name": "net", "model": %q},
 "engine": {"data_source": {"type": "idx", "path": %q, "scale": 255, "mean": [0.2860], "std": [0.3530]}},
 "compression": {"algorithms": [{"name": "DefaultQuantization", "params": %s}]}}`,
		filepath.Join(ex, "model.onnx"), filepath.Join(ex, "data/calib"), params)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// deepConfig lays out deep_resnet.onnx (34 Conv/Gemm layers, 16 residual
// Adds; testdata/models/gen_deep.py) with n random samples.
func deepConfig(t *testing.T, n int, params string) string {
	t.Helper()
	return fixtureConfig(t, "deep_resnet.onnx", []int{1, 3, 8, 8}, n, 5, params, nil)
}

// TestDeterminismAcrossFleets: the quantized model is byte-identical
// whatever the number of workers and the shard size, and equal to the
// in-process result, for every range estimator.
func TestDeterminismAcrossFleets(t *testing.T) {
	if testing.Short() {
		t.Skip("quantizes two models many times")
	}
	estimators := []struct {
		name, params string
		fleets       [][2]int // {workers, shard size}
	}{
		{"minmax", `{"stat_subset_size": 40}`, [][2]int{{1, 3}, {1, 7}, {2, 3}, {2, 7}, {3, 3}, {3, 7}}},
		{"quantile", `{"stat_subset_size": 40, "use_fast_bias": false, "range_estimator": {"preset": "quantile"}}`, [][2]int{{1, 7}, {2, 3}, {3, 7}}},
		{"percentile", `{"stat_subset_size": 40, "use_fast_bias": false, "histogram_estimator": {"type": "percentile", "percentile": 99.99}}`, [][2]int{{1, 3}, {2, 7}, {3, 3}}},
		{"entropy", `{"stat_subset_size": 40, "use_fast_bias": false, "histogram_estimator": {"type": "entropy"}}`, [][2]int{{1, 7}, {2, 3}, {3, 7}}},
	}
	models := []struct {
		name   string
		config func(t *testing.T, params string) string
	}{
		{"example", exampleConfig},
		// deep_resnet's 8-channel layers are all below the cost rule's
		// threshold; it is turned off to keep 30+ INT8 layers to compare
		// (the rule reads only the graph: the example covers it).
		{"deep_resnet", func(t *testing.T, params string) string {
			return deepConfig(t, 40, strings.Replace(params, "{", `{"min_macs_per_element": 0, `, 1))
		}},
	}
	for _, m := range models {
		for _, est := range estimators {
			t.Run(m.name+"/"+est.name, func(t *testing.T) {
				cfg := m.config(t, est.params)
				run := func(fo FleetOptions, workers int) ([]byte, *Report) {
					out := t.TempDir()
					rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: workers, SkipEvaluation: true, Fleet: fo})
					if err != nil {
						t.Fatal(err)
					}
					b, err := os.ReadFile(filepath.Join(out, "net.onnx"))
					if err != nil {
						t.Fatal(err)
					}
					return b, rep
				}
				want, rep := run(FleetOptions{InProcess: true}, 2)
				if m.name == "deep_resnet" && est.name == "minmax" {
					raw, _ := json.Marshal(rep.Algorithms[0].Details)
					var d struct {
						MinMax struct {
							Layers []json.RawMessage `json:"layers"`
						} `json:"MinMaxQuantization"`
					}
					_ = json.Unmarshal(raw, &d)
					if len(d.MinMax.Layers) < 30 {
						t.Fatalf("deep_resnet has %d quantized weighted layers, want 30+", len(d.MinMax.Layers))
					}
				}
				for _, f := range est.fleets {
					got, _ := run(FleetOptions{ShardSize: f[1]}, f[0])
					if !bytes.Equal(got, want) {
						t.Errorf("%d workers, shard size %d: model differs from the in-process one (%d vs %d bytes)", f[0], f[1], len(got), len(want))
					}
				}
			})
		}
	}
}
