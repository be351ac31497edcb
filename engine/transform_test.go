package engine

import (
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// TestTransformsKeepOutputs runs the model package's graph rewrites under
// ONNX Runtime: the rewritten model gives the original's outputs within
// 1e-5 on random inputs.
func TestTransformsKeepOutputs(t *testing.T) {
	upgrade := func(p *onnxpb.ModelProto) (int, error) { return 1, model.UpgradeOpset(p, 13) }
	fold := func(p *onnxpb.ModelProto) (int, error) {
		c, err := model.ConstantsToInitializers(p)
		if err != nil {
			return 0, err
		}
		f, err := model.FoldBatchNorm(p)
		return c*100 + f, err
	}
	for _, tc := range []struct {
		name    string
		model   string
		rewrite func(*onnxpb.ModelProto) (int, error)
		want    int // what rewrite returns
		opset   int64
	}{
		// The upgrade itself returns no count: 1 means success.
		{"upgrade op9", "convnet_op9_const.onnx", upgrade, 1, 13},
		{"upgrade op11", "convnet_op11.onnx", upgrade, 1, 13},
		// gen_models.py: 12 Constant weights (3 Conv and 1 Gemm with bias, one
		// BatchNormalization with 4 parameters) and 1 BatchNormalization.
		{"constants and BN op9", "convnet_op9_const.onnx", fold, 12*100 + 1, 9},
		{"BN op13", "convnet_op13.onnx", fold, 1, 13},
		{"upgrade then fold op9", "convnet_op9_const.onnx", func(p *onnxpb.ModelProto) (int, error) {
			if err := model.UpgradeOpset(p, 13); err != nil {
				return 0, err
			}
			return fold(p)
		}, 12*100 + 1, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := loadProto(t, tc.model)
			p := proto.Clone(orig).(*onnxpb.ModelProto)
			got, err := tc.rewrite(p)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || model.OpsetVersion(p) != tc.opset {
				t.Errorf("rewrite returned %d (want %d), opset %d (want %d)", got, tc.want, model.OpsetVersion(p), tc.opset)
			}
			a, err := NewSession(orig, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := NewSession(p, 1)
			if err != nil {
				t.Fatalf("rewritten model: %v", err)
			}
			defer b.Close()
			l := randomSamples(20, "input", []int64{1, 3, 16, 16}, 21)
			worst := 0.0
			for _, smp := range l.samples {
				want, err := a.Run(t.Context(), smp.Inputs)
				if err != nil {
					t.Fatal(err)
				}
				got, err := b.Run(t.Context(), smp.Inputs)
				if err != nil {
					t.Fatal(err)
				}
				w, g := want["logits"].Data.([]float32), got["logits"].Data.([]float32)
				if len(w) != len(g) {
					t.Fatalf("logits: %d values, want %d", len(g), len(w))
				}
				for i := range w {
					worst = max(worst, math.Abs(float64(w[i])-float64(g[i])))
				}
			}
			if worst > 1e-5 {
				t.Errorf("outputs differ by up to %g", worst)
			}
		})
	}
}
