package model

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// The graph-edit API every package shares (the engine's statistics
// graphs, the quantizer's QDQ graphs, the savers): new nodes, attributes
// and initializers, shallow copies, and inserting nodes after the
// tensors they read.

// ShallowCopy returns a new message whose fields share m's values.
func ShallowCopy[M proto.Message](m M) M {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	dst.SetUnknown(src.GetUnknown())
	return dst.Interface().(M)
}

// Augment returns a copy of p with extra nodes, outputs and initializers.
// The nodes of after[t] are inserted, in order, right after the node that
// produces tensor t (before every node when t is a graph input or
// initializer), so that ONNX Runtime, which runs ready nodes in graph
// order, reduces each activation as soon as it is computed, while it is
// still in cache, and can reuse its memory. p is not modified; the copy
// shares p's nodes, initializers and other sub-messages.
func Augment(p *onnxpb.ModelProto, after map[string][]*onnxpb.NodeProto, outputs []*onnxpb.ValueInfoProto, inits []*onnxpb.TensorProto) *onnxpb.ModelProto {
	g := p.GetGraph()
	produced := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			produced[o] = true
		}
	}
	nodes := make([]*onnxpb.NodeProto, 0, len(g.GetNode())+2*len(after))
	for _, t := range slices.Sorted(maps.Keys(after)) {
		if !produced[t] {
			nodes = append(nodes, after[t]...)
		}
	}
	for _, n := range g.GetNode() {
		nodes = append(nodes, n)
		for _, o := range n.GetOutput() {
			nodes = append(nodes, after[o]...)
		}
	}
	ng := ShallowCopy(g)
	ng.Node = nodes
	ng.Output = append(slices.Clip(g.GetOutput()), outputs...)
	ng.Initializer = append(slices.Clip(g.GetInitializer()), inits...)
	np := ShallowCopy(p)
	np.Graph = ng
	return np
}

// OpsetVersion is p's version of the default ONNX operator set (0 when
// it imports none).
func OpsetVersion(p *onnxpb.ModelProto) int64 {
	for _, o := range p.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// TensorOutput declares tensor name as a graph output of element type et
// (float when 0) and unknown shape.
func TensorOutput(name string, et int32) *onnxpb.ValueInfoProto {
	if et == 0 {
		et = int32(onnxpb.TensorProto_FLOAT)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(et)},
		}},
	}
}

// IntsAttr is an INTS attribute.
func IntsAttr(name string, v []int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// Int64Initializer is a 1-D int64 initializer.
func Int64Initializer(name string, v []int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)),
		Dims: []int64{int64(len(v))}, Int64Data: v,
	}
}
