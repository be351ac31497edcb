package model

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

func defaultOpset(p *onnxpb.ModelProto) int64 {
	for _, o := range p.GetOpsetImport() {
		if isDefaultDomain(o.GetDomain()) {
			return o.GetVersion()
		}
	}
	return 0
}

func nodeByOp(t *testing.T, p *onnxpb.ModelProto, op string) *onnxpb.NodeProto {
	t.Helper()
	for _, n := range p.GetGraph().GetNode() {
		if n.GetOpType() == op {
			return n
		}
	}
	t.Fatalf("no %s node in %v", op, opTypes(p.GetGraph().GetNode()))
	return nil
}

func initFloats(t *testing.T, p *onnxpb.ModelProto, name string) []float32 {
	t.Helper()
	v, err := TensorFloat32(NewGraph(p).Initializer(name))
	if err != nil {
		t.Fatalf("initializer %q: %v", name, err)
	}
	return v
}

func initInts(t *testing.T, p *onnxpb.ModelProto, name string) []int64 {
	t.Helper()
	v, err := TensorInt64(NewGraph(p).Initializer(name))
	if err != nil {
		t.Fatalf("initializer %q: %v", name, err)
	}
	return v
}

func TestUpgradeFixtures(t *testing.T) {
	tests := []struct {
		model    string
		clipAttr bool // Clip had min/max attributes
	}{
		{"convnet_op9_const.onnx", true},
		{"convnet_op11.onnx", false},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			p := proto.Clone(mustLoad(t, tc.model)).(*onnxpb.ModelProto)
			if _, err := ConstantsToInitializers(p); err != nil {
				t.Fatal(err)
			}
			if err := UpgradeOpset(p, 13); err != nil {
				t.Fatal(err)
			}
			if v := defaultOpset(p); v != 13 {
				t.Errorf("opset %d after upgrade", v)
			}
			if p.GetIrVersion() < 7 {
				t.Errorf("ir_version %d", p.GetIrVersion())
			}
			clip := nodeByOp(t, p, "Clip")
			if len(clip.Input) != 3 || len(clip.Attribute) != 0 {
				t.Fatalf("Clip inputs %v attributes %v", clip.Input, clip.Attribute)
			}
			// gen_models.py clips to [0, 6].
			if lo, hi := initFloats(t, p, clip.Input[1]), initFloats(t, p, clip.Input[2]); lo[0] != 0 || hi[0] != 6 {
				t.Errorf("Clip bounds %v %v", lo, hi)
			}
			if tc.clipAttr && !strings.HasSuffix(clip.Input[1], "_min") {
				t.Errorf("Clip min input %q", clip.Input[1])
			}
			for _, op := range []string{"Squeeze", "Unsqueeze"} {
				n := nodeByOp(t, p, op)
				if len(n.Input) != 2 || len(n.Attribute) != 0 {
					t.Fatalf("%s inputs %v attributes %v", op, n.Input, n.Attribute)
				}
				if axes := initInts(t, p, n.Input[1]); !reflect.DeepEqual(axes, []int64{2}) {
					t.Errorf("%s axes %v", op, axes)
				}
			}
			if _, err := NewGraph(p).TopoOrder(); err != nil {
				t.Error(err)
			}
			// The upgraded model saves and loads back identically.
			dir := t.TempDir()
			files, err := Save(NewCompressedModel("m", false, &Stage{Name: "m", Proto: p}), dir, "m", false)
			if err != nil {
				t.Fatal(err)
			}
			back, err := LoadFile(files[0].Model)
			if err != nil || !proto.Equal(back, p) {
				t.Errorf("reload: %v", err)
			}
			// Upgrading again changes nothing.
			again := proto.Clone(p).(*onnxpb.ModelProto)
			if err := UpgradeOpset(again, 13); err != nil || !proto.Equal(again, p) {
				t.Errorf("second upgrade: %v", err)
			}
		})
	}
	p := proto.Clone(mustLoad(t, "convnet_op13.onnx")).(*onnxpb.ModelProto)
	if err := UpgradeOpset(p, 13); err != nil || !proto.Equal(p, mustLoad(t, "convnet_op13.onnx")) {
		t.Errorf("upgrading an opset 13 model changed it: %v", err)
	}
}

