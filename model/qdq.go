package model

import (
	"errors"
	"fmt"
	"slices"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"google.golang.org/protobuf/proto"
)

// The QDQ writer: graph edits that turn a float model into a QDQ model
// (QuantizeLinear/DequantizeLinear pairs) that ONNX Runtime fuses into
// integer kernels. The algorithms decide what to quantize and with which
// parameters; these functions only edit the graph, deterministically: the
// names of new tensors and nodes derive from the tensor they quantize.

// QuantParams are the quantization parameters of one tensor: one scale and
// zero point per tensor, or one per channel along Axis.
type QuantParams struct {
	Scale     []float32
	ZeroPoint []int32
	// Type is UINT8 or INT8 for activations and weights, INT32 for biases.
	Type onnxpb.TensorProto_DataType
	// Axis is the channel axis when len(Scale) > 1.
	Axis int
}

func (q QuantParams) validate(what string) error {
	if len(q.Scale) == 0 || len(q.Scale) != len(q.ZeroPoint) {
		return fmt.Errorf("%s: %d scales and %d zero points", what, len(q.Scale), len(q.ZeroPoint))
	}
	for i, s := range q.Scale {
		if !(s > 0) || s != s {
			return fmt.Errorf("%s: scale[%d] = %g, want a positive finite number", what, i, s)
		}
	}
	switch q.Type {
	case onnxpb.TensorProto_UINT8, onnxpb.TensorProto_INT8, onnxpb.TensorProto_INT32:
	default:
		return fmt.Errorf("%s: quantized type %s not supported", what, q.Type)
	}
	return nil
}

// Suffixes of the names the QDQ writer creates.
const (
	suffixQuantized   = "_quantized"
	suffixDequantized = "_dequantized"
	suffixScale       = "_scale"
	suffixZeroPoint   = "_zero_point"
)

// InsertQDQ quantizes the activation tensor: a QuantizeLinear and a
// DequantizeLinear follow it, and every node that consumed tensor consumes
// the dequantized copy instead. A graph output keeps its float value.
func InsertQDQ(p *onnxpb.ModelProto, tensor string, q QuantParams) error {
	g := p.GetGraph()
	if err := q.validate(fmt.Sprintf("tensor %q", tensor)); err != nil {
		return err
	}
	if q.Type == onnxpb.TensorProto_INT32 {
		return fmt.Errorf("tensor %q: activations quantize to 8 bits, not int32", tensor)
	}
	if !tensorExists(g, tensor) {
		return fmt.Errorf("tensor %q: %w", tensor, ErrQDQNoTensor)
	}
	scale, zp := tensor+suffixScale, tensor+suffixZeroPoint
	qOut, dqOut := tensor+suffixQuantized, tensor+suffixDequantized
	if tensorExists(g, qOut) {
		return fmt.Errorf("tensor %q: already quantized", tensor)
	}
	g.Initializer = append(g.Initializer, scaleTensor(scale, q), zeroPointTensor(zp, q))
	for _, n := range g.Node {
		for i, in := range n.Input {
			if in == tensor {
				n.Input[i] = dqOut
			}
		}
	}
	qn := &onnxpb.NodeProto{Name: proto.String(tensor + "_QuantizeLinear"), OpType: proto.String("QuantizeLinear"), Input: []string{tensor, scale, zp}, Output: []string{qOut}}
	dqn := &onnxpb.NodeProto{Name: proto.String(tensor + "_DequantizeLinear"), OpType: proto.String("DequantizeLinear"), Input: []string{qOut, scale, zp}, Output: []string{dqOut}}
	if len(q.Scale) > 1 {
		qn.Attribute = []*onnxpb.AttributeProto{axisAttr(q.Axis)}
		dqn.Attribute = []*onnxpb.AttributeProto{axisAttr(q.Axis)}
	}
	g.Node = insertAfterProducer(g.Node, tensor, qn, dqn)
	return nil
}

