package model

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

const (
	tF   = TypeFloat
	tI64 = TypeInt64
	tI32 = typeInt32
	tB   = typeBool
	tF16 = TypeFloat16
	tU8  = typeUint8
	tI8  = int32(onnxpb.TensorProto_INT8)
	tF64 = TypeDouble
)

// vi declares a tensor; shape nil leaves the rank unknown, -1 is an unknown dim.
func vi(name string, elem int32, shape []int64) *onnxpb.ValueInfoProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(elem)}
	if shape != nil {
		tt.Shape = &onnxpb.TensorShapeProto{}
		for _, d := range shape {
			dim := &onnxpb.TensorShapeProto_Dimension{}
			if d >= 0 {
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
			}
			tt.Shape.Dim = append(tt.Shape.Dim, dim)
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}}
}

// nd is a node; inputs and outputs are comma-separated ("x,,w": input 1 absent).
func nd(op, ins, outs string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	o := split(outs)
	return NewNode(op, o[0]+"_node", split(ins), o, attrs...)
}

func msNode(op, ins, outs string) *onnxpb.NodeProto {
	n := nd(op, ins, outs)
	n.Domain = proto.String("com.microsoft")
	return n
}

func tensorAttr(name string, t *onnxpb.TensorProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
}

func graphAttr(name string, g *onnxpb.GraphProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: g}
}

func i64(name string, v ...int64) *onnxpb.TensorProto {
	return NewTensorInt64(name, []int64{int64(len(v))}, v)
}

func f32(name string, v ...float32) *onnxpb.TensorProto {
	return NewTensorFloat32(name, []int64{int64(len(v))}, v)
}

func typed(elem int32, dims ...int64) *onnxpb.TensorProto {
	n, _ := numElements(dims)
	return newTensor("", elem, dims, make([]byte, n*elemSize(elem)))
}

func named(name string, t *onnxpb.TensorProto) *onnxpb.TensorProto {
	t.Name = proto.String(name)
	return t
}

func sub(name string, in, out []*onnxpb.ValueInfoProto, nodes ...*onnxpb.NodeProto) *onnxpb.GraphProto {
	return &onnxpb.GraphProto{Name: proto.String(name), Input: in, Output: out, Node: nodes}
}

// U is an unknown shape in expectations; s builds a known one.
var U []int64

func s(d ...int64) []int64 { return append([]int64{}, d...) }

type typesCase struct {
	name   string
	opset  int64
	inputs []*onnxpb.ValueInfoProto
	inits  []*onnxpb.TensorProto
	nodes  []*onnxpb.NodeProto
	want   map[string]TensorType
}

func (c typesCase) model() *onnxpb.ModelProto {
	opset := c.opset
	if opset == 0 {
		opset = 13
	}
	return synth(opset, c.inputs, nil, c.nodes, c.inits...)
}

func checkTypes(t *testing.T, types *Types, want map[string]TensorType) {
	t.Helper()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		w := want[name]
		got, ok := types.Of(name)
		if ok != (w.ElemType != 0) || got.ElemType != w.ElemType || !reflect.DeepEqual(got.Shape, w.Shape) {
			t.Errorf("%q: got %s (ok %v), want %s", name, got, ok, w)
		}
	}
}

func x4(name string, elem int32, d ...int64) []*onnxpb.ValueInfoProto {
	return []*onnxpb.ValueInfoProto{vi(name, elem, d)}
}

func TestInferTypesUnary(t *testing.T) {
	ops := []string{"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf", "HardSigmoid",
		"HardSwish", "LeakyRelu", "Elu", "Selu", "Softplus", "Gelu", "Clip", "Identity", "Floor", "Ceil",
		"Round", "Reciprocal", "Sign", "Softmax", "LogSoftmax", "CumSum", "Trilu", "InstanceNormalization",
		"ScatterND", "ScatterElements", "ReverseSequence", "PRelu", "Mish", "Celu", "Softsign", "Sin"}
	for _, elem := range []int32{tF, tF16} {
		for _, op := range ops {
			t.Run(op+"/"+ElemTypeName(elem), func(t *testing.T) {
				c := typesCase{inputs: x4("x", elem, 2, -1), nodes: []*onnxpb.NodeProto{nd(op, "x", "y")}}
				checkTypes(t, InferTypes(c.model()), map[string]TensorType{"y": {elem, s(2, -1)}})
			})
		}
	}
	for _, op := range []string{"IsNaN", "IsInf", "Not"} {
		t.Run(op, func(t *testing.T) {
			c := typesCase{inputs: x4("x", tF, 3), nodes: []*onnxpb.NodeProto{nd(op, "x", "y")}}
			checkTypes(t, InferTypes(c.model()), map[string]TensorType{"y": {tB, s(3)}})
		})
	}
}

