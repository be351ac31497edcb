package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleConfig writes a config quantizing the fashion-mnist example
// (1000 samples) with DefaultQuantization's params.
func exampleConfig(t *testing.T, params string) string {
	t.Helper()
	ex, err := filepath.Abs(filepath.Join("..", "..", "examples", "fashion-mnist"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"model": {"model_name": "net", "model": %q},
 "engine": {"data_source": {"type": "idx", "path": %q}},
 "compression": {"algorithms": [{"name": "DefaultQuantization", "params": %s}]}}`,
		filepath.Join(ex, "model.onnx"), filepath.Join(ex, "data/calib"), params)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSummaryLine: the summary says how many samples calibrated (not the
// data set's size), and says so when nothing was quantized.
func TestSummaryLine(t *testing.T) {
	for _, tc := range []struct{ params, want string }{
		{`{"stat_subset_size": 32, "min_macs_per_element": 0}`, "quantized net on 32 calibration samples (of 1000) in "},
		// The cost rule leaves the example's five small layers in float.
		{`{"stat_subset_size": 32}`, "nothing quantized in net: the output is the float model (every layer is slower in INT8 than in float by the cost rule"},
		// Every quantizable operator of the example ignored.
		{`{"stat_subset_size": 32, "ignored": {"operations": ["Conv", "Gemm", "MatMul"]}}`, "nothing quantized in net: the output is the float model (no float32 layer to quantize"},
	} {
		code, out, errOut := runCmd(t, "quantize", "-c", exampleConfig(t, tc.params), "-o", t.TempDir(), "--skip-eval", "--in-process", "--workers", "1", "--report-html=false")
		if first, _, _ := strings.Cut(out, "\n"); code != 0 || !strings.HasPrefix(first, tc.want) {
			t.Errorf("%s: exit %d, first line %q; want %q\nstderr: %s", tc.params, code, first, tc.want, errOut)
		}
	}
}
