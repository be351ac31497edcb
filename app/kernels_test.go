package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestInt8RunsIntegerKernels reads ONNX Runtime's own profile of quantized
// models: every Conv layer the report calls INT8 runs as QLinearConv, no
// float Conv is left, and no DequantizeLinear of a weight runs at inference
// time (a layer that did not fuse dequantizes its weights at every
// inference and is slower than FP32).
func TestInt8RunsIntegerKernels(t *testing.T) {
	for _, tc := range []struct {
		model string
		shape []int
	}{
		{"convnet_op13.onnx", []int{1, 3, 16, 16}},
		{"shape_arith_op13.onnx", []int{1, 3, 8, 8}},
		{"deep_resnet.onnx", []int{1, 3, 8, 8}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			cfg := fixtureConfig(t, tc.model, tc.shape, 4, 5, `{"stat_subset_size": 4}`, nil)
			out := t.TempDir()
			rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: 1, SkipEvaluation: true})
			if err != nil {
				t.Fatal(err)
			}
			mm := rep.Algorithms[0].Details.(map[string]any)[minmax.Name].(minmax.Report)
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
			if ops["QLinearConv"] == 0 || ops["Conv"]+ops["FusedConv"] != 0 {
				t.Errorf("float convolutions ran: %d Conv, %d FusedConv", ops["Conv"], ops["FusedConv"])
			}
		})
	}
}

// checkInt8Kernels profiles the quantized model file on inputs with ONNX
// Runtime and checks that every Conv layer mm quantized ran as QLinearConv
// and that no weight was dequantized at run time (a layer that did not
// fuse). It returns the kernel counts.
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
	convs := 0
	for _, l := range mm.Layers {
		if l.Op == "Conv" {
			convs++
		}
	}
	ops := prof.OpCounts()
	t.Logf("%d Conv layers quantized; kernels: %v", convs, ops)
	if ops["QLinearConv"] < convs {
		t.Errorf("%d Conv layers quantized, ONNX Runtime ran %d QLinearConv, %d Conv, %d FusedConv",
			convs, ops["QLinearConv"], ops["Conv"], ops["FusedConv"])
	}
	if dq := prof.DequantizedWeights(q); len(dq) > 0 {
		t.Errorf("weights dequantized at inference time by %v", dq)
	}
	return ops
}
