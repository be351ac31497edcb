package engine

import (
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// ONNX element type of float tensors (TensorProto.FLOAT).
const onnxFloat = 1

// marshalModel serializes p deterministically.
func marshalModel(p *onnxpb.ModelProto) ([]byte, error) { return model.Marshal(p) }

// graphIO lists p's graph inputs that must be fed (graph inputs that are not
// initializers) and its graph outputs.
func graphIO(p *onnxpb.ModelProto) (inputs, outputs []pipeline.TensorInfo) {
	conv := func(v model.ValueInfo) pipeline.TensorInfo {
		return pipeline.TensorInfo{Name: v.Name, DType: pipeline.DType(v.ElemType), Shape: v.Shape}
	}
	for _, v := range model.Inputs(p) {
		inputs = append(inputs, conv(v))
	}
	for _, v := range model.Outputs(p) {
		outputs = append(outputs, conv(v))
	}
	return inputs, outputs
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