// oneNode is a model running n on input x (shape dims) to output y.
func oneNode(opset int64, n *onnxpb.NodeProto, dims []int64, inits ...*onnxpb.TensorProto) *onnxpb.ModelProto {
	var in []*onnxpb.ValueInfoProto
	if dims != nil {
		in = append(in, fvi("x", dims...))
	} else {
		in = append(in, &onnxpb.ValueInfoProto{Name: proto.String("x")})
	}
	return synth(opset, in, []*onnxpb.ValueInfoProto{{Name: proto.String("y")}}, []*onnxpb.NodeProto{n}, inits...)
}

func TestUpgradeRewrites(t *testing.T) {
	tests := []struct {
		name  string
		from  int64
		model func() *onnxpb.ModelProto
		check func(t *testing.T, p *onnxpb.ModelProto)
	}{
		{"Softmax axis 1, rank unknown", 11, func() *onnxpb.ModelProto {
			return oneNode(11, NewNode("Softmax", "sm", []string{"x"}, []string{"y"}), nil)
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			if got := opTypes(p.Graph.Node); !reflect.DeepEqual(got, []string{"Shape", "Flatten", "Softmax", "Reshape"}) {
				t.Fatalf("nodes %v", got)
			}
			if a := attrInt(p.Graph.Node[1], "axis", 0); a != 1 {
				t.Errorf("Flatten axis %d, want the old default 1", a)
			}
			if a := attrInt(p.Graph.Node[2], "axis", 0); a != -1 {
				t.Errorf("Softmax axis %d", a)
			}
			if last := p.Graph.Node[3]; last.Output[0] != "y" {
				t.Errorf("Reshape output %v", last.Output)
			}
		}},
		{"Softmax over the last axis", 9, func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("Softmax", "sm", []string{"x"}, []string{"y"}), []int64{1, 10})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			if len(p.Graph.Node) != 1 || attrInt(p.Graph.Node[0], "axis", 0) != -1 {
				t.Errorf("nodes %v axis %d", opTypes(p.Graph.Node), attrInt(p.Graph.Node[0], "axis", 0))
			}
		}},
		{"Pad-2", 9, func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("Pad", "pad", []string{"x"}, []string{"y"},
				StringAttr("mode", "constant"), intsAttr("pads", 0, 0, 1, 1, 0, 0, 1, 1), floatAttr("value", 0.5)), []int64{1, 1, 2, 2})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if len(n.Input) != 3 || len(n.Attribute) != 1 || attrString(n, "mode", "") != "constant" {
				t.Fatalf("Pad inputs %v attributes %v", n.Input, n.Attribute)
			}
			if got := initInts(t, p, n.Input[1]); !reflect.DeepEqual(got, []int64{0, 0, 1, 1, 0, 0, 1, 1}) {
				t.Errorf("pads %v", got)
			}
			if got := initFloats(t, p, n.Input[2]); got[0] != 0.5 {
				t.Errorf("value %v", got)
			}
		}},
		{"Split", 11, func() *onnxpb.ModelProto {
			n := NewNode("Split", "split", []string{"x"}, []string{"y", "z"}, IntAttr("axis", 1), intsAttr("split", 1, 3))
			return oneNode(11, n, []int64{1, 4})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if len(n.Input) != 2 || attrInt(n, "axis", 0) != 1 || getAttr(n, "split") != nil {
				t.Fatalf("Split %v", n)
			}
			if got := initInts(t, p, n.Input[1]); !reflect.DeepEqual(got, []int64{1, 3}) {
				t.Errorf("split %v", got)
			}
		}},
		{"ReduceSum", 11, func() *onnxpb.ModelProto {
			return oneNode(11, NewNode("ReduceSum", "rs", []string{"x"}, []string{"y"}, intsAttr("axes", 1), IntAttr("keepdims", 0)), []int64{2, 3})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if len(n.Input) != 2 || attrInt(n, "keepdims", 1) != 0 || getAttr(n, "axes") != nil {
				t.Fatalf("ReduceSum %v", n)
			}
		}},
		{"Dropout-7 with unused mask", 9, func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("Dropout", "drop", []string{"x"}, []string{"y", "mask"}, floatAttr("ratio", 0.25)), []int64{4})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if len(n.Output) != 1 || len(n.Input) != 2 || len(n.Attribute) != 0 {
				t.Fatalf("Dropout %v", n)
			}
			if got := initFloats(t, p, n.Input[1]); got[0] != 0.25 {
				t.Errorf("ratio %v", got)
			}
		}},
		{"BatchNormalization-7 spatial", 7, func() *onnxpb.ModelProto {
			return oneNode(7, NewNode("BatchNormalization", "bn", []string{"x", "s", "b", "m", "v"}, []string{"y"}, IntAttr("spatial", 1), floatAttr("epsilon", 1e-3)), []int64{1, 2})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if getAttr(n, "spatial") != nil || attrFloat(n, "epsilon", 0) != 1e-3 {
				t.Errorf("BatchNormalization attributes %v", n.Attribute)
			}
		}},
		{"Upsample-9 nearest", 9, func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("Upsample", "up", []string{"x", "scales"}, []string{"y"}), []int64{1, 1, 2, 2},
				NewTensorFloat32("scales", []int64{4}, []float32{1, 1, 2, 2}))
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if n.GetOpType() != "Resize" || n.GetName() != "up" || !reflect.DeepEqual(n.Input, []string{"x", "", "scales"}) {
				t.Fatalf("Resize %v", n)
			}
			if attrString(n, "coordinate_transformation_mode", "") != "asymmetric" || attrString(n, "nearest_mode", "") != "floor" || attrString(n, "mode", "") != "nearest" {
				t.Errorf("Resize attributes %v", n.Attribute)
			}
		}},
		{"Upsample-7 linear", 7, func() *onnxpb.ModelProto {
			return oneNode(7, NewNode("Upsample", "up", []string{"x"}, []string{"y"}, StringAttr("mode", "linear"), floatsAttr("scales", 1, 1, 0.5, 0.5)), []int64{1, 1, 4, 4})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if n.GetOpType() != "Resize" || len(n.Input) != 3 || attrString(n, "mode", "") != "linear" || getAttr(n, "nearest_mode") != nil {
				t.Fatalf("Resize %v", n)
			}
			if got := initFloats(t, p, n.Input[2]); !reflect.DeepEqual(got, []float32{1, 1, 0.5, 0.5}) {
				t.Errorf("scales %v", got)
			}
		}},
		{"Slice-1", 9, func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("Slice", "sl", []string{"x"}, []string{"y"}, intsAttr("starts", 1), intsAttr("ends", 3), intsAttr("axes", 0)), []int64{4})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if len(n.Input) != 4 || len(n.Attribute) != 0 {
				t.Fatalf("Slice %v", n)
			}
			if got := initInts(t, p, n.Input[2]); !reflect.DeepEqual(got, []int64{3}) {
				t.Errorf("ends %v", got)
			}
		}},
		{"TopK-1", 9, func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("TopK", "tk", []string{"x"}, []string{"y", "i"}, IntAttr("k", 2)), []int64{4})
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			n := p.Graph.Node[0]
			if len(n.Input) != 2 || getAttr(n, "k") != nil {
				t.Fatalf("TopK %v", n)
			}
			if got := initInts(t, p, n.Input[1]); !reflect.DeepEqual(got, []int64{2}) {
				t.Errorf("k %v", got)
			}
		}},
		{"ai.onnx.ml node left alone", 9, func() *onnxpb.ModelProto {
			n := NewNode("Normalizer", "norm", []string{"x"}, []string{"y"}, StringAttr("norm", "L2"))
			n.Domain = proto.String("ai.onnx.ml")
			p := oneNode(9, n, []int64{1, 4})
			p.OpsetImport = append(p.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String("ai.onnx.ml"), Version: proto.Int64(1)})
			return p
		}, func(t *testing.T, p *onnxpb.ModelProto) {
			if n := p.Graph.Node[0]; n.GetOpType() != "Normalizer" || len(n.Input) != 1 {
				t.Errorf("ml node changed: %v", n)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.model()
			if err := UpgradeOpset(p, 13); err != nil {
				t.Fatal(err)
			}
			if v := defaultOpset(p); v != 13 {
				t.Errorf("opset %d", v)
			}
			tc.check(t, p)
		})
	}
}

