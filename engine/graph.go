package engine

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// ONNX element type of float tensors (TensorProto.FLOAT).
const onnxFloat = 1

// marshalModel serializes p deterministically.
func marshalModel(p *onnxpb.ModelProto) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(p)
}

// appendToGraph returns base (a serialized ModelProto) followed by a
// serialized ModelProto holding only extra graph nodes, outputs and
// initializers. Protobuf merges concatenated messages and appends repeated
// fields, so the result is base's model with extra's items added at the end
// of its graph, without copying or mutating the (possibly large) original.
func appendToGraph(base []byte, extra *onnxpb.GraphProto) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&onnxpb.ModelProto{Graph: extra})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(base)+len(b))
	return append(append(out, base...), b...), nil
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

// tensorCatalog knows every tensor name of a graph and the element type
// declared for it, if any.
type tensorCatalog struct {
	kind     map[string]tensorKind
	elemType map[string]int32
}

type tensorKind int

const (
	kindActivation  tensorKind = iota + 1 // a node output
	kindInput                             // a graph input that is fed
	kindInitializer                       // a constant
)

func newCatalog(p *onnxpb.ModelProto) *tensorCatalog {
	g := p.GetGraph()
	c := &tensorCatalog{kind: map[string]tensorKind{}, elemType: map[string]int32{}}
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

// uniqueName returns prefix, or prefix with a numeric suffix, unused in c.
func (c *tensorCatalog) uniqueName(prefix string) string {
	name := prefix
	for i := 1; c.kind[name] != 0; i++ {
		name = fmt.Sprintf("%s_%d", prefix, i)
	}
	c.kind[name] = kindActivation
	return name
}