// QuantizeInitializer replaces the float initializer name by its quantized
// values (int8/uint8 in data8, or int32 in data32 for a bias) and a
// DequantizeLinear that produces name again, so consumers are unchanged.
func QuantizeInitializer(p *onnxpb.ModelProto, name string, data8 []int8, data32 []int32, q QuantParams) error {
	g := p.GetGraph()
	if err := q.validate(fmt.Sprintf("initializer %q", name)); err != nil {
		return err
	}
	i := slices.IndexFunc(g.Initializer, func(t *onnxpb.TensorProto) bool { return t.GetName() == name })
	if i < 0 {
		return fmt.Errorf("initializer %q: %w", name, ErrQDQNoTensor)
	}
	orig := g.Initializer[i]
	n := int64(1)
	for _, d := range orig.Dims {
		n *= d
	}
	qt := &onnxpb.TensorProto{Name: proto.String(name + suffixQuantized), Dims: slices.Clone(orig.Dims), DataType: proto.Int32(int32(q.Type))}
	switch q.Type {
	case onnxpb.TensorProto_INT32:
		if int64(len(data32)) != n {
			return fmt.Errorf("initializer %q: %d int32 values for %d elements", name, len(data32), n)
		}
		qt.RawData = int32Raw(data32)
	default:
		if int64(len(data8)) != n {
			return fmt.Errorf("initializer %q: %d 8-bit values for %d elements", name, len(data8), n)
		}
		raw := make([]byte, len(data8))
		for j, v := range data8 {
			raw[j] = byte(v)
		}
		qt.RawData = raw
	}
	scale, zp := name+suffixScale, name+suffixZeroPoint
	g.Initializer = slices.Delete(g.Initializer, i, i+1)
	g.Initializer = append(g.Initializer, qt, scaleTensor(scale, q), zeroPointTensor(zp, q))
	// An old-style model may list the initializer among the graph inputs.
	g.Input = slices.DeleteFunc(g.Input, func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == name })
	dqn := &onnxpb.NodeProto{Name: proto.String(name + "_DequantizeLinear"), OpType: proto.String("DequantizeLinear"), Input: []string{qt.GetName(), scale, zp}, Output: []string{name}}
	if len(q.Scale) > 1 {
		dqn.Attribute = []*onnxpb.AttributeProto{axisAttr(q.Axis)}
	}
	g.Node = append([]*onnxpb.NodeProto{dqn}, g.Node...)
	return nil
}

// BypassNode removes a single-input, single-output node (such as a Relu
// whose clipping a following uint8 quantization with zero point 0 already
// does): the node producing its input now produces its output. The input
// must have no other consumer and must not be a graph output.
func BypassNode(p *onnxpb.ModelProto, nodeName string) error {
	g := p.GetGraph()
	i := slices.IndexFunc(g.Node, func(n *onnxpb.NodeProto) bool { return n.GetName() == nodeName })
	if i < 0 {
		return fmt.Errorf("node %q: %w", nodeName, ErrQDQNoNode)
	}
	n := g.Node[i]
	if len(n.Input) != 1 || len(n.Output) != 1 {
		return fmt.Errorf("node %q (%s): can only bypass a node with one input and one output", nodeName, n.GetOpType())
	}
	in, out := n.Input[0], n.Output[0]
	var producer *onnxpb.NodeProto
	for _, m := range g.Node {
		if m == n {
			continue
		}
		if slices.Contains(m.Input, in) {
			return fmt.Errorf("node %q (%s): its input %q has other consumers", nodeName, n.GetOpType(), in)
		}
		if slices.Contains(m.Output, in) {
			producer = m
		}
	}
	if producer == nil {
		return fmt.Errorf("node %q (%s): its input %q is not produced by a node", nodeName, n.GetOpType(), in)
	}
	if slices.ContainsFunc(g.Output, func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == in }) {
		return fmt.Errorf("node %q (%s): its input %q is a graph output", nodeName, n.GetOpType(), in)
	}
	for j, o := range producer.Output {
		if o == in {
			producer.Output[j] = out
		}
	}
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == in })
	g.Node = slices.Delete(g.Node, i, i+1)
	return nil
}

func tensorExists(g *onnxpb.GraphProto, name string) bool {
	for _, v := range g.Input {
		if v.GetName() == name {
			return true
		}
	}
	for _, t := range g.Initializer {
		if t.GetName() == name {
			return true
		}
	}
	for _, n := range g.Node {
		if slices.Contains(n.Output, name) {
			return true
		}
	}
	return false
}

// insertAfterProducer places nodes right after the node producing tensor
// (at the front for a graph input), keeping the graph topologically sorted.
func insertAfterProducer(nodes []*onnxpb.NodeProto, tensor string, add ...*onnxpb.NodeProto) []*onnxpb.NodeProto {
	at := 0
	for i, n := range nodes {
		if slices.Contains(n.Output, tensor) {
			at = i + 1
			break
		}
	}
	return slices.Insert(nodes, at, add...)
}

func axisAttr(axis int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(axis))}
}

func scaleTensor(name string, q QuantParams) *onnxpb.TensorProto {
	t := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: slices.Clone(q.Scale)}
	if len(q.Scale) > 1 {
		t.Dims = []int64{int64(len(q.Scale))}
	}
	return t
}

func zeroPointTensor(name string, q QuantParams) *onnxpb.TensorProto {
	t := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(q.Type))}
	if len(q.ZeroPoint) > 1 {
		t.Dims = []int64{int64(len(q.ZeroPoint))}
	}
	switch q.Type {
	case onnxpb.TensorProto_INT32:
		t.Int32Data = slices.Clone(q.ZeroPoint)
	default:
		raw := make([]byte, len(q.ZeroPoint))
		for i, z := range q.ZeroPoint {
			raw[i] = byte(int8(z))
			if q.Type == onnxpb.TensorProto_UINT8 {
				raw[i] = byte(uint8(z))
			}
		}
		t.RawData = raw
	}
	return t
}

func int32Raw(v []int32) []byte {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		u := uint32(x)
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return raw
}

// Errors of the QDQ writer.
var (
	ErrQDQNoTensor = errors.New("no such tensor in the graph")
	ErrQDQNoNode   = errors.New("no such node in the graph")
)
