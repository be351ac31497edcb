package app

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// writeNpy writes a float32 .npy file (format 1.0, C order).
func writeNpy(t *testing.T, path string, shape []int, data []float32) {
	t.Helper()
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s,), }", strings.Join(dims, ", "))
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad) + "\n"
	buf := []byte("\x93NUMPY\x01\x00")
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(header)))
	buf = append(buf, header...)
	for _, v := range data {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixtureRun lays out a config quantizing a committed fixture model on n
// random [1,3,16,16] samples; edit rewrites parts of the config text.
func fixtureRun(t *testing.T, modelFile string, n int, params string, edit func(dir string)) string {
	t.Helper()
	return fixtureConfig(t, modelFile, []int{1, 3, 16, 16}, n, 1, params, edit)
}

// inProcessModel quantizes config in process (no NATS, no evaluation) and
// returns its net.onnx: the model fleet runs of config must write.
func inProcessModel(t *testing.T, config string) []byte {
	t.Helper()
	dir := t.TempDir()
	if _, err := Quantize(t.Context(), QuantizeOptions{Config: config, OutputDir: dir, SkipEvaluation: true,
		Fleet: FleetOptions{InProcess: true}}); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// fixtureConfig writes n random N(0,1) samples of shape (seeded) as .npy
// files in DIR/calib and DIR/config.json quantizing the fixture modelFile
// with DefaultQuantization's params; edit may change DIR afterwards.
func fixtureConfig(t *testing.T, modelFile string, shape []int, n int, seed uint64, params string, edit func(dir string)) string {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs(filepath.Join("../testdata/models", modelFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "calib"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, seed+1))
	size := 1
	for _, d := range shape {
		size *= d
	}
	for i := range n {
		data := make([]float32, size)
		for j := range data {
			data[j] = float32(r.NormFloat64())
		}
		writeNpy(t, filepath.Join(dir, "calib", fmt.Sprintf("%03d.npy", i)), shape, data)
	}
	cfg := fmt.Sprintf(`{"model": {"model_name": "net", "model": %q},
 "engine": {"data_source": {"type": "npy", "path": "calib"}},
 "compression": {"algorithms": [{"name": "DefaultQuantization", "params": %s}]}}`, abs, params)
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(dir)
	}
	return path
}

// TestQuantizeOldOpsetConstantWeights quantizes a model whose weights are
// Constant nodes, at opset 9, with an unfolded BatchNormalization.
func TestQuantizeOldOpsetConstantWeights(t *testing.T) {
	// Its small layers are below the cost rule's threshold.
	cfg := fixtureRun(t, "convnet_op9_const.onnx", 8, `{"stat_subset_size": 8, "min_macs_per_element": 0}`, nil)
	out := t.TempDir()
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.LoadFile(filepath.Join(out, "net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range p.GetGraph().GetNode() {
		ops[n.GetOpType()]++
	}
	// gen_models.py: three Convs and a Gemm; the BN folds away, Constant
	// weights became int8 initializers behind DequantizeLinear.
	if ops["BatchNormalization"] != 0 || ops["Constant"] != 0 || ops["QuantizeLinear"] == 0 || ops["Conv"] != 3 {
		t.Errorf("output ops = %v", ops)
	}
	for _, o := range p.GetOpsetImport() {
		if o.GetDomain() == "" && o.GetVersion() != 13 {
			t.Errorf("output opset %d, want 13", o.GetVersion())
		}
	}
	if rep.INT8 == nil || rep.INT8.LatencyMs <= 0 {
		t.Errorf("no INT8 latency in the report: %+v", rep.INT8)
	}
}

func TestQuantizeWarnings(t *testing.T) {
	cfg := fixtureRun(t, "convnet_op13.onnx", 4, `{"stat_subset_size": 300, "ignored": {"scope": ["conv_1", "no_such_node"]}}`, nil)
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 1, SkipEvaluation: true})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Warnings, "\n")
	for _, want := range []string{"no_such_node", "stat_subset_size is larger than the data set"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings %q lack %q", all, want)
		}
	}
	if strings.Contains(all, "conv_1 ") {
		t.Errorf("conv_1 exists but was reported as unmatched: %q", all)
	}
}

func TestQuantizeSkipInvalidSamples(t *testing.T) {
	cfg := fixtureRun(t, "convnet_op13.onnx", 6, `{}`, func(dir string) {
		data := make([]float32, 3*16*16)
		data[9] = float32(math.Inf(1))
		writeNpy(t, filepath.Join(dir, "calib", "004.npy"), []int{1, 3, 16, 16}, data)
		raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		raw = []byte(strings.Replace(string(raw), `"engine": {`, `"engine": {"skip_invalid_samples": true, `, 1))
		if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 2, SkipEvaluation: true})
	if err != nil {
		t.Fatal(err)
	}
	if all := strings.Join(rep.Warnings, "\n"); !strings.Contains(all, "skipped") || !strings.Contains(all, "count=1") {
		t.Errorf("warnings %q do not report the skipped sample", all)
	}
	raw, _ := json.Marshal(rep.Algorithms)
	if !strings.Contains(string(raw), `"skipped_invalid_samples":[4]`) {
		t.Errorf("report does not list sample 4 as skipped: %s", raw)
	}
}

