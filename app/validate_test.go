package app

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// validationConfig is exampleConfig with engine keys added (engine, e.g.
// `"threads": 3`) and the algorithms given (a JSON list).
func validationConfig(t *testing.T, engine, algorithms string) string {
	t.Helper()
	ex, err := filepath.Abs("../examples/fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	if engine != "" {
		engine = ", " + engine
	}
	cfg := fmt.Sprintf(`{"model": {"model_name": "net", "model": %q},
 "engine": {"data_source": {"type": "idx", "path": %q, "scale": 255, "mean": [0.2860], "std": [0.3530]},
            "metric": {"name": "accuracy", "top_k": 1}%s},
 "compression": {"algorithms": %s}}`,
		filepath.Join(ex, "model.onnx"), filepath.Join(ex, "data/calib"), engine, algorithms)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const defaultQ32 = `[{"name": "DefaultQuantization", "params": {"stat_subset_size": 32}}]`

// TestParallelismBounds: engine.threads, engine.requests or --workers
// beyond 4 per CPU core are refused before anything runs; threads beyond
// the cores are capped with a warning in report.json.
func TestParallelismBounds(t *testing.T) {
	cores := runtime.NumCPU()
	for _, tc := range []struct {
		engine  string
		workers int
		want    string
	}{
		{engine: `"threads": 100000`, want: "engine.threads 100000: too many for this machine: at most %d (4 per CPU core, %d cores)"},
		{engine: `"requests": 100000`, want: "engine.requests 100000: too many for this machine: at most %d (4 per CPU core, %d cores)"},
		{workers: 100000, want: "quantize: --workers 100000: too many for this machine: at most %d (4 per CPU core, %d cores)"},
	} {
		_, err := Quantize(t.Context(), QuantizeOptions{Config: validationConfig(t, tc.engine, defaultQ32), OutputDir: t.TempDir(), Workers: tc.workers})
		if want := fmt.Sprintf(tc.want, 4*cores, cores); err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%s --workers %d: %v; want an error ending %q", tc.engine, tc.workers, err, want)
		}
	}
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: validationConfig(t, fmt.Sprintf(`"threads": %d`, cores+1), defaultQ32),
		OutputDir: t.TempDir(), Workers: 1, SkipEvaluation: true, Fleet: FleetOptions{InProcess: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("engine.threads %d: capped to %d, the number of CPU cores of this machine", cores+1, cores)
	if !slices.Contains(rep.Warnings, want) {
		t.Errorf("warnings %q; want %q", rep.Warnings, want)
	}
}