// TestUpgradeKeepsOtherDomains: nodes of imported custom domains are left
// as they are (ONNX Runtime runs com.microsoft ops; an unknown domain fails
// there, naming the operator) and their opset_import entries stay.
func TestUpgradeKeepsOtherDomains(t *testing.T) {
	p := proto.Clone(mustLoad(t, "bad_domain.onnx")).(*onnxpb.ModelProto)
	before := countOp(p, "Frobnicate")
	if err := UpgradeOpset(p, 13); err != nil {
		t.Fatal(err)
	}
	if defaultOpset(p) != 13 || countOp(p, "Frobnicate") != before || before == 0 {
		t.Errorf("opset %d, %d Frobnicate nodes (had %d)", defaultOpset(p), countOp(p, "Frobnicate"), before)
	}
	found := false
	for _, o := range p.GetOpsetImport() {
		found = found || o.GetDomain() == "com.example.unknown"
	}
	if !found {
		t.Errorf("opset_import lost com.example.unknown: %v", p.GetOpsetImport())
	}
}

func TestUpgradeErrors(t *testing.T) {
	tests := []struct {
		name   string
		model  func() *onnxpb.ModelProto
		target int64
		want   error
		msg    string // the message must contain it
	}{
		{"node of an unimported domain", func() *onnxpb.ModelProto {
			n := NewNode("Frob", "frob", []string{"x"}, []string{"y"})
			n.Domain = proto.String("com.other")
			return oneNode(9, n, []int64{1})
		}, 13, ErrUnsupportedDomain, `node "frob" (Frob): unsupported opset domain "com.other": the model's opset_import does not import it`},
		{"unknown operator", func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("Foo", "x", []string{"x"}, []string{"y"}), []int64{1})
		}, 13, ErrCannotUpgrade, `node "x" (Foo): cannot upgrade from opset 9 to 13: `},
		{"operator too old", func() *onnxpb.ModelProto {
			return oneNode(6, NewNode("Gemm", "gemm", []string{"x", "x"}, []string{"y"}, IntAttr("broadcast", 1)), []int64{2, 2})
		}, 13, ErrCannotUpgrade, `node "gemm" (Gemm): cannot upgrade from opset 6 to 13`},
		{"BatchNormalization spatial 0", func() *onnxpb.ModelProto {
			return oneNode(7, NewNode("BatchNormalization", "bn", []string{"x", "s", "b", "m", "v"}, []string{"y"}, IntAttr("spatial", 0)), []int64{1, 2})
		}, 13, ErrCannotUpgrade, `node "bn" (BatchNormalization): cannot upgrade from opset 7 to 13: spatial=0`},
		{"Upsample nearest downscale", func() *onnxpb.ModelProto {
			return oneNode(7, NewNode("Upsample", "up", []string{"x"}, []string{"y"}, floatsAttr("scales", 1, 1, 0.5, 0.5)), []int64{1, 1, 4, 4})
		}, 13, ErrCannotUpgrade, `node "up" (Upsample)`},
		{"Upsample nearest, scales not constant", func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("Upsample", "up", []string{"x", "s"}, []string{"y"}), []int64{1, 1, 4, 4})
		}, 13, ErrCannotUpgrade, "constant scales"},
		{"Dropout mask used", func() *onnxpb.ModelProto {
			p := oneNode(9, NewNode("Dropout", "drop", []string{"x"}, []string{"y", "mask"}), []int64{4})
			p.Graph.Output = append(p.Graph.Output, fvi("mask", 4))
			return p
		}, 13, ErrCannotUpgrade, `mask output "mask"`},
		{"Clip on int64", func() *onnxpb.ModelProto {
			p := oneNode(9, NewNode("Clip", "clip", []string{"x"}, []string{"y"}, floatAttr("min", 0)), nil)
			p.Graph.Input[0] = tensorValueInfo(NewTensorInt64("x", []int64{1}, []int64{0}))
			return p
		}, 13, ErrCannotUpgrade, `node "clip" (Clip)`},
		{"unnamed node", func() *onnxpb.ModelProto {
			return oneNode(9, NewNode("Foo", "", []string{"x"}, []string{"y"}), []int64{1})
		}, 13, ErrCannotUpgrade, `output "y" (Foo)`},
		{"downgrade", func() *onnxpb.ModelProto { return proto.Clone(mustLoad(t, "convnet_op13.onnx")).(*onnxpb.ModelProto) }, 11, ErrCannotUpgrade, "downgrading"},
		{"target too new", func() *onnxpb.ModelProto { return proto.Clone(mustLoad(t, "convnet_op13.onnx")).(*onnxpb.ModelProto) }, 14, ErrCannotUpgrade, "opset 14"},
		{"second bad node after a good one", func() *onnxpb.ModelProto {
			p := oneNode(9, NewNode("Clip", "clip", []string{"x"}, []string{"c"}, floatAttr("min", 0)), []int64{1})
			p.Graph.Node = append(p.Graph.Node, NewNode("Foo", "foo", []string{"c"}, []string{"y"}))
			return p
		}, 13, ErrCannotUpgrade, `node "foo" (Foo)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.model()
			before := proto.Clone(p)
			err := UpgradeOpset(p, tc.target)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("UpgradeOpset error %v, want %v containing %q", err, tc.want, tc.msg)
			}
			if !proto.Equal(before, p) {
				t.Error("model changed on error")
			}
		})
	}
}
