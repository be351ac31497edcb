package app

import (
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/algorithms/defaultq"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// corpusCI are the corpus models make test builds and this test runs end
// to end (scripts/corpus/build.sh; testdata/corpus/README.md): exports of
// paddle2onnx (OCR detector, recognizer, classifier), torch 1.12 and spox
// (silero VAD: nested If, LSTM, scalar input) and torch 1.13 (U-Net with
// ConvTranspose, transformer encoder), none trained here, each a few MB.
var corpusCI = []string{"ppocr_cls", "ppocr_det", "ppocr_rec", "silero_vad_v4", "silero_vad_v5", "unet_convtranspose", "encoder_opset13"}

// corpusAllFloat are the CI models DefaultQuantization's cost rule leaves
// all in float (BENCHMARKS.md): ppocr_cls ran 0.57× FP32 with every layer
// INT8 (its INT8 regions do 0.02M to 1.2M multiply-adds each), the
// encoder 0.93× (width-64 matrices between float Softmax, LayerNorm and
// bias Adds: 32 multiply-adds per boundary element).
var corpusAllFloat = map[string]bool{"ppocr_cls": true, "encoder_opset13": true}

// corpusFidelity is the least cosine similarity of INT8 to FP32 outputs,
// averaged over the held-apart samples, that each CI model must keep: the
// values of BENCHMARKS.md's corpus table less a margin for other CPUs'
// rounding (the figures are regression guards, not the targets,
// which the table reports).
var corpusFidelity = map[string]float64{
	// ppocr_det on its synthetic inputs: 0.45 (0.78 with "fast_bias_mode":
	// "sequential"; 0.39 without bias correction): see BENCHMARKS.md.
	"ppocr_cls": 0.97, "ppocr_det": 0.4, "ppocr_rec": 0.95, "silero_vad_v4": 0.99, "silero_vad_v5": 0.99,
	"unet_convtranspose": 0.99, "encoder_opset13": 0.99,
}

// TestCorpusCI quantizes real exported models (not written for fleetcal)
// on a fleet of two local workers and checks what a user gets: no ONNX
// Runtime type error, an output onnx.checker accepts, every quantized Conv
// running as QLinearConv in ONNX Runtime's profile with no weight
// dequantized at run time, and outputs close to FP32 on held-apart samples.
func TestCorpusCI(t *testing.T) {
	if testing.Short() {
		t.Skip("quantizes seven exported models")
	}
	root := filepath.Join("..", ".deps", "corpus")
	var missing []string
	for _, n := range corpusCI {
		if _, err := os.Stat(filepath.Join(root, n, "config.json")); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		msg := "corpus models not built: " + strings.Join(missing, ", ") + " (make test runs scripts/corpus/build.sh " + strings.Join(corpusCI, " ") + ")"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, name := range corpusCI {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, name)
			out := t.TempDir()
			rep, err := Quantize(t.Context(), QuantizeOptions{Config: filepath.Join(dir, "config.json"), OutputDir: out, Workers: 2, SkipEvaluation: true})
			if err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(out, "*.onnx"))
			if len(files) != 1 {
				t.Fatalf("output files %v, want one model", files)
			}
			mm := rep.Algorithms[0].Details.(defaultq.Report).MinMax
			// silero VAD computes everything inside If branches, which are
			// not quantized; the cost rule keeps corpusAllFloat in float:
			// the report must say so.
			allFloat := strings.HasPrefix(name, "silero") || corpusAllFloat[name]
			if (len(mm.Layers) == 0) != allFloat || (mm.NothingQuantized != "") != allFloat ||
				corpusAllFloat[name] != strings.Contains(mm.NothingQuantized, "cost rule") {
				t.Fatalf("%d layers quantized, nothing_quantized %q", len(mm.Layers), mm.NothingQuantized)
			}
			// paddle2onnx writes hard-swish as Add, Clip, Mul, Div; Prepare
			// rewrites it as HardSigmoid and Mul (model.FuseHardSwish).
			if paddle := strings.HasPrefix(name, "ppocr"); paddle != (mm.HardSwishesFused > 0) {
				t.Errorf("%d hard-swish activations rewritten", mm.HardSwishesFused)
			}
			// A proto, not the path: with a path, full_check's shape
			// inference writes value_info back into the file.
			script := "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)"
			if b, err := exec.CommandContext(t.Context(), "/usr/bin/python3", "-c", script, files[0]).CombinedOutput(); err != nil {
				t.Errorf("onnx.checker: %v\n%s", err, b)
			}

			j, err := open(t.Context(), filepath.Join(dir, "heldout.json"), "", 1)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			fp, err := engine.NewSession(j.model.Models()[0].Proto, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer fp.Close()
			q, err := model.LoadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			qs, err := engine.NewSession(q, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer qs.Close()
			var sum float64
			n := min(j.loader.Len(), 16)
			var first pipeline.Sample
			for i := range n {
				s, err := j.loader.Item(t.Context(), i)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = s
				}
				a, err := fp.Run(t.Context(), s.Inputs)
				if err != nil {
					t.Fatal(err)
				}
				b, err := qs.Run(t.Context(), s.Inputs)
				if err != nil {
					t.Fatal(err)
				}
				sum += outputsCosine(a, b)
			}
			cos := sum / float64(n)
			t.Logf("%d layers quantized; cosine to FP32 %.4f over %d held-apart samples", len(mm.Layers), cos, n)
			if !(cos >= corpusFidelity[name]) {
				t.Errorf("cosine to FP32 %.4f over %d held-apart samples, want at least %.2f", cos, n, corpusFidelity[name])
			}
			// A model left all in float is the prepared float model: its
			// graph edits (constants, BatchNormalization folding, the
			// hard-swish rewrite) change float32 rounding only.
			if allFloat && !(cos >= 0.9999) {
				t.Errorf("the float model written has cosine %.6f to the FP32 model's outputs, want ≥ 0.9999", cos)
			}

			checkInt8Kernels(t, files[0], first.Inputs, mm)
		})
	}
}

// outputsCosine is the cosine similarity of the float32 outputs of two runs
// taken as one vector each (1 when both are all zeros).
func outputsCosine(a, b map[string]pipeline.Tensor) float64 {
	var dot, na, nb float64
	for _, name := range slices.Sorted(maps.Keys(a)) {
		x, ok1 := a[name].Data.([]float32)
		y, ok2 := b[name].Data.([]float32)
		if !ok1 || !ok2 || len(x) != len(y) {
			continue
		}
		for i := range x {
			dot += float64(x[i]) * float64(y[i])
			na += float64(x[i]) * float64(x[i])
			nb += float64(y[i]) * float64(y[i])
		}
	}
	if na == 0 && nb == 0 {
		return 1
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}
