package model

import (
	"encoding/binary"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// FoldConstantCasts replaces every top-level Cast to FLOAT whose input is a
// FLOAT16, BFLOAT16 or DOUBLE initializer by a FLOAT initializer named after
// the Cast's output. This is the layout of models whose weights are stored
// in half precision with a Cast after each (onnxconverter's keep_io_types,
// optimum's fp16 exports): once folded, their Conv, Gemm and MatMul read
// constant float32 weights and can be quantized. Every value of the result is
// exactly the cast value (float16 and bfloat16 widen exactly; double rounds
// to nearest as Cast does). Initializers left unused are removed. A Cast that
// is a graph output, or whose output is already an initializer, stays. It
// returns the number of Cast nodes folded.
func FoldConstantCasts(p *onnxpb.ModelProto) (int, error) {
	return foldUnaryOfInitializer(p, "Cast", func(n *onnxpb.NodeProto, src *onnxpb.TensorProto) *onnxpb.TensorProto {
		if attrInt(n, "to", 0) != int64(TypeFloat) {
			return nil
		}
		vals, ok := widenToFloat32(src)
		if !ok {
			return nil
		}
		return NewTensorFloat32("", slices.Clone(src.GetDims()), vals)
	})
}

// foldUnaryOfInitializer replaces every top-level default-domain node of
// opType with one input, an initializer, and one output by the initializer
// value(n, input) returns, named after the output (nil: the node stays).
// Nodes whose output is a graph output or already an initializer stay, as
// do those reading external data. Initializers left unused are removed. It
// returns the number of nodes folded.
func foldUnaryOfInitializer(p *onnxpb.ModelProto, opType string, value func(n *onnxpb.NodeProto, src *onnxpb.TensorProto) *onnxpb.TensorProto) (int, error) {
	g := p.GetGraph()
	if g == nil {
		return 0, ErrNoGraph
	}
	x := NewGraph(p)
	drop := map[*onnxpb.NodeProto]bool{}
	var added []*onnxpb.TensorProto
	for _, n := range g.GetNode() {
		if n.GetOpType() != opType || !isDefaultDomain(n.GetDomain()) || len(n.GetInput()) != 1 || len(n.GetOutput()) != 1 {
			continue
		}
		out := n.GetOutput()[0]
		src := x.Initializer(n.GetInput()[0])
		if out == "" || src == nil || x.IsGraphOutput(out) || x.Initializer(out) != nil || isExternal(src) {
			continue
		}
		t := value(n, src)
		if t == nil {
			continue
		}
		t.Name = proto.String(out)
		drop[n] = true
		added = append(added, t)
	}
	if len(drop) == 0 {
		return 0, nil
	}
	g.Node = slices.DeleteFunc(g.Node, func(n *onnxpb.NodeProto) bool { return drop[n] })
	for _, t := range added {
		g.Initializer = append(g.Initializer, t)
		if p.GetIrVersion() < 4 {
			g.Input = append(g.Input, tensorValueInfo(t))
		}
	}
	removeUnusedInitializers(p)
	return len(drop), nil
}

// removeUnusedInitializers drops the initializers no node (nor sub-graph)
// reads and that are not graph outputs, with their graph-input entries.
func removeUnusedInitializers(p *onnxpb.ModelProto) {
	g := p.GetGraph()
	x := NewGraph(p)
	unused := map[string]bool{}
	for _, t := range g.GetInitializer() {
		name := t.GetName()
		if len(x.Consumers(name)) == 0 && !x.IsGraphOutput(name) {
			unused[name] = true
		}
	}
	if len(unused) == 0 {
		return
	}
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *onnxpb.TensorProto) bool { return unused[t.GetName()] })
	g.Input = slices.DeleteFunc(g.Input, func(v *onnxpb.ValueInfoProto) bool { return unused[v.GetName()] })
}

// widenToFloat32 decodes a FLOAT16, BFLOAT16 or DOUBLE tensor stored in the
// model as float32 values; ok is false for other types or bad data.
func widenToFloat32(t *onnxpb.TensorProto) ([]float32, bool) {
	n, err := numElements(t.GetDims())
	if err != nil {
		return nil, false
	}
	raw := t.GetRawData()
	out := make([]float32, 0, n)
	switch t.GetDataType() {
	case TypeFloat16, int32(onnxpb.TensorProto_BFLOAT16):
		half := t.GetDataType() == TypeFloat16
		var bits []uint16
		if raw != nil {
			if int64(len(raw)) != 2*n {
				return nil, false
			}
			for i := 0; i < len(raw); i += 2 {
				bits = append(bits, binary.LittleEndian.Uint16(raw[i:]))
			}
		} else {
			// int32_data holds one 16-bit pattern per element.
			if int64(len(t.GetInt32Data())) != n {
				return nil, false
			}
			for _, v := range t.GetInt32Data() {
				bits = append(bits, uint16(v))
			}
		}
		for _, b := range bits {
			if half {
				out = append(out, Float16ToFloat32(b))
			} else {
				out = append(out, math.Float32frombits(uint32(b)<<16))
			}
		}
	case TypeDouble:
		if raw != nil {
			if int64(len(raw)) != 8*n {
				return nil, false
			}
			for i := 0; i < len(raw); i += 8 {
				out = append(out, float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[i:]))))
			}
		} else {
			if int64(len(t.GetDoubleData())) != n {
				return nil, false
			}
			for _, v := range t.GetDoubleData() {
				out = append(out, float32(v))
			}
		}
	default:
		return nil, false
	}
	return out, true
}

// Float16ToFloat32 widens an IEEE 754 half-precision value exactly.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
	case frac == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: normalize.
	e := uint32(113)
	for frac&0x400 == 0 {
		frac <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
}

// FoldConstantIdentities replaces every top-level Identity whose input is
// an initializer by a copy of that initializer named after the Identity's
// output. torch.onnx deduplicates equal weights (the layers of an
// nn.TransformerEncoder start as copies of one another) and reads the
// copies through Identity nodes; folded, every layer reads a constant
// weight of its own and can be quantized. An Identity that is a graph
// output, or whose output is already an initializer, stays. It returns the
// number of nodes folded.
func FoldConstantIdentities(p *onnxpb.ModelProto) (int, error) {
	return foldUnaryOfInitializer(p, "Identity", func(_ *onnxpb.NodeProto, src *onnxpb.TensorProto) *onnxpb.TensorProto {
		return proto.Clone(src).(*onnxpb.TensorProto)
	})
}
