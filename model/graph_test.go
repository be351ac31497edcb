package model

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// Builders for synthetic models.

func fvi(name string, dims ...int64) *onnxpb.ValueInfoProto {
	return tensorValueInfo(&onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(TypeFloat), Dims: dims})
}

func synth(opset int64, in, out []*onnxpb.ValueInfoProto, nodes []*onnxpb.NodeProto, inits ...*onnxpb.TensorProto) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(7),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("g"),
			Node:        nodes,
			Input:       in,
			Output:      out,
			Initializer: inits,
		},
	}
}

func floatsAttr(name string, v ...float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOATS.Enum(), Floats: v}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func opTypes(nodes []*onnxpb.NodeProto) []string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.GetOpType())
	}
	return s
}

func nodeNames(nodes []*onnxpb.NodeProto) []string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.GetName())
	}
	return s
}

func TestInputsOutputs(t *testing.T) {
	tests := []struct {
		model       string
		inputs      []ValueInfo
		outputs     []ValueInfo
		inputShape  string
		outputShape string
	}{
		{"convnet_op13.onnx",
			[]ValueInfo{{Name: "input", ElemType: TypeFloat, Shape: []int64{1, 3, 16, 16}}},
			[]ValueInfo{{Name: "logits", ElemType: TypeFloat, Shape: []int64{1, 10}}},
			"[1 3 16 16]", "[1 10]"},
		{"convnet_dynamic.onnx",
			[]ValueInfo{{Name: "input", ElemType: TypeFloat, Shape: []int64{-1, 3, 16, 16}, DimNames: []string{"N", "", "", ""}}},
			[]ValueInfo{{Name: "logits", ElemType: TypeFloat, Shape: []int64{-1, 10}, DimNames: []string{"N", ""}}},
			"[N 3 16 16]", "[N 10]"},
		{"two_inputs.onnx",
			[]ValueInfo{{Name: "a", ElemType: TypeFloat, Shape: []int64{1, 4}}, {Name: "b", ElemType: TypeFloat, Shape: []int64{1, 4}}},
			[]ValueInfo{{Name: "y", ElemType: TypeFloat, Shape: []int64{1, 3}}},
			"[1 4]", "[1 3]"},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			p := mustLoad(t, tc.model)
			if got := Inputs(p); !reflect.DeepEqual(got, tc.inputs) {
				t.Errorf("Inputs = %+v, want %+v", got, tc.inputs)
			}
			if got := Outputs(p); !reflect.DeepEqual(got, tc.outputs) {
				t.Errorf("Outputs = %+v, want %+v", got, tc.outputs)
			}
			if got := Inputs(p)[0].ShapeString(); got != tc.inputShape {
				t.Errorf("input shape %s, want %s", got, tc.inputShape)
			}
			if got := Outputs(p)[0].ShapeString(); got != tc.outputShape {
				t.Errorf("output shape %s, want %s", got, tc.outputShape)
			}
		})
	}
	// Initializers listed as graph inputs (IR < 4 style) are not user inputs.
	p := proto.Clone(mustLoad(t, "two_inputs.onnx")).(*onnxpb.ModelProto)
	p.Graph.Input = append(p.Graph.Input, tensorValueInfo(p.Graph.Initializer[0]))
	if got := len(Inputs(p)); got != 2 {
		t.Errorf("%d inputs with an initializer among graph inputs, want 2", got)
	}
}

func TestGraphIndex(t *testing.T) {
	p := mustLoad(t, "convnet_op13.onnx")
	x := NewGraph(p)
	bn := x.Producer("bn_0_out")
	if bn == nil || bn.GetOpType() != "BatchNormalization" {
		t.Fatalf("Producer(bn_0_out) = %v", bn)
	}
	if got := nodeNames(x.Consumers("conv_0_out")); !reflect.DeepEqual(got, []string{"bn_0"}) {
		t.Errorf("Consumers(conv_0_out) = %v", got)
	}
	if x.Producer("input") != nil || x.Producer("conv_0.weight") != nil {
		t.Error("graph inputs and initializers have no producer")
	}
	if w := x.Initializer("conv_0.weight"); w == nil || !reflect.DeepEqual(w.GetDims(), []int64{8, 3, 3, 3}) {
		t.Errorf("Initializer(conv_0.weight) = %v", w)
	}
	if x.Initializer("nope") != nil || x.Consumers("nope") != nil {
		t.Error("unknown names must give nil")
	}
	if !x.IsGraphOutput("logits") || x.IsGraphOutput("input") {
		t.Error("IsGraphOutput")
	}
}

