package model

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// onnxInferScript prints, for each model in argv[1:], the element type and
// shape that onnx.shape_inference.infer_shapes gives every graph input,
// output and value_info, top-level and in sub-graphs (shape null when the
// rank is unknown, -1 for a dim without dim_value).
const onnxInferScript = `
import json, sys
import onnx
from onnx import shape_inference
def infer(path):
    m = onnx.load(path, load_external_data=False)
    m = shape_inference.infer_shapes(m)
    out = {}
    def add(vi, sub):
        if vi.name in out:
            return
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        elem = tt.elem_type if tt is not None else 0
        shape = None
        if tt is not None and tt.HasField("shape"):
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        out[vi.name] = {"elem": elem, "shape": shape, "sub": sub}
    def walk(g, sub):
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            add(vi, sub)
        for n in g.node:
            for a in n.attribute:
                for sg in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(sg, True)
    walk(m.graph, False)
    return out
res = {}
for path in sys.argv[1:]:
    try:
        res[path] = {"tensors": infer(path)}
    except Exception as e:
        res[path] = {"error": str(e)[:300]}
json.dump(res, sys.stdout)
`

type onnxInferred struct {
	Elem  int32   `json:"elem"`
	Shape []int64 `json:"shape"`
	Sub   bool    `json:"sub"`
}

// crossCheckModels lists the .onnx files of testdata/models, examples/ and
// $FLEETCAL_CORPUS.
func crossCheckModels(t *testing.T) []string {
	var files []string
	roots := []string{filepath.Join("..", "testdata", "models"), filepath.Join("..", "examples")}
	if c := os.Getenv("FLEETCAL_CORPUS"); c != "" {
		roots = append(roots, c)
	}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(path, ".onnx") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("listing %s: %v", root, err)
		}
	}
	sort.Strings(files)
	return files
}

// TestInferTypesMatchesONNX compares InferTypes with ONNX's own shape
// inference on every model at hand: every tensor ONNX gives an element type
// must get the same one, and dims both know must agree.
//
//	FLEETCAL_CORPUS=~/onnx-models go test ./model -run TestInferTypesMatchesONNX -v
func TestInferTypesMatchesONNX(t *testing.T) {
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import onnx").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import onnx (install python3-onnx): %v: %s", python, err, out)
	}
	var paths []string
	protos := map[string]*onnxpb.ModelProto{}
	for _, path := range crossCheckModels(t) {
		if p, err := LoadFile(path); err == nil { // not the deliberately bad fixtures
			paths = append(paths, path)
			protos[path] = p
		}
	}
	raw, err := exec.Command(python, append([]string{"-c", onnxInferScript}, paths...)...).Output()
	if err != nil {
		t.Fatalf("onnx shape inference: %v", err)
	}
	var results map[string]struct {
		Tensors map[string]onnxInferred `json:"tensors"`
		Error   string                  `json:"error"`
	}
	if err := json.Unmarshal(raw, &results); err != nil {
		t.Fatal(err)
	}
	var compared, mismatches, missing, extra, shapes, files int
	for _, path := range paths {
		p, res := protos[path], results[path]
		if res.Error != "" {
			t.Logf("%s: onnx shape inference fails, skipped: %s", path, res.Error)
			continue
		}
		want := res.Tensors
		files++
		types := InferTypes(p)
		names := make([]string, 0, len(want))
		for name := range want {
			names = append(names, name)
		}
		sort.Strings(names)
		var fileMissing []string
		for _, name := range names {
			w := want[name]
			if w.Elem == 0 {
				continue
			}
			var got TensorType
			var ok bool
			if w.Sub {
				got, ok = types.InSubgraph(name)
			} else {
				got, ok = types.Of(name)
			}
			compared++
			switch {
			case !ok:
				missing++
				fileMissing = append(fileMissing, name)
			case got.ElemType != w.Elem:
				mismatches++
				t.Errorf("%s: tensor %q: InferTypes gives %s, onnx %s", path, name, got, TensorType{w.Elem, w.Shape})
			case !shapesAgree(got.Shape, w.Shape):
				shapes++
				t.Errorf("%s: tensor %q: InferTypes gives shape %v, onnx %v", path, name, got.Shape, w.Shape)
			}
		}
		if len(fileMissing) > 0 {
			t.Logf("%s: %d tensors typed by onnx only: %v", path, len(fileMissing), fileMissing)
		}
		var fileExtra []string
		for _, n := range p.GetGraph().GetNode() {
			for _, o := range n.GetOutput() {
				if w, ok := want[o]; o == "" || ok && w.Elem != 0 {
					continue
				}
				if _, ok := types.Of(o); ok {
					extra++
					fileExtra = append(fileExtra, o)
				}
			}
		}
		if len(fileExtra) > 0 {
			t.Logf("%s: %d tensors typed by InferTypes only: %v", path, len(fileExtra), fileExtra)
		}
	}
	t.Logf("%d models, %d tensors typed by onnx compared: %d elem type mismatches, %d shape mismatches, %d untyped by InferTypes; %d node outputs typed by InferTypes only",
		files, compared, mismatches, shapes, missing, extra)
	if files == 0 {
		t.Fatal("no model compared")
	}
}

// shapesAgree reports whether no dim known to both differs (ranks must
// agree when both are known).
func shapesAgree(a, b []int64) bool {
	if a == nil || b == nil {
		return true
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] >= 0 && b[i] >= 0 && a[i] != b[i] {
			return false
		}
	}
	return true
}
