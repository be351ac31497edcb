package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/model"
)

// TestQuantizeCascade quantizes a two-stage cascade: one file per stage,
// named by stage, each with QDQ nodes.
func TestQuantizeCascade(t *testing.T) {
	// The stages' layers are small: the cost rule would keep them in float.
	cfg := fixtureRun(t, "cascade_stage1.onnx", 6, `{"stat_subset_size": 6, "min_macs_per_element": 0}`, func(dir string) {
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

// TestQuantizeCascadeStageData: a stage with its own data_source is
// calibrated on it; a later stage without one is an error naming it.
func TestQuantizeCascadeStageData(t *testing.T) {
	var dir string
	cfg := fixtureRun(t, "cascade_stage1.onnx", 4, `{"stat_subset_size": 4}`, func(d string) { dir = d })
	if err := os.Mkdir(filepath.Join(dir, "features"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		data := make([]float32, 8*16*16)
		for k := range data {
			data[k] = float32((k*7+i*3)%11) / 10
		}
		writeNpy(t, filepath.Join(dir, "features", fmt.Sprintf("%d.npy", i)), []int{1, 8, 16, 16}, data)
	}
	s1, _ := filepath.Abs("../testdata/models/cascade_stage1.onnx")
	s2, _ := filepath.Abs("../testdata/models/cascade_stage2.onnx")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rest := string(raw[strings.Index(string(raw), `"engine"`):])
	// The detector calibrates on the engine's data, the head on its own.
	c := `{"model": {"model_name": "casc", "cascade": [{"name": "detector", "model": "` + s1 + `"}, ` +
		`{"name": "head", "model": "` + s2 + `", "data_source": {"type": "npy", "path": "features"}}]},` + "\n " + rest
	if err := os.WriteFile(cfg, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: out, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != 2 || rep.Stages["head"] == nil || rep.Stages["head"].Samples != 5 || rep.Stages["detector"].Samples != 4 {
		t.Fatalf("report: files %+v, stages %v", rep.Files, rep.Stages)
	}
	if _, err := model.LoadFile(filepath.Join(out, "head.onnx")); err != nil {
		t.Fatal(err)
	}

	// Data on the first stage only leaves the second without inputs.
	c = `{"model": {"model_name": "casc", "cascade": [{"name": "detector", "model": "` + s1 + `", "data_source": {"type": "npy", "path": "calib"}}, {"name": "head", "model": "` + s2 + `"}]},` + "\n " + rest
	if err := os.WriteFile(cfg, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "model.cascade[1] (head): no data_source") {
		t.Fatalf("err = %v, want the head stage named", err)
	}
}