func TestInferTypesBinary(t *testing.T) {
	shapes := []struct{ a, b, want []int64 }{
		{s(2, 1, 4), s(3, 1), s(2, 3, 4)}, // numpy broadcasting
		{s(-1, 4), s(1), s(-1, 4)},
		{s(-1, 4), s(3, 4), s(3, 4)}, // the unknown dim must be 1 or 3
		{s(1, -1), s(-1, 1), s(-1, -1)},
		{s(2, 3), s(4, 3), U}, // cannot broadcast
		{U, s(3), U},
		{s(), s(5), s(5)},
	}
	for _, op := range []string{"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean"} {
		for _, sh := range shapes {
			c := typesCase{inputs: []*onnxpb.ValueInfoProto{vi("a", tI64, sh.a), vi("b", tI64, sh.b)}, nodes: []*onnxpb.NodeProto{nd(op, "a,b", "y")}}
			t.Run(op, func(t *testing.T) {
				checkTypes(t, InferTypes(c.model()), map[string]TensorType{"y": {tI64, sh.want}})
			})
		}
	}
	for _, op := range []string{"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"} {
		c := typesCase{inputs: []*onnxpb.ValueInfoProto{vi("a", tF, s(2, 1)), vi("b", tF, s(3))}, nodes: []*onnxpb.NodeProto{nd(op, "a,b", "y")}}
		t.Run(op, func(t *testing.T) {
			checkTypes(t, InferTypes(c.model()), map[string]TensorType{"y": {tB, s(2, 3)}})
		})
	}
}

