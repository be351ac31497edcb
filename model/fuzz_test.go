package model

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// FuzzLoad feeds arbitrary bytes to the loader and, when they load, to the
// graph utilities and transformations: nothing may panic, and a loaded model
// must marshal and load back to the same bytes.
//
//	go test ./model -run XXX -fuzz FuzzLoad -fuzztime 60s
func FuzzLoad(f *testing.F) {
	// Small seeds only: the fuzzer minimizes every new interesting input,
	// which takes seconds for the 10 KB convnets.
	for _, name := range append(goodFixtures, "truncated.onnx", "not_onnx.onnx", "missing_weights.onnx") {
		b, err := os.ReadFile(fixture(name))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 4096 {
			f.Add(b)
		}
	}
	for _, p := range []*onnxpb.ModelProto{
		bnModel(true),
		oneNode(9, newNode("Clip", "clip", []string{"x"}, []string{"y"}, floatAttr("min", 0), floatAttr("max", 6)), []int64{1, 4}),
		oneNode(11, newNode("Unsqueeze", "u", []string{"x"}, []string{"y"}, intsAttr("axes", 2)), []int64{1, 4}),
		oneNode(11, newNode("Softmax", "sm", []string{"x"}, []string{"y"}), nil),
		oneNode(9, newNode("Pad", "pad", []string{"x"}, []string{"y"}, intsAttr("pads", 0, 1, 0, 1), floatAttr("value", 1)), []int64{1, 4}),
		oneNode(9, newNode("Dropout", "d", []string{"x"}, []string{"y", "m"}, floatAttr("ratio", 0.1)), []int64{4}),
		oneNode(9, newNode("Upsample", "up", []string{"x", "s"}, []string{"y"}), []int64{1, 1, 2, 2},
			NewTensorFloat32("s", []int64{4}, []float32{1, 1, 2, 2})),
		oneNode(9, newNode("Constant", "c", nil, []string{"y"}, intsAttr("value_ints", 1, 2)), nil),
	} {
		b, err := Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// External data of the seeds resolves in dir: give them a weights file.
	dir := f.TempDir()
	for _, name := range []string{"convnet_extdata.onnx.data", "missing_weights.onnx.data"} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 4096), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	name := filepath.Join(dir, "fuzz.onnx")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := LoadBytes(name, data)
		if err != nil {
			if p != nil {
				t.Fatal("a model and an error")
			}
			return
		}
		b, err := Marshal(p)
		if err != nil {
			return // e.g. invalid UTF-8 is accepted on decode only in proto2 strings; nothing to check
		}
		p2, err := LoadBytes(name, b)
		if err != nil {
			t.Fatalf("a loaded model does not load back: %v", err)
		}
		b2, err := Marshal(p2)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("marshal is not stable: %v", err)
		}

		Inputs(p)
		Outputs(p)
		r := Inspect(p)
		var buf bytes.Buffer
		if err := r.WriteText(&buf); err != nil {
			t.Fatal(err)
		}
		x := NewGraph(p)
		x.TopoOrder()
		QuantizableNodes(p)
		for _, tp := range p.GetGraph().GetInitializer() {
			TensorFloat32(tp)
			TensorInt64(tp)
		}
		c := proto.Clone(p).(*onnxpb.ModelProto)
		ConstantsToInitializers(c)
		FoldBatchNorm(c)
		UpgradeOpset(c, MaxOpset)
		Marshal(c)
	})
}
