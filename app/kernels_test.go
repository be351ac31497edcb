package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcal/fleetcal/algorithms/defaultq"
	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestInt8RunsIntegerKernels reads ONNX Runtime's own profile of quantized
// models: every Conv layer the report calls INT8 runs as QLinearConv, no
// float Conv is left, and no DequantizeLinear of a weight runs at inference
// time (a layer that did not fuse dequantizes its weights at every
// inference and is slower than FP32). The fixtures are small (3 to 32
// channels): DefaultQuantization's cost rule keeps most of their layers in
// float, so the fusion check turns it off ("min_macs_per_element": 0); with
// the rule on, every layer still INT8 runs as an integer kernel and no
// weight is dequantized at run time either.
func TestInt8RunsIntegerKernels(t *testing.T) {
	for _, tc := range []struct {
		model string
		shape []int
	}{
		{"convnet_op13.onnx", []int{1, 3, 16, 16}},
		{"shape_arith_op13.onnx", []int{1, 3, 8, 8}},
		{"deep_resnet.onnx", []int{1, 3, 8, 8}},
	} {
		for _, rule := range []string{"off", "default"} {
			t.Run(tc.model+"/cost_rule_"+rule, func(t *testing.T) {
				testInt8Kernels(t, tc.model, tc.shape, rule == "off")
			})
		}
	}
}

func testInt8Kernels(t *testing.T, fixture string, shape []int, ruleOff bool) {
	params := `{"stat_subset_size": 4}`
	if ruleOff {
		params = `{"stat_subset_size": 4, "min_macs_per_element": 0}`
	}
	cfg := fixtureConfig(t, fixture, shape, 4, 5, params, nil)
	out := t.TempDir()
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: 1, SkipEvaluation: true})
	if err != nil {
		t.Fatal(err)
	}
	mm := rep.Algorithms[0].Details.(defaultq.Report).MinMax
	convs := 0
	for _, l := range mm.Layers {
		if l.Op == "Conv" {
			convs++
		}
	}
	j, err := open(t.Context(), cfg, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	s, err := j.loader.Item(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ops := checkInt8Kernels(t, filepath.Join(out, "net.onnx"), s.Inputs, mm)
	if ruleOff && (ops["QLinearConv"] == 0 || ops["Conv"]+ops["FusedConv"] != 0) {
		t.Errorf("float convolutions ran: %d Conv, %d FusedConv", ops["Conv"], ops["FusedConv"])
	}
	if !ruleOff && ops["QLinearConv"] != convs {
		t.Errorf("%d QLinearConv ran, the report has %d INT8 Conv layers (%d left in float by the cost rule)", ops["QLinearConv"], convs, len(mm.SlowLayers))
	}
}

// checkInt8Kernels profiles the quantized model file on inputs with ONNX
// Runtime and checks that every Conv layer mm quantized ran as QLinearConv,
// every MatMul and Gemm layer as an integer matrix kernel, and that no
// weight was dequantized at run time (a layer that did not fuse). It
// returns the kernel counts.
func checkInt8Kernels(t *testing.T, file string, inputs map[string]pipeline.Tensor, mm minmax.Report) map[string]int {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	q, err := model.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := engine.ProfileKernels(t.Context(), raw, inputs, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	convs, matmuls := 0, 0
	for _, l := range mm.Layers {
		switch l.Op {
		case "Conv":
			convs++
		case "MatMul", "Gemm":
			matmuls++
		}
	}
	ops := prof.OpCounts()
	t.Logf("%d Conv, %d MatMul/Gemm layers quantized; kernels: %v", convs, matmuls, ops)
	if ops["QLinearConv"] < convs {
		t.Errorf("%d Conv layers quantized, ONNX Runtime ran %d QLinearConv, %d Conv, %d FusedConv",
			convs, ops["QLinearConv"], ops["Conv"], ops["FusedConv"])
	}
	// ONNX Runtime's integer kernels for a QDQ MatMul or Gemm: QLinearMatMul,
	// MatMulInteger (dynamic), QGemm, and its fused MatMulIntegerToFloat.
	if n := ops["QLinearMatMul"] + ops["MatMulInteger"] + ops["QGemm"] + ops["MatMulIntegerToFloat"]; n < matmuls {
		t.Errorf("%d MatMul/Gemm layers quantized, ONNX Runtime ran %d integer matrix kernels, %d MatMul, %d Gemm, %d FusedMatMul",
			matmuls, n, ops["MatMul"], ops["Gemm"], ops["FusedMatMul"])
	}
	if dq := prof.DequantizedWeights(q); len(dq) > 0 {
		t.Errorf("weights dequantized at inference time by %v", dq)
	}
	return ops
}