func TestInferTypesOps(t *testing.T) {
	x := func(d ...int64) []*onnxpb.ValueInfoProto { return x4("x", tF, d...) }
	tests := []typesCase{
		{name: "Cast", inputs: x(2, 3), nodes: []*onnxpb.NodeProto{nd("Cast", "x", "y", IntAttr("to", 7))},
			want: map[string]TensorType{"y": {tI64, s(2, 3)}}},
		{name: "CastLike", inputs: []*onnxpb.ValueInfoProto{vi("x", tF, s(2)), vi("t", tF16, s())}, nodes: []*onnxpb.NodeProto{nd("CastLike", "x,t", "y")},
			want: map[string]TensorType{"y": {tF16, s(2)}}},
		{name: "Shape", inputs: x(1, 3, -1, 8), nodes: []*onnxpb.NodeProto{nd("Shape", "x", "y"), nd("Size", "x", "n")},
			want: map[string]TensorType{"y": {tI64, s(4)}, "n": {tI64, s()}}},
		{name: "Shape-15 start end", opset: 15, inputs: x(1, 3, 8, 8), nodes: []*onnxpb.NodeProto{nd("Shape", "x", "y", IntAttr("start", 1), IntAttr("end", -1))},
			want: map[string]TensorType{"y": {tI64, s(2)}}},
		{name: "Shape of unknown rank", inputs: x4("x", tF), nodes: []*onnxpb.NodeProto{nd("Shape", "x", "y")},
			want: map[string]TensorType{"y": {tI64, s(-1)}}},
		{name: "Gather", inputs: x(5, 4), inits: []*onnxpb.TensorProto{NewTensorInt64("i", []int64{2, 3}, make([]int64, 6)), NewTensorInt64("j", nil, []int64{1})},
			nodes: []*onnxpb.NodeProto{nd("Gather", "x,i", "y", IntAttr("axis", 1)), nd("Gather", "x,j", "z")},
			want:  map[string]TensorType{"y": {tF, s(5, 2, 3)}, "z": {tF, s(4)}}},
		{name: "GatherElements GatherND", inputs: []*onnxpb.ValueInfoProto{vi("x", tF16, s(5, 4)), vi("i", tI64, s(5, 2))},
			nodes: []*onnxpb.NodeProto{nd("GatherElements", "x,i", "y", IntAttr("axis", 1)), nd("GatherND", "x,i", "z")},
			want:  map[string]TensorType{"y": {tF16, s(5, 2)}, "z": {tF16, U}}},
		{name: "Reshape constant", inputs: x(2, 3, 4), inits: []*onnxpb.TensorProto{i64("s", 0, -1), i64("t", 4, 0, -1)},
			nodes: []*onnxpb.NodeProto{nd("Reshape", "x,s", "y"), nd("Reshape", "x,t", "z")},
			want:  map[string]TensorType{"y": {tF, s(2, 12)}, "z": {tF, s(4, 3, 2)}}},
		{name: "Reshape unknown shape value", inputs: []*onnxpb.ValueInfoProto{vi("x", tF, s(2, 3, 4)), vi("s", tI64, s(3))},
			nodes: []*onnxpb.NodeProto{nd("Reshape", "x,s", "y")},
			want:  map[string]TensorType{"y": {tF, s(-1, -1, -1)}}},
		{name: "Reshape from shape arithmetic", opset: 13, inputs: x(2, 8, 4, 4),
			inits: []*onnxpb.TensorProto{NewTensorInt64("zero", nil, []int64{0}), NewTensorInt64("one", nil, []int64{1}), i64("ax", 0), i64("m1", -1)},
			nodes: []*onnxpb.NodeProto{
				nd("Shape", "x", "sh"), nd("Gather", "sh,zero", "n"), nd("Gather", "sh,one", "c"),
				nd("Unsqueeze", "n,ax", "n1"), nd("Unsqueeze", "c,ax", "c1"), nd("Concat", "n1,c1,m1", "shape", IntAttr("axis", 0)),
				nd("Reshape", "x,shape", "y"), nd("Cast", "c", "cf", IntAttr("to", 1))},
			want: map[string]TensorType{"sh": {tI64, s(4)}, "n": {tI64, s()}, "n1": {tI64, s(1)}, "shape": {tI64, s(3)},
				"y": {tF, s(2, 8, 16)}, "cf": {tF, s()}}},
		{name: "Flatten", inputs: x(2, 3, 4, 5), nodes: []*onnxpb.NodeProto{nd("Flatten", "x", "y", IntAttr("axis", 2)), nd("Flatten", "x", "z", IntAttr("axis", 0)), nd("Flatten", "x", "w")},
			want: map[string]TensorType{"y": {tF, s(6, 20)}, "z": {tF, s(1, 120)}, "w": {tF, s(2, 60)}}},
		{name: "Squeeze Unsqueeze opset 11", opset: 11, inputs: x(2, 1, 3),
			nodes: []*onnxpb.NodeProto{nd("Squeeze", "x", "y", intsAttr("axes", 1)), nd("Unsqueeze", "x", "z", intsAttr("axes", 0, -1)), nd("Squeeze", "x", "w")},
			want:  map[string]TensorType{"y": {tF, s(2, 3)}, "z": {tF, s(1, 2, 1, 3, 1)}, "w": {tF, s(2, 3)}}},
		{name: "Squeeze Unsqueeze opset 13", inputs: x(2, 1, 3), inits: []*onnxpb.TensorProto{i64("a", -2), i64("b", 0, 4)},
			nodes: []*onnxpb.NodeProto{nd("Squeeze", "x,a", "y"), nd("Unsqueeze", "x,b", "z")},
			want:  map[string]TensorType{"y": {tF, s(2, 3)}, "z": {tF, s(1, 2, 1, 3, 1)}}},
		{name: "Squeeze of an unknown dim without axes", inputs: x(2, -1),
			nodes: []*onnxpb.NodeProto{nd("Squeeze", "x", "y")}, want: map[string]TensorType{"y": {tF, U}}},
		{name: "Transpose", inputs: x(1, 3, 8, 9),
			nodes: []*onnxpb.NodeProto{nd("Transpose", "x", "y", intsAttr("perm", 0, 2, 3, 1)), nd("Transpose", "x", "z"), nd("Transpose", "x", "w", intsAttr("perm", 0, 0, 1, 2))},
			want:  map[string]TensorType{"y": {tF, s(1, 8, 9, 3)}, "z": {tF, s(9, 8, 3, 1)}, "w": {tF, U}}},
		{name: "Concat", inputs: []*onnxpb.ValueInfoProto{vi("a", tF, s(1, 2, -1)), vi("b", tF, s(1, 3, 4))},
			nodes: []*onnxpb.NodeProto{nd("Concat", "a,b", "y", IntAttr("axis", 1)), nd("Concat", "a,b", "z", IntAttr("axis", -1))},
			want:  map[string]TensorType{"y": {tF, s(1, 5, 4)}, "z": {tF, U}}}, // z: 2 != 3 off the axis
		{name: "Split", inputs: x(6, 4), inits: []*onnxpb.TensorProto{i64("sp", 2, 4)},
			nodes: []*onnxpb.NodeProto{nd("Split", "x,sp", "a,b"), nd("Split", "x", "c,d,e")},
			want:  map[string]TensorType{"a": {tF, s(2, 4)}, "b": {tF, s(4, 4)}, "c": {tF, s(2, 4)}, "e": {tF, s(2, 4)}}},
		{name: "Slice Pad Expand Tile", inputs: x(2, 3), inits: []*onnxpb.TensorProto{i64("st", 0), i64("en", 1), i64("sh", 4, 1, 3), i64("rep", 2, 2)},
			nodes: []*onnxpb.NodeProto{nd("Slice", "x,st,en", "a"), nd("Pad", "x,st", "b"), nd("Expand", "x,sh", "c"), nd("Tile", "x,rep", "d")},
			want:  map[string]TensorType{"a": {tF, s(1, 3)}, "b": {tF, s(-1, -1)}, "c": {tF, s(4, 2, 3)}, "d": {tF, s(4, 6)}}},
		// Output dims as numpy computes x[...] for the same starts, ends,
		// axes and steps (ONNX's Slice definition).
		{name: "Slice axes steps", opset: 13, inputs: x(4, 10, 6),
			inits: []*onnxpb.TensorProto{i64("st", 1, -1), i64("en", 100, -8), i64("ax", -2, 2), i64("sp", 3, -2), i64("big", -100), i64("one", 1), i64("zero", 0)},
			nodes: []*onnxpb.NodeProto{nd("Slice", "x,st,en,ax,sp", "a"), nd("Slice", "x,big,one", "b"), nd("Slice", "x,zero,one,,zero", "bad"),
				nd("Slice", "x,st,en,sp", "c")},
			want: map[string]TensorType{"a": {tF, s(4, 3, 3)}, "b": {tF, s(1, 10, 6)}, "bad": {tF, s(-1, -1, -1)}, "c": {tF, s(-1, -1, -1)}}},
		{name: "Slice opset 9 attributes", opset: 9, inputs: x(2, 8),
			nodes: []*onnxpb.NodeProto{nd("Slice", "x", "a", intsAttr("starts", 2), intsAttr("ends", -1), intsAttr("axes", 1)), nd("Slice", "x", "b", intsAttr("starts", 0))},
			want:  map[string]TensorType{"a": {tF, s(2, 5)}, "b": {tF, s(-1, -1)}}},
		// torch.onnx.export's F.interpolate(x, size=...): Resize sizes from
		// Shape → Slice → Concat, and scales from Shape → Gather → Div →
		// Mul; the input's batch dim is known only at the sample's shape.
		{name: "Resize sizes from shape arithmetic", opset: 13, inputs: x(1, 1, 28, 28),
			inits: []*onnxpb.TensorProto{i64("st", 0), i64("en", 2), i64("ax", 0), i64("hw", 56, 56), NewTensorInt64("two", nil, []int64{2}), NewTensorInt64("four", nil, []int64{4}), NewTensorInt64("i3", nil, []int64{3})},
			nodes: []*onnxpb.NodeProto{
				nd("Shape", "x", "sh"), nd("Slice", "sh,st,en,ax", "nc"), nd("Concat", "nc,hw", "sz", IntAttr("axis", 0)),
				nd("Resize", "x,,,sz", "y"),
				nd("Gather", "sh,i3", "w"), nd("Mul", "w,four", "w4"), nd("Div", "w4,two", "w2"), nd("Unsqueeze", "w2,ax", "w1"),
				nd("Concat", "nc,w1,w1", "sz2", IntAttr("axis", 0)), nd("Resize", "x,,,sz2", "z")},
			want: map[string]TensorType{"nc": {tI64, s(2)}, "sz": {tI64, s(4)}, "y": {tF, s(1, 1, 56, 56)}, "w2": {tI64, s()}, "z": {tF, s(1, 1, 56, 56)}}},
		{name: "DepthToSpace SpaceToDepth", inputs: x(1, 8, 4, 4),
			nodes: []*onnxpb.NodeProto{nd("DepthToSpace", "x", "a", IntAttr("blocksize", 2)), nd("SpaceToDepth", "x", "b", IntAttr("blocksize", 2))},
			want:  map[string]TensorType{"a": {tF, s(1, 2, 8, 8)}, "b": {tF, s(1, 32, 2, 2)}}},
		{name: "Where", inputs: []*onnxpb.ValueInfoProto{vi("c", tB, s(4)), vi("a", tI64, s(4)), vi("b", tI64, s(1))},
			nodes: []*onnxpb.NodeProto{nd("Where", "c,a,b", "y")}, want: map[string]TensorType{"y": {tI64, s(4)}}},
		{name: "Range", inputs: []*onnxpb.ValueInfoProto{vi("a", tI64, s()), vi("f", tF, s())},
			nodes: []*onnxpb.NodeProto{nd("Range", "a,a,a", "y"), nd("Range", "f,f,f", "z")},
			want:  map[string]TensorType{"y": {tI64, s(-1)}, "z": {tF, s(-1)}}},
		{name: "ConstantOfShape", inputs: []*onnxpb.ValueInfoProto{vi("d", tI64, s(3))}, inits: []*onnxpb.TensorProto{i64("sh", 2, 3)},
			nodes: []*onnxpb.NodeProto{nd("ConstantOfShape", "sh", "y", tensorAttr("value", i64("v", 1))), nd("ConstantOfShape", "d", "z")},
			want:  map[string]TensorType{"y": {tI64, s(2, 3)}, "z": {tF, s(-1, -1, -1)}}},
		{name: "NonZero ArgMax ArgMin", inputs: x(2, 5),
			nodes: []*onnxpb.NodeProto{nd("NonZero", "x", "nz"), nd("ArgMax", "x", "am", IntAttr("axis", 1), IntAttr("keepdims", 0)), nd("ArgMin", "x", "an")},
			want:  map[string]TensorType{"nz": {tI64, s(2, -1)}, "am": {tI64, s(2)}, "an": {tI64, s(1, 5)}}},
		{name: "TopK opset 11", opset: 11, inputs: x(2, 9), inits: []*onnxpb.TensorProto{i64("k", 3)},
			nodes: []*onnxpb.NodeProto{nd("TopK", "x,k", "v,i")}, want: map[string]TensorType{"v": {tF, s(2, 3)}, "i": {tI64, s(2, 3)}}},
		{name: "TopK opset 9", opset: 9, inputs: x(2, 9),
			nodes: []*onnxpb.NodeProto{nd("TopK", "x", "v,i", IntAttr("k", 4))}, want: map[string]TensorType{"v": {tF, s(2, 4)}, "i": {tI64, s(2, 4)}}},
		{name: "Conv", inputs: x(1, 3, 8, 8), inits: []*onnxpb.TensorProto{named("w", typed(tF, 16, 3, 3, 3))},
			nodes: []*onnxpb.NodeProto{
				nd("Conv", "x,w", "a", intsAttr("pads", 1, 1, 1, 1), intsAttr("strides", 2, 2)),
				nd("Conv", "x,w", "b", StringAttr("auto_pad", "SAME_UPPER"), intsAttr("strides", 3, 3)),
				nd("Conv", "x,w", "c", intsAttr("dilations", 2, 2)),
				nd("Conv", "x,w", "d", StringAttr("auto_pad", "VALID"))},
			want: map[string]TensorType{"a": {tF, s(1, 16, 4, 4)}, "b": {tF, s(1, 16, 3, 3)}, "c": {tF, s(1, 16, 4, 4)}, "d": {tF, s(1, 16, 6, 6)}}},
		// Reference sizes: torch.nn.ConvTranspose2d on an 8×8 input with the
		// same kernel, stride, padding, output_padding and groups
		// ((8−1)·2 − 2 + (3−1) + 1 + 1 = 16), and ONNX's SAME_UPPER (in·stride).
		{name: "ConvTranspose", inputs: x(1, 3, 8, 8),
			inits: []*onnxpb.TensorProto{named("w", typed(tF, 3, 4, 2, 2)), named("w3", typed(tF, 3, 4, 3, 3)), named("wg", typed(tF, 3, 2, 3, 3))},
			nodes: []*onnxpb.NodeProto{nd("ConvTranspose", "x,w", "y"),
				nd("ConvTranspose", "x,w3", "s", intsAttr("strides", 2, 2), intsAttr("pads", 1, 1, 1, 1), intsAttr("output_padding", 1, 1)),
				nd("ConvTranspose", "x,wg", "g", IntAttr("group", 3), intsAttr("strides", 2, 2), StringAttr("auto_pad", "SAME_UPPER")),
				nd("ConvTranspose", "x,w", "o", intsAttr("strides", 2, 2), intsAttr("output_shape", 17, 18)),
				nd("ConvTranspose", "x,w", "bad", intsAttr("strides", 2))},
			want: map[string]TensorType{"y": {tF, s(1, 4, 9, 9)}, "s": {tF, s(1, 4, 16, 16)}, "g": {tF, s(1, 6, 16, 16)},
				"o": {tF, s(1, 4, 17, 18)}, "bad": {tF, s(1, 4, -1, -1)}}},
		{name: "Pools", inputs: x(1, 8, 7, 7),
			nodes: []*onnxpb.NodeProto{
				nd("MaxPool", "x", "a,ai", intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2)),
				nd("MaxPool", "x", "b", intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2), IntAttr("ceil_mode", 1)),
				nd("AveragePool", "x", "c", intsAttr("kernel_shape", 3, 3), intsAttr("pads", 1, 1, 1, 1)),
				nd("LpPool", "x", "d", intsAttr("kernel_shape", 7, 7)),
				nd("GlobalAveragePool", "x", "e"), nd("GlobalMaxPool", "x", "f")},
			want: map[string]TensorType{"a": {tF, s(1, 8, 3, 3)}, "ai": {tI64, s(1, 8, 3, 3)}, "b": {tF, s(1, 8, -1, -1)},
				"c": {tF, s(1, 8, 7, 7)}, "d": {tF, s(1, 8, 1, 1)}, "e": {tF, s(1, 8, 1, 1)}, "f": {tF, s(1, 8, 1, 1)}}},
		{name: "MatMul Gemm", inputs: []*onnxpb.ValueInfoProto{vi("a", tF, s(2, 1, 3, 4)), vi("b", tF, s(5, 4, 6)), vi("v", tF, s(4)), vi("m", tF, s(2, 4)), vi("n", tF, s(3, 4))},
			nodes: []*onnxpb.NodeProto{nd("MatMul", "a,b", "ab"), nd("MatMul", "v,b", "vb"), nd("MatMul", "m,v", "mv"), nd("Gemm", "m,n", "g", IntAttr("transB", 1)), nd("MatMul", "m,n", "bad")},
			want:  map[string]TensorType{"ab": {tF, s(2, 5, 3, 6)}, "vb": {tF, s(5, 6)}, "mv": {tF, s(2)}, "g": {tF, s(2, 3)}, "bad": {tF, U}}},
		{name: "Einsum", inputs: x(2, 3), nodes: []*onnxpb.NodeProto{nd("Einsum", "x,x", "y", StringAttr("equation", "ij,ij->i"))},
			want: map[string]TensorType{"y": {tF, U}}},
		{name: "Normalizations", inputs: []*onnxpb.ValueInfoProto{vi("x", tF16, s(2, 3, 4)), vi("p", tF, s(3))},
			nodes: []*onnxpb.NodeProto{nd("BatchNormalization", "x,p,p,p,p", "bn"), nd("LayerNormalization", "x,p,p", "ln,mean,inv", IntAttr("axis", 2))},
			want:  map[string]TensorType{"bn": {tF16, s(2, 3, 4)}, "ln": {tF16, s(2, 3, 4)}, "mean": {tF, s(2, 3, 1)}, "inv": {tF, s(2, 3, 1)}}},
		{name: "Reduce", inputs: x(2, 3, 4), inits: []*onnxpb.TensorProto{i64("ax", 1)},
			nodes: []*onnxpb.NodeProto{nd("ReduceSum", "x,ax", "a", IntAttr("keepdims", 0)), nd("ReduceMean", "x", "b", intsAttr("axes", -1)), nd("ReduceMax", "x", "c", IntAttr("keepdims", 0))},
			want:  map[string]TensorType{"a": {tF, s(2, 4)}, "b": {tF, s(2, 3, 1)}, "c": {tF, s()}}},
		{name: "RNNs", inputs: x(5, 1, 4),
			nodes: []*onnxpb.NodeProto{nd("LSTM", "x,w,r", "y,h,c"), nd("GRU", "x,w,r", "gy,gh"), nd("RNN", "x,w,r", "ry")},
			want:  map[string]TensorType{"y": {tF, U}, "h": {tF, U}, "c": {tF, U}, "gy": {tF, U}, "gh": {tF, U}, "ry": {tF, U}}},
		{name: "Quantization", inputs: []*onnxpb.ValueInfoProto{vi("x", tF, s(1, 4)), vi("sc", tF, s()), vi("zp8", tI8, s()), vi("q", tU8, s(1, 4)), vi("w", tU8, s(4, 2))},
			nodes: []*onnxpb.NodeProto{
				nd("QuantizeLinear", "x,sc,zp8", "a"), nd("QuantizeLinear", "x,sc", "b"),
				nd("DequantizeLinear", "a,sc,zp8", "c"), nd("DynamicQuantizeLinear", "x", "d,ds,dz"),
				nd("MatMulInteger", "q,w", "e"), nd("QLinearMatMul", "q,sc,zp8,w,sc,zp8,sc,zp8", "f")},
			want: map[string]TensorType{"a": {tI8, s(1, 4)}, "b": {tU8, s(1, 4)}, "c": {tF, s(1, 4)}, "d": {tU8, s(1, 4)},
				"ds": {tF, s()}, "dz": {tU8, s()}, "e": {tI32, s(1, 2)}, "f": {tI8, s(1, 2)}}},
		{name: "QLinearConv ConvInteger", inputs: []*onnxpb.ValueInfoProto{vi("q", tU8, s(1, 3, 8, 8)), vi("w", tI8, s(4, 3, 3, 3)), vi("sc", tF, s()), vi("zp", tU8, s())},
			nodes: []*onnxpb.NodeProto{nd("QLinearConv", "q,sc,zp,w,sc,zp,sc,zp", "a"), nd("ConvInteger", "q,w", "b")},
			want:  map[string]TensorType{"a": {tU8, s(1, 4, 6, 6)}, "b": {tI32, s(1, 4, 6, 6)}}},
		{name: "OneHot Random EyeLike", inputs: []*onnxpb.ValueInfoProto{vi("i", tI64, s(3)), vi("d", tI64, s()), vi("v", tF, s(2)), vi("x", tF16, s(2, 2))},
			nodes: []*onnxpb.NodeProto{nd("OneHot", "i,d,v", "oh"), nd("RandomNormal", "", "rn", intsAttr("shape", 2, 3)),
				nd("RandomUniform", "", "ru", IntAttr("dtype", int64(tF64)), intsAttr("shape", 4)),
				nd("RandomNormalLike", "x", "rl"), nd("EyeLike", "x", "ey", IntAttr("dtype", int64(tI32)))},
			want: map[string]TensorType{"oh": {tF, s(3, -1)}, "rn": {tF, s(2, 3)}, "ru": {tF64, s(4)}, "rl": {tF16, s(2, 2)}, "ey": {tI32, s(2, 2)}}},
		{name: "Dropout opset 12", opset: 12, inputs: x(4), nodes: []*onnxpb.NodeProto{nd("Dropout", "x", "y,m")},
			want: map[string]TensorType{"y": {tF, s(4)}, "m": {tB, s(4)}}},
		{name: "Dropout opset 9", opset: 9, inputs: x(4), nodes: []*onnxpb.NodeProto{nd("Dropout", "x", "y,m")},
			want: map[string]TensorType{"y": {tF, s(4)}, "m": {tF, s(4)}}},
		{name: "NonMaxSuppression Unique", inputs: []*onnxpb.ValueInfoProto{vi("b", tF, s(1, 6, 4)), vi("sc", tF, s(1, 1, 6))},
			nodes: []*onnxpb.NodeProto{nd("NonMaxSuppression", "b,sc", "nms"), nd("Unique", "b", "u,ui,uinv,uc")},
			want:  map[string]TensorType{"nms": {tI64, s(-1, 3)}, "u": {tF, s(-1)}, "ui": {tI64, s(-1)}, "uc": {tI64, s(-1)}}},
		{name: "Upsample opset 9", opset: 9, inputs: x(1, 3, 4, 4), inits: []*onnxpb.TensorProto{f32("sc", 1, 1, 2, 2)},
			nodes: []*onnxpb.NodeProto{nd("Upsample", "x,sc", "y", StringAttr("mode", "nearest"))}, want: map[string]TensorType{"y": {tF, s(1, 3, 8, 8)}}},
		{name: "Resize opset 11", opset: 11, inputs: x(1, 3, 4, 4), inits: []*onnxpb.TensorProto{f32("roi"), f32("sc", 1, 1, 1.5, 0.5), i64("sz", 1, 3, 5, 7)},
			nodes: []*onnxpb.NodeProto{nd("Resize", "x,roi,sc", "y"), nd("Resize", "x,roi,,sz", "z"), nd("Resize", "x,roi,sc2", "w")},
			want:  map[string]TensorType{"y": {tF, s(1, 3, 6, 2)}, "z": {tF, s(1, 3, 5, 7)}, "w": {tF, s(-1, -1, -1, -1)}}},
		{name: "Constant seeds", nodes: []*onnxpb.NodeProto{
			nd("Constant", "", "a", floatAttr("value_float", 1)),
			nd("Constant", "", "b", intsAttr("value_ints", 1, 2, 3)),
			nd("Constant", "", "c", tensorAttr("value", typed(tI32, 2, 2))),
			nd("Constant", "", "d", IntAttr("value_int", 4)),
			nd("Constant", "", "e", floatsAttr("value_floats", 1, 2)),
			nd("Reshape", "c,b", "f")},
			want: map[string]TensorType{"a": {tF, s()}, "b": {tI64, s(3)}, "c": {tI32, s(2, 2)}, "d": {tI64, s()}, "e": {tF, s(2)}, "f": {tI32, s(1, 2, 3)}}},
		{name: "com.microsoft", inputs: x(2, 3),
			nodes: []*onnxpb.NodeProto{msNode("Gelu", "x", "g"), msNode("FastGelu", "x", "fg"), msNode("SkipLayerNormalization", "x,x", "sl,m"), msNode("Attention", "x", "at")},
			want:  map[string]TensorType{"g": {tF, s(2, 3)}, "fg": {tF, s(2, 3)}, "sl": {tF, s(2, 3)}, "m": {}, "at": {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			types := InferTypes(tc.model())
			checkTypes(t, types, tc.want)
			if c := types.Conflicts(); len(c) > 0 {
				t.Errorf("conflicts: %v", c)
			}
		})
	}
}

