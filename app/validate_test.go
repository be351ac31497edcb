package app

import (
	"fmt"
	"net"
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

// quantizeBeforeInference runs Quantize with evaluation on and returns its
// error; it fails the test if the FP32 evaluation (the first inference)
// started, as its progress lines show.
func quantizeBeforeInference(t *testing.T, o QuantizeOptions) error {
	t.Helper()
	var prog lockedBuffer
	o.Progress = &prog
	if o.OutputDir == "" {
		o.OutputDir = filepath.Join(t.TempDir(), "out")
	}
	_, err := Quantize(t.Context(), o)
	if strings.Contains(prog.String(), "FP32 evaluation") {
		t.Errorf("the FP32 evaluation ran before the error %v:\n%s", err, prog.String())
	}
	return err
}

// TestBusyAddresses: --listen and --metrics-addr on a taken port fail
// before the first inference, saying "address in use" and naming it.
func TestBusyAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	cfg := validationConfig(t, "", defaultQ32)
	for _, tc := range []struct {
		fleet FleetOptions
		want  string
	}{
		{FleetOptions{Listen: addr}, "embedded NATS server: nats server: listen " + addr + ": address in use"},
		{FleetOptions{MetricsAddr: addr}, "metrics: listen " + addr + ": address in use"},
	} {
		err := quantizeBeforeInference(t, QuantizeOptions{Config: cfg, Workers: 1, Fleet: tc.fleet})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.fleet, err, tc.want)
		}
	}
}

// TestBadAlgorithmParamsBeforeInference: a bad algorithm parameter is
// reported before the FP32 evaluation.
func TestBadAlgorithmParamsBeforeInference(t *testing.T) {
	cfg := validationConfig(t, "", `[{"name": "DefaultQuantization", "params": {"preset": "fastest"}}]`)
	err := quantizeBeforeInference(t, QuantizeOptions{Config: cfg, Workers: 1, Fleet: FleetOptions{InProcess: true}})
	if want := `compression.algorithms[0]: `; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"fastest"`) {
		t.Errorf("%v; want an error naming %s and \"fastest\"", err, want)
	}
}

// TestUnknownIgnoredOperation: an ignored.operations type no ONNX operator
// has is an error naming it, with the closest known type, before the
// first inference.
func TestUnknownIgnoredOperation(t *testing.T) {
	cfg := validationConfig(t, "", `[{"name": "DefaultQuantization", "params": {"ignored": {"operations": [{"type": "Gemm"}, {"type": "Convv"}]}}}]`)
	err := quantizeBeforeInference(t, QuantizeOptions{Config: cfg, Workers: 1, Fleet: FleetOptions{InProcess: true}})
	want := `compression.algorithms[0]: algorithm DefaultQuantization: ignored.operations[1]: unknown operator type "Convv" (ONNX operator types, case-sensitive, e.g. "Conv", "MatMul"); did you mean "Conv"?`
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("%v; want an error ending %q", err, want)
	}
}