func TestTopoOrder(t *testing.T) {
	// y = Relu(Add(Neg(a), Neg(a))), nodes listed backwards.
	nodes := []*onnxpb.NodeProto{
		NewNode("Relu", "relu", []string{"s"}, []string{"y"}),
		NewNode("Add", "add", []string{"n1", "n2"}, []string{"s"}),
		NewNode("Neg", "neg2", []string{"a"}, []string{"n2"}),
		NewNode("Neg", "neg1", []string{"a"}, []string{"n1"}),
	}
	p := synth(13, []*onnxpb.ValueInfoProto{fvi("a", 1)}, []*onnxpb.ValueInfoProto{fvi("y", 1)}, nodes)
	order, err := NewGraph(p).TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	// Ready nodes come in graph order: neg2 before neg1.
	if got, want := nodeNames(order), []string{"neg2", "neg1", "add", "relu"}; !reflect.DeepEqual(got, want) {
		t.Errorf("TopoOrder = %v, want %v", got, want)
	}
	// A sorted graph keeps its order.
	p13 := mustLoad(t, "convnet_op13.onnx")
	order, err = NewGraph(p13).TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(nodeNames(order), nodeNames(p13.Graph.Node)) {
		t.Errorf("sorted graph reordered: %v", nodeNames(order))
	}
}