func TestInferTypesIf(t *testing.T) {
	then := sub("then", nil, []*onnxpb.ValueInfoProto{vi("t", tF, nil), vi("ti", tI64, nil)},
		nd("Relu", "x", "t"), nd("Shape", "x", "ti"))
	els := sub("else", nil, []*onnxpb.ValueInfoProto{vi("e", tF, nil), vi("ei", 0, nil)},
		nd("Transpose", "x", "e"), nd("Shape", "x", "ei"))
	c := typesCase{inputs: []*onnxpb.ValueInfoProto{vi("x", tF, s(2, 3)), vi("c", tB, s())},
		nodes: []*onnxpb.NodeProto{nd("If", "c", "y,yi", graphAttr("then_branch", then), graphAttr("else_branch", els))}}
	types := InferTypes(c.model())
	// y: then gives [2 3], else [3 2]: only what both promise.
	checkTypes(t, types, map[string]TensorType{"y": {tF, s(-1, -1)}, "yi": {tI64, s(2)}})
	if got, ok := types.InSubgraph("t"); !ok || got.ElemType != tF {
		t.Errorf("sub-graph tensor t: %s %v", got, ok)
	}
	if len(types.Conflicts()) != 0 || len(types.Unknown()) != 0 {
		t.Errorf("conflicts %v, unknown %v", types.Conflicts(), types.Unknown())
	}

	// Branches that disagree: the then_branch wins, the disagreement is recorded.
	els2 := sub("else", nil, []*onnxpb.ValueInfoProto{vi("e", 0, nil), vi("ei", 0, nil)},
		nd("Cast", "x", "e", IntAttr("to", 7)), nd("Shape", "x", "ei"))
	c.nodes = []*onnxpb.NodeProto{nd("If", "c", "y,yi", graphAttr("then_branch", then), graphAttr("else_branch", els2))}
	types = InferTypes(c.model())
	checkTypes(t, types, map[string]TensorType{"y": {tF, s(2, 3)}})
	if len(types.Conflicts()) != 1 {
		t.Errorf("conflicts: %v", types.Conflicts())
	}
}

