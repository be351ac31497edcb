package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
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
			p, err := model.LoadFile(filepath.Join(out, "net.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(out, "net.onnx"))
			if err != nil {
				t.Fatal(err)
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
			prof, err := engine.ProfileKernels(t.Context(), raw, s.Inputs, 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			ops := prof.OpCounts()
			t.Logf("%d Conv layers quantized; kernels: %v", convs, ops)
			if convs == 0 || ops["QLinearConv"] != convs || ops["Conv"]+ops["FusedConv"] != 0 {
				t.Errorf("%d Conv layers quantized, ONNX Runtime ran %d QLinearConv, %d Conv, %d FusedConv",
					convs, ops["QLinearConv"], ops["Conv"], ops["FusedConv"])
			}
			x := model.NewGraph(p)
			inputs := map[string][]string{}
			for _, n := range p.GetGraph().GetNode() {
				inputs[n.GetName()] = n.GetInput()
			}
			for _, k := range prof.Kernels {
				if in := inputs[k.Node]; k.Op == "DequantizeLinear" && len(in) > 0 && x.Initializer(in[0]) != nil {
					t.Errorf("DequantizeLinear %q of the weight %q runs at inference time", k.Node, in[0])
				}
			}
		})
	}
}
