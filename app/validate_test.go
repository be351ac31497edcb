package app

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/internal/testfleet"
	"github.com/fleetcal/fleetcal/outputs"
	"github.com/fleetcal/fleetcal/pipeline"
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
	var prog testfleet.Buffer
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

// TestOutputDirNotWritable: an output folder that cannot be written is
// reported before the first inference, and nothing is created.
func TestOutputDirNotWritable(t *testing.T) {
	cfg := validationConfig(t, "", defaultQ32)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ out, want string }{
		{filepath.Join(file, "out"), "output " + filepath.Join(file, "out") + ": " + file + " is not a folder"},
		// /proc takes no file, even from root (tests may run as root).
		{"/proc/fleetcal-test/out", "output /proc/fleetcal-test/out: cannot write in /proc: "},
	} {
		err := quantizeBeforeInference(t, QuantizeOptions{Config: cfg, OutputDir: tc.out, Workers: 1, Fleet: FleetOptions{InProcess: true}})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error starting %q", tc.out, err, tc.want)
		}
	}
	// A folder to be created is fine, and the check leaves nothing behind.
	parent := t.TempDir()
	if err := outputs.Check(filepath.Join(parent, "a", "b"), outputs.Options{}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("the check left %v in %s", entries, parent)
	}
}

// TestDuplicateAlgorithms: an algorithm listed twice, or two quantizers,
// are refused before the first inference naming the entries;
// FastBiasCorrection after DefaultQuantization (which POT runs) is a
// warning, and none when DefaultQuantization's own correction is off.
func TestDuplicateAlgorithms(t *testing.T) {
	for _, tc := range []struct{ algs, want string }{
		{`[{"name": "DefaultQuantization", "params": {"stat_subset_size": 32}}, {"name": "DefaultQuantization", "params": {"stat_subset_size": 32}}]`,
			"compression.algorithms[0] and [1] are both DefaultQuantization: list it once"},
		{`[{"name": "MinMaxQuantization"}, {"name": "FastBiasCorrection"}, {"name": "AccuracyAwareQuantization"}]`,
			"compression.algorithms[0] (MinMaxQuantization) and [2] (AccuracyAwareQuantization) both quantize the model: keep one"},
	} {
		err := quantizeBeforeInference(t, QuantizeOptions{Config: validationConfig(t, "", tc.algs), Workers: 1, Fleet: FleetOptions{InProcess: true}})
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.algs, err, tc.want)
		}
	}
	for _, tc := range []struct {
		quantizer, params, corrector string
		want                         []string
	}{
		{"DefaultQuantization", "", "FastBiasCorrection", []string{`compression.algorithms[1] (FastBiasCorrection) runs after [0] (DefaultQuantization), which already corrects the bias: it is corrected twice (use MinMaxQuantization in [0] to correct it once)`}},
		// use_fast_bias false runs BiasCorrection instead, as in POT.
		{"DefaultQuantization", `, "use_fast_bias": false`, "BiasCorrection", []string{`compression.algorithms[1] (BiasCorrection) runs after [0] (DefaultQuantization), which already corrects the bias: it is corrected twice (use MinMaxQuantization in [0] to correct it once)`}},
		{"MinMaxQuantization", "", "FastBiasCorrection", nil},
		{"MinMaxQuantization", "", "BiasCorrection", nil},
	} {
		algs := fmt.Sprintf(`[{"name": %q, "params": {"stat_subset_size": 32%s}}, {"name": %q, "params": {"stat_subset_size": 32}}]`, tc.quantizer, tc.params, tc.corrector)
		warnings, err := checkAlgorithms(mustParse(t, algs))
		if err != nil || !slices.Equal(warnings, tc.want) {
			t.Errorf("%s: %q %v; want %q", algs, warnings, err, tc.want)
		}
	}
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: validationConfig(t, "",
		`[{"name": "DefaultQuantization", "params": {"stat_subset_size": 32}}, {"name": "FastBiasCorrection", "params": {"stat_subset_size": 32}}]`),
		OutputDir: t.TempDir(), Workers: 1, SkipEvaluation: true, Fleet: FleetOptions{InProcess: true}})
	if err != nil || !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "it is corrected twice") }) {
		t.Errorf("DefaultQuantization then FastBiasCorrection: %v; want a warning in report.json", err)
	}
}

// mustParse decodes a JSON list of algorithm entries.
func mustParse(t *testing.T, algs string) []pipeline.AlgorithmConfig {
	t.Helper()
	var out []pipeline.AlgorithmConfig
	if err := json.Unmarshal([]byte(algs), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOversizedSampleFailsAtOnce: a sample above data_source's
// max_decoded_bytes is a deterministic error: a fleet run fails on its
// first delivery with the in-process message, without retries or warnings.
func TestOversizedSampleFailsAtOnce(t *testing.T) {
	cfg := fixtureRun(t, "convnet_op13.onnx", 32, `{"stat_subset_size": 32}`, func(dir string) {
		// 3x32x32 float32 (12416 bytes with its header) where 3x16x16 fit.
		writeNpy(t, filepath.Join(dir, "calib", "005.npy"), []int{1, 3, 32, 32}, make([]float32, 3*32*32))
		path := filepath.Join(dir, "config.json")
		text := strings.Replace(string(mustRead(t, path)), `"path": "calib"`, `"path": "calib", "max_decoded_bytes": 4000`, 1)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	want := "sample 5 (calib/005.npy): npy: decodes to 12416 bytes, more than data_source.max_decoded_bytes (4000); raise it if the data is real"
	_, inproc := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 2, SkipEvaluation: true,
		Fleet: FleetOptions{InProcess: true}})
	if inproc == nil || !strings.HasSuffix(inproc.Error(), want) {
		t.Fatalf("in process: %v; want it to end with %q", inproc, want)
	}
	var logs testfleet.Buffer
	_, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 2, SkipEvaluation: true,
		Fleet: FleetOptions{ShardSize: 4}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil || !strings.HasSuffix(err.Error(), "(worker local-0): "+want) && !strings.HasSuffix(err.Error(), "(worker local-1): "+want) {
		t.Errorf("fleet error\n%v\nwant \"shard 1 (worker local-W): %s\"", err, want)
	}
	if s := logs.String(); strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		t.Errorf("warnings or errors logged (retries?), want none:\n%s", s)
	}
}