func TestInferTypesLoopScan(t *testing.T) {
	// Loop: one loop-carried FLOAT [2 3] (shape kept by the body), one scan
	// output INT64 [4] per iteration; the body's inputs are not declared.
	body := sub("body",
		[]*onnxpb.ValueInfoProto{{Name: proto.String("i")}, {Name: proto.String("cin")}, {Name: proto.String("v")}},
		[]*onnxpb.ValueInfoProto{{Name: proto.String("cout")}, {Name: proto.String("vout")}, {Name: proto.String("scan")}},
		nd("Identity", "cin", "cout"), nd("Add", "v,x", "vout"), nd("Unsqueeze", "i,ax", "i1"), nd("Concat", "i1,i1,i1,i1", "scan", IntAttr("axis", 0)))
	c := typesCase{inputs: []*onnxpb.ValueInfoProto{vi("x", tF, s(2, 3)), vi("m", tI64, s()), vi("cond", tB, s())},
		inits: []*onnxpb.TensorProto{i64("ax", 0)},
		nodes: []*onnxpb.NodeProto{nd("Loop", "m,cond,x", "final,scans", graphAttr("body", body))}}
	types := InferTypes(c.model())
	checkTypes(t, types, map[string]TensorType{"final": {tF, U}, "scans": {tI64, s(-1, 4)}})
	if got, ok := types.InSubgraph("i"); !ok || got.ElemType != tI64 {
		t.Errorf("loop iteration number: %s %v", got, ok)
	}

	// Scan: one state, one scan input; body declares its inputs.
	sbody := sub("sbody", []*onnxpb.ValueInfoProto{vi("st", tF, s(3)), vi("el", tF, s(3))},
		[]*onnxpb.ValueInfoProto{vi("st2", 0, nil), vi("out", 0, nil)},
		nd("Add", "st,el", "st2"), nd("Cast", "st2", "out", IntAttr("to", int64(tF16))))
	c = typesCase{opset: 11, inputs: []*onnxpb.ValueInfoProto{vi("s0", tF, s(3)), vi("seq", tF, s(5, 3))},
		nodes: []*onnxpb.NodeProto{nd("Scan", "s0,seq", "sf,so", IntAttr("num_scan_inputs", 1), graphAttr("body", sbody))}}
	checkTypes(t, InferTypes(c.model()), map[string]TensorType{"sf": {tF, s(3)}, "so": {tF16, U}})
}

