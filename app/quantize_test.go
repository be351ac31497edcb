package app

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestQuantizeExample runs the README's main job on the shipped example and
// checks the files it promises: the model, report.json, accuracy kept.
func TestQuantizeExample(t *testing.T) {
	out := t.TempDir()
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: "../examples/fashion-mnist/config.json", OutputDir: out, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.FP32 == nil || rep.INT8 == nil {
		t.Fatalf("report lacks the FP32/INT8 comparison: %+v", rep)
	}
	fp, q := rep.FP32.Metrics["accuracy"], rep.INT8.Metrics["accuracy"]
	// The calibration set is 1000 training images; the FP32 model gets ~97%
	// of them right. INT8 must stay within 1 point there.
	if fp < 0.9 || fp-q > 0.01 {
		t.Errorf("accuracy FP32 %.4f INT8 %.4f: more than 1 point lost", fp, q)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("report.json does not parse: %v", err)
	}
	first, err := os.ReadFile(filepath.Join(out, "fashion_cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// The acceptance figure: top-1 on the 10,000 Fashion-MNIST test images
	// within maxDropPoints (0.3) of FP32. The default saturation_fix keeps
	// it on CPUs without VNNI too (TestSaturationWithoutVNNI checks that
	// under qemu), so the bound does not depend on the CPU running the test.
	evalCfg := "../examples/fashion-mnist/eval-config.json"
	fpTest, err := Evaluate(t.Context(), EvaluateOptions{Config: evalCfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	qTest, err := Evaluate(t.Context(), EvaluateOptions{Config: evalCfg, Model: filepath.Join(out, "fashion_cnn.onnx"), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	fa, qa := fpTest.Metrics["accuracy"], qTest.Metrics["accuracy"]
	t.Logf("test set: FP32 %.4f INT8 %.4f over %d samples", fa, qa, qTest.Samples)
	if qTest.Samples != 10000 || 100*(fa-qa) > maxDropPoints {
		t.Errorf("test set: FP32 %.4f, INT8 %.4f over %d samples: want 10000 samples within %.2f points", fa, qa, qTest.Samples, maxDropPoints)
	}
	// Determinism: another run with a different number of workers writes
	// the same bytes.
	out2 := t.TempDir()
	if _, err := Quantize(t.Context(), QuantizeOptions{Config: "../examples/fashion-mnist/config.json", OutputDir: out2, Workers: 1, SkipEvaluation: true}); err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(filepath.Join(out2, "fashion_cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("models from 2 and 1 workers differ (%d and %d bytes)", len(first), len(second))
	}
}

// TestOutputPassesONNXChecker runs the ONNX model checker (Debian's
// python3-onnx, installed by scripts/setup.sh --test) on a quantized model.
func TestOutputPassesONNXChecker(t *testing.T) {
	out := t.TempDir()
	if _, err := Quantize(t.Context(), QuantizeOptions{Config: "../examples/fashion-mnist/config.json", OutputDir: out, Workers: 2, SkipEvaluation: true}); err != nil {
		t.Fatal(err)
	}
	script := "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print('ok')"
	cmd := exec.CommandContext(t.Context(), "/usr/bin/python3", "-c", script, filepath.Join(out, "fashion_cnn.onnx"))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker (run scripts/setup.sh --test to install python3-onnx): %v\n%s", err, b)
	}
}
