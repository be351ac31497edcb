package engine

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// ONNX element type of float tensors (TensorProto.FLOAT).
const onnxFloat = 1

// marshalModel serializes p deterministically.
func marshalModel(p *onnxpb.ModelProto) ([]byte, error) { return model.Marshal(p) }

// augment returns a copy of p with extra nodes, outputs and initializers.
// The nodes of after[t] are inserted, in order, right after the node that
// produces tensor t (before every node when t is a graph input or
// initializer), so that ONNX Runtime, which runs ready nodes in graph order,
// reduces each activation as soon as it is computed, while it is still in
// cache, and can reuse its memory. p is not modified; the copy shares p's
// nodes, initializers and other sub-messages.
func augment(p *onnxpb.ModelProto, after map[string][]*onnxpb.NodeProto, outputs []*onnxpb.ValueInfoProto, inits []*onnxpb.TensorProto) *onnxpb.ModelProto {
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
	ng := shallowCopy(g)
	ng.Node = nodes
	ng.Output = append(slices.Clip(g.GetOutput()), outputs...)
	ng.Initializer = append(slices.Clip(g.GetInitializer()), inits...)
	np := shallowCopy(p)
	np.Graph = ng
	return np
}

// shallowCopy returns a new message whose fields share m's values.
func shallowCopy[T proto.Message](m T) T {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	dst.SetUnknown(src.GetUnknown())
	return dst.Interface().(T)
}

// valueInfoShape converts an ONNX tensor type to a shape with -1 for dynamic
// dimensions; nil means the rank is unknown.
func valueInfoShape(t *onnxpb.TypeProto_Tensor) []int64 {
	sp := t.GetShape()
	if sp == nil {
		return nil
	}
	shape := make([]int64, len(sp.GetDim()))
	for i, d := range sp.GetDim() {
		if v, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && v.DimValue >= 0 {
			shape[i] = v.DimValue
		} else {
			shape[i] = -1
		}
	}
	return shape
}

// graphIO lists p's graph inputs that must be fed (graph inputs that are not
// initializers) and its graph outputs.
func graphIO(p *onnxpb.ModelProto) (inputs, outputs []pipeline.TensorInfo) {
	g := p.GetGraph()
	inits := make(map[string]bool, len(g.GetInitializer()))
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	conv := func(v *onnxpb.ValueInfoProto) pipeline.TensorInfo {
		tt := v.GetType().GetTensorType()
		return pipeline.TensorInfo{Name: v.GetName(), DType: pipeline.DType(tt.GetElemType()), Shape: valueInfoShape(tt)}
	}
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] {
			inputs = append(inputs, conv(v))
		}
	}
	for _, v := range g.GetOutput() {
		outputs = append(outputs, conv(v))
	}
	return inputs, outputs
}

// opsetVersion is p's version of the default ONNX operator set.
func opsetVersion(p *onnxpb.ModelProto) int64 {
	for _, o := range p.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// tensorCatalog knows every tensor name of a graph and its element type:
// as declared (inputs, initializers, value_info, outputs), else as
// model.InferTypes infers it; 0 when neither knows.
type tensorCatalog struct {
	kind     map[string]tensorKind
	elemType map[string]int32
	producer map[string]*onnxpb.NodeProto
}

type tensorKind int

const (
	kindActivation  tensorKind = iota + 1 // a node output
	kindInput                             // a graph input that is fed
	kindInitializer                       // a constant
)

func newCatalog(p *onnxpb.ModelProto) *tensorCatalog {
	g := p.GetGraph()
	c := &tensorCatalog{kind: map[string]tensorKind{}, elemType: map[string]int32{}, producer: map[string]*onnxpb.NodeProto{}}
	for _, t := range g.GetInitializer() {
		c.kind[t.GetName()] = kindInitializer
		c.elemType[t.GetName()] = t.GetDataType()
	}
	for _, v := range g.GetInput() {
		if c.kind[v.GetName()] == 0 {
			c.kind[v.GetName()] = kindInput
		}
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			if o != "" {
				c.kind[o] = kindActivation
				c.producer[o] = n
			}
		}
	}
	for _, vs := range [][]*onnxpb.ValueInfoProto{g.GetInput(), g.GetValueInfo(), g.GetOutput()} {
		for _, v := range vs {
			if et := v.GetType().GetTensorType().GetElemType(); et != 0 {
				c.elemType[v.GetName()] = et
			}
		}
	}
	types := model.InferTypes(p)
	for name := range c.kind {
		if c.elemType[name] != 0 {
			continue
		}
		if tt, ok := types.Of(name); ok {
			c.elemType[name] = tt.ElemType
		}
	}
	return c
}

// floatOutput declares tensor name as a graph output of element type et
// (float when unknown) and unknown shape.
func floatOutput(name string, et int32) *onnxpb.ValueInfoProto {
	if et == 0 {
		et = onnxFloat
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(et)},
		}},
	}
}

func intsAttr(name string, v []int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{
		Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v,
	}
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{
		Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v),
	}
}

func int64Initializer(name string, v []int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(pipeline.Int64)),
		Dims: []int64{int64(len(v))}, Int64Data: v,
	}
}

func node(op, name string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{
		OpType: proto.String(op), Name: proto.String(name),
		Input: inputs, Output: outputs, Attribute: attrs,
	}
}