func TestInferTypesDeclaredWins(t *testing.T) {
	p := synth(13, []*onnxpb.ValueInfoProto{vi("x", tF, s(2))}, []*onnxpb.ValueInfoProto{vi("z", tF16, nil)},
		[]*onnxpb.NodeProto{nd("Cast", "x", "y", IntAttr("to", 7)), nd("Relu", "x", "z")})
	p.Graph.ValueInfo = []*onnxpb.ValueInfoProto{vi("y", tF, s(-1))}
	types := InferTypes(p)
	checkTypes(t, types, map[string]TensorType{"y": {tF, s(2)}, "z": {tF16, s(2)}})
	c := types.Conflicts()
	if len(c) != 2 || !strings.Contains(c[0], `"y": declared FLOAT, inferred INT64`) {
		t.Errorf("conflicts: %q", c)
	}
	if !types.IsFloat32("y") || types.IsFloat32("z") || types.IsFloat32("nothing") {
		t.Error("IsFloat32")
	}
}

func TestInferTypesUnknownAndCycle(t *testing.T) {
	custom := nd("MyOp", "x", "u")
	custom.Domain = proto.String("com.example")
	declared := nd("MyOp", "x", "d")
	declared.Domain = proto.String("com.example")
	p := synth(13, []*onnxpb.ValueInfoProto{vi("x", tF, s(2))}, nil, []*onnxpb.NodeProto{
		nd("Relu", "b", "a"), // a and b feed each other
		custom,
		nd("Relu", "a", "b"),
		nd("Relu", "u", "v"),
		declared,
		nd("SequenceConstruct", "x", "seq"),
		nd("Relu", "x", "ok"),
	})
	p.Graph.ValueInfo = []*onnxpb.ValueInfoProto{vi("d", tF, nil)}
	types := InferTypes(p)
	if got, want := types.Unknown(), []string{"a", "u", "b", "v", "seq"}; !slices.Equal(got, want) {
		t.Errorf("unknown %v, want %v", got, want)
	}
	checkTypes(t, types, map[string]TensorType{"ok": {tF, s(2)}, "d": {tF, U}, "x": {tF, s(2)}})
}

