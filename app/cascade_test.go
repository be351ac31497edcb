package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/model"
)

// TestQuantizeCascade quantizes a two-stage cascade: one file per stage,
// named by stage, each with QDQ nodes.
func TestQuantizeCascade(t *testing.T) {
	cfg := fixtureRun(t, "cascade_stage1.onnx", 6, `{"stat_subset_size": 6}`, func(dir string) {
		s1, _ := filepath.Abs("../testdata/models/cascade_stage1.onnx")
		s2, _ := filepath.Abs("../testdata/models/cascade_stage2.onnx")
		raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(raw), `"engine"`)
		cascade := `{"model": {"model_name": "casc", "cascade": [{"name": "detector", "model": "` + s1 + `"}, {"name": "head", "model": "` + s2 + `"}]},` + "\n "
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cascade+string(raw[i:])), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	out := t.TempDir()
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != 2 {
		t.Fatalf("files %+v, want one per stage", rep.Files)
	}
	for _, name := range []string{"detector.onnx", "head.onnx"} {
		p, err := model.LoadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		q := 0
		for _, n := range p.GetGraph().GetNode() {
			if n.GetOpType() == "QuantizeLinear" {
				q++
			}
		}
		if q == 0 {
			t.Errorf("%s has no QuantizeLinear node", name)
		}
	}
}