func TestQuantizeBadInputs(t *testing.T) {
	nan := func(dir string) {
		data := make([]float32, 3*16*16)
		data[5] = float32(math.NaN())
		writeNpy(t, filepath.Join(dir, "calib", "002.npy"), []int{1, 3, 16, 16}, data)
	}
	tests := []struct {
		name, params string
		edit         func(dir string)
		want         string
		is           error
	}{
		{"unknown algorithm param", `{"presett": "performance"}`, nil, `params: unknown key "presett"`, nil},
		{"unknown preset", `{"preset": "fastest"}`, nil, `unknown preset "fastest"; valid: mixed, performance`, nil},
		{"NaN in calibration data", `{}`, nan, `sample 2`, pipeline.ErrInvalidSample},
		{"missing data folder", `{}`, func(dir string) { os.RemoveAll(filepath.Join(dir, "calib")) }, "calib", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fixtureRun(t, "convnet_op13.onnx", 4, tc.params, tc.edit)
			out := filepath.Join(t.TempDir(), "out")
			_, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: 1, SkipEvaluation: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
				entries, _ := os.ReadDir(out)
				if len(entries) > 0 {
					t.Errorf("a failed run left files in %s: %v", out, entries)
				}
			}
		})
	}
}

// TestQuantizeShapeArithmetic quantizes exporter-like graphs (gen_types.py:
// Shape/Gather/Unsqueeze/Concat/Reshape arithmetic on int64, Cast, Range,
// Equal/Where, ConstantOfShape, If, a float16 island, a com.microsoft Gelu,
// NonZero, TopK) on a fleet of two workers: only float32 tensors get
// statistics and QDQ pairs, so ONNX Runtime never sees a statistic output of
// the wrong type (it failed with "Type Error: Type (tensor(float)) of output
// arg ... does not match expected type (tensor(int64))" before).
func TestQuantizeShapeArithmetic(t *testing.T) {
	for _, name := range []string{"shape_arith_op11.onnx", "shape_arith_op13.onnx"} {
		t.Run(name, func(t *testing.T) {
			// Its two small Convs are below the cost rule's threshold.
			cfg := fixtureConfig(t, name, []int{1, 3, 8, 8}, 8, 3, `{"stat_subset_size": 8, "min_macs_per_element": 0}`, nil)
			out := t.TempDir()
			rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			src, err := model.LoadFile(filepath.Join("../testdata/models", name))
			if err != nil {
				t.Fatal(err)
			}
			types := model.InferTypes(src)
			q, err := model.LoadFile(filepath.Join(out, "net.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			quantized := 0
			for _, n := range q.GetGraph().GetNode() {
				if n.GetOpType() != "QuantizeLinear" {
					continue
				}
				in := n.GetInput()[0]
				if tt, ok := types.Of(in); ok && tt.ElemType != model.TypeFloat {
					t.Errorf("QuantizeLinear of %q, a %s tensor", in, model.ElemTypeName(tt.ElemType))
				}
				quantized++
			}
			if quantized == 0 {
				t.Errorf("nothing quantized; report: %+v", rep.Algorithms)
			}
			if rep.INT8 == nil || rep.FP32 == nil || rep.Latency == nil || len(rep.Latency.Speedup) != 1 {
				t.Errorf("no FP32/INT8 evaluation or latency comparison in the report: %+v", rep)
			}
			// Every local worker reports this machine's CPU.
			if rep.CPU.Model == "" || len(rep.WorkerCPUs) == 0 || rep.MixedCPUs {
				t.Errorf("cpu %+v, worker cpus %v, mixed %v", rep.CPU, rep.WorkerCPUs, rep.MixedCPUs)
			}
			for w, c := range rep.WorkerCPUs {
				if c.String() != rep.CPU.String() || c.VNNI != rep.CPU.VNNI {
					t.Errorf("worker %s reported CPU %v, want this machine's %v", w, c, rep.CPU)
				}
			}
		})
	}
}

// TestEvaluateLatencyWithoutMetric: evaluate reports latency for a config
// without a metric; with --model it times the config's model against it,
// alternated.
func TestEvaluateLatencyWithoutMetric(t *testing.T) {
	cfg := fixtureRun(t, "convnet_op13.onnx", 2, `{}`, nil)
	ev, err := Evaluate(t.Context(), EvaluateOptions{Config: cfg, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Latency == nil || len(ev.Latency.Models) != 1 || ev.LatencyMs <= 0 || ev.Metrics != nil {
		t.Fatalf("evaluate without a metric: %+v, latency %+v", ev, ev.Latency)
	}
	other, err := filepath.Abs("../testdata/models/convnet_op11.onnx")
	if err != nil {
		t.Fatal(err)
	}
	ev, err = Evaluate(t.Context(), EvaluateOptions{Config: cfg, Model: other, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Latency == nil || len(ev.Latency.Models) != 2 || len(ev.Latency.Speedup) != 1 || ev.LatencyMs != ev.Latency.Models[1].MedianMs {
		t.Fatalf("evaluate --model: %+v, latency %+v", ev, ev.Latency)
	}
}