func TestInferTypesShapeArithFixtures(t *testing.T) {
	for _, name := range []string{"shape_arith_op11.onnx", "shape_arith_op13.onnx"} {
		t.Run(name, func(t *testing.T) {
			p, err := LoadFile(fixture(name))
			if err != nil {
				t.Fatal(err)
			}
			types := InferTypes(p)
			checkTypes(t, types, map[string]TensorType{
				"relu1": {tF, s(1, 8, 8, 8)}, "s": {tI64, s(4)}, "flat_shape": {tI64, s(3)},
				"flat": {tF, s(1, 8, 64)}, "ones": {tF, s(1, 8)}, "scaled": {tF, s(1, 8, 64)},
				"half_h": {tI64, s()}, "steps": {tI64, s(-1)}, "cond": {tB, s()}, "if_out": {tF, s(1, 8, 64)},
				"h16": {tF16, s(1, 8, 64)}, "m32": {tF, s(1, 8, 64)}, "gelu": {tF, s(1, 8, 64)},
				"back": {tF, s(1, 8, 8, 8)}, "conv2": {tF, s(1, 4, 8, 8)}, "s2w": {tI64, s(4)},
				"y": {tF, s(1, 4, 8, 8)}, "nonzero": {tI64, s(4, -1)},
				"topk_values": {tF, s(1, 5)}, "topk_indices": {tI64, s(1, 5)},
			})
			if len(types.Unknown()) != 0 || len(types.Conflicts()) != 0 {
				t.Errorf("unknown %v, conflicts %v", types.Unknown(), types.Conflicts())
			}
		})
	}
}