func TestTopoOrderCycle(t *testing.T) {
	tests := []struct {
		name  string
		nodes []*onnxpb.NodeProto
		node  string
	}{
		{"two nodes", []*onnxpb.NodeProto{
			NewNode("Relu", "first", []string{"a"}, []string{"b"}),
			NewNode("Add", "loop_a", []string{"x", "c"}, []string{"a"}),
			NewNode("Neg", "loop_c", []string{"a"}, []string{"c"}),
		}, `node "first" (Relu)`},
		{"self loop", []*onnxpb.NodeProto{
			NewNode("Add", "self", []string{"x", "s"}, []string{"s"}),
		}, `node "self" (Add)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := synth(13, []*onnxpb.ValueInfoProto{fvi("x", 1)}, nil, tc.nodes)
			_, err := NewGraph(p).TopoOrder()
			if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), tc.node) {
				t.Errorf("TopoOrder error %v, want ErrCycle naming %s", err, tc.node)
			}
		})
	}
}

func TestTensorHelpers(t *testing.T) {
	f := NewTensorFloat32("f", []int64{2, 2}, []float32{1, -2, 3.5, float32(math.Inf(1))})
	got, err := TensorFloat32(f)
	if err != nil || !reflect.DeepEqual(got, []float32{1, -2, 3.5, float32(math.Inf(1))}) {
		t.Errorf("TensorFloat32(raw) = %v, %v", got, err)
	}
	// Little endian: 1.0f is 00 00 80 3f.
	if !reflect.DeepEqual(f.RawData[:4], []byte{0, 0, 0x80, 0x3f}) {
		t.Errorf("raw bytes of 1.0 = % x", f.RawData[:4])
	}
	i := NewTensorInt64("i", []int64{3}, []int64{-1, 0, 1 << 40})
	gotI, err := TensorInt64(i)
	if err != nil || !reflect.DeepEqual(gotI, []int64{-1, 0, 1 << 40}) {
		t.Errorf("TensorInt64(raw) = %v, %v", gotI, err)
	}
	typed := &onnxpb.TensorProto{Name: proto.String("t"), DataType: proto.Int32(TypeFloat), Dims: []int64{2}, FloatData: []float32{4, 5}}
	if got, err := TensorFloat32(typed); err != nil || !reflect.DeepEqual(got, []float32{4, 5}) {
		t.Errorf("TensorFloat32(float_data) = %v, %v", got, err)
	}
	typedI := &onnxpb.TensorProto{Name: proto.String("t"), DataType: proto.Int32(TypeInt64), Dims: []int64{1}, Int64Data: []int64{7}}
	if got, err := TensorInt64(typedI); err != nil || !reflect.DeepEqual(got, []int64{7}) {
		t.Errorf("TensorInt64(int64_data) = %v, %v", got, err)
	}
	scalar := NewTensorFloat32("s", nil, []float32{2})
	if got, err := TensorFloat32(scalar); err != nil || len(got) != 1 {
		t.Errorf("scalar: %v, %v", got, err)
	}

	bad := []struct {
		name    string
		t       *onnxpb.TensorProto
		mention string
	}{
		{"wrong type", i, "INT64"},
		{"short raw", &onnxpb.TensorProto{Name: proto.String("r"), DataType: proto.Int32(TypeFloat), Dims: []int64{2}, RawData: []byte{1, 2, 3}}, "3 bytes"},
		{"short float_data", &onnxpb.TensorProto{Name: proto.String("fd"), DataType: proto.Int32(TypeFloat), Dims: []int64{3}, FloatData: []float32{1}}, "1 values"},
		{"negative dim", &onnxpb.TensorProto{Name: proto.String("n"), DataType: proto.Int32(TypeFloat), Dims: []int64{-2}}, "negative"},
		{"overflow", &onnxpb.TensorProto{Name: proto.String("o"), DataType: proto.Int32(TypeFloat), Dims: []int64{1 << 40, 1 << 40}}, "overflow"},
		{"external", &onnxpb.TensorProto{Name: proto.String("e"), DataType: proto.Int32(TypeFloat), DataLocation: onnxpb.TensorProto_EXTERNAL.Enum()}, "external"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TensorFloat32(tc.t)
			if !errors.Is(err, ErrTensor) || !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), tc.t.GetName()) {
				t.Errorf("error %v, want ErrTensor naming %q and %q", err, tc.t.GetName(), tc.mention)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("NewTensorFloat32 with a wrong count did not panic")
		}
	}()
	NewTensorFloat32("x", []int64{3}, []float32{1})
}

func TestQuantizableNodes(t *testing.T) {
	tests := []struct {
		model string
		want  []string
	}{
		// relu_0 follows the BatchNormalization, not conv_0.
		{"convnet_op13.onnx", []string{"conv_0", "conv_1", "relu_1", "conv_2", "relu_2", "gemm_0"}},
		// clip_0 follows relu_1, which follows conv_1.
		{"convnet_op11.onnx", []string{"conv_0", "conv_1", "relu_1", "conv_2", "relu_2", "gemm_0"}},
		{"two_inputs.onnx", []string{"matmul_0"}},
		{"cascade_stage1.onnx", []string{"conv_0", "relu_0"}},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			if got := nodeNames(QuantizableNodes(mustLoad(t, tc.model))); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("QuantizableNodes = %v, want %v", got, tc.want)
			}
		})
	}
}

// A node with a subgraph depends on the outer tensors its subgraph uses.
func TestTopoOrderSubgraph(t *testing.T) {
	branch := &onnxpb.GraphProto{
		Name:   proto.String("then"),
		Node:   []*onnxpb.NodeProto{NewNode("Identity", "inner", []string{"outer"}, []string{"r"})},
		Output: []*onnxpb.ValueInfoProto{fvi("r", 1)},
	}
	ifNode := NewNode("If", "if", []string{"cond"}, []string{"y"},
		&onnxpb.AttributeProto{Name: proto.String("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: branch},
		&onnxpb.AttributeProto{Name: proto.String("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: branch})
	nodes := []*onnxpb.NodeProto{ifNode, NewNode("Neg", "neg", []string{"x"}, []string{"outer"})}
	p := synth(13, []*onnxpb.ValueInfoProto{fvi("x", 1), fvi("cond")}, []*onnxpb.ValueInfoProto{fvi("y", 1)}, nodes)
	x := NewGraph(p)
	if got := nodeNames(x.Consumers("outer")); !reflect.DeepEqual(got, []string{"if"}) {
		t.Errorf("Consumers(outer) = %v", got)
	}
	order, err := x.TopoOrder()
	if err != nil || !reflect.DeepEqual(nodeNames(order), []string{"neg", "if"}) {
		t.Errorf("TopoOrder = %v, %v", nodeNames(order), err)
	}
}
