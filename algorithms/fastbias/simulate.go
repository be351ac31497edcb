package fastbias

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// simulated returns a copy of the quantized model q in which every
// DequantizeLinear of a constant int8 tensor (a quantized weight) is
// replaced by the float initializer it computes, (w - zp)·scale, bit for
// bit as DequantizeLinear computes it.
//
// FastBiasCorrection measures the INT8 model's means on this copy. Without
// a DequantizeLinear on its weight, ONNX Runtime cannot fuse a layer into an
// integer kernel (QLinearConv, QGemm, ...): it runs DQ(activation) → float
// op → Q, the quantized arithmetic the QDQ model defines, exact up to
// float rounding. The integer kernels give the same values on CPUs with
// VNNI but saturate int16 pair sums on x86 CPUs without it (vpmaddubsw) when
// weights use 8 bits; measured through them, the correction would learn
// the calibrating CPU's saturation, and the output model would depend on
// which CPU calibrated it (a model corrected on a CPU without VNNI loses
// accuracy on one with it). Activations keep their Q/DQ pairs, so rounding
// and clipping of every quantized activation are still measured.
//
// The copy shares no tensor with q except the int32 biases named in
// shared, which must be updated in both (see Run).
func simulated(q *onnxpb.ModelProto) (*onnxpb.ModelProto, error) {
	p := proto.Clone(q).(*onnxpb.ModelProto)
	g := p.GetGraph()
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	keep := g.Node[:0:0]
	replaced := map[string]bool{}
	for _, n := range g.GetNode() {
		var x *onnxpb.TensorProto
		if n.GetOpType() == "DequantizeLinear" && n.GetDomain() == "" && len(n.Input) >= 2 && len(n.Output) == 1 {
			x = inits[n.Input[0]]
		}
		if x == nil || x.GetDataType() != int32(onnxpb.TensorProto_INT8) {
			keep = append(keep, n)
			continue
		}
		w, err := dequantize(n, x, inits)
		if err != nil {
			return nil, fmt.Errorf("node %q: %w", n.GetName(), err)
		}
		g.Initializer = append(g.Initializer, w)
		for _, in := range n.Input {
			replaced[in] = true
		}
	}
	g.Node = keep
	// Drop the weights, scales and zero points no node reads any more.
	used := map[string]bool{}
	for _, n := range g.Node {
		for _, in := range n.Input {
			used[in] = true
		}
	}
	inits2 := g.Initializer[:0:0]
	for _, t := range g.Initializer {
		if !replaced[t.GetName()] || used[t.GetName()] {
			inits2 = append(inits2, t)
		}
	}
	g.Initializer = inits2
	return p, nil
}

// dequantize computes DequantizeLinear(x, scale[, zp], axis) of a constant
// int8 x as a float initializer named after the node's output.
func dequantize(n *onnxpb.NodeProto, x *onnxpb.TensorProto, inits map[string]*onnxpb.TensorProto) (*onnxpb.TensorProto, error) {
	q, err := int8Values(x)
	if err != nil {
		return nil, err
	}
	st := inits[n.Input[1]]
	if st == nil {
		return nil, fmt.Errorf("scale %q is not a constant", n.Input[1])
	}
	scale, err := model.TensorFloat32(st)
	if err != nil {
		return nil, err
	}
	zp := make([]int8, len(scale))
	if len(n.Input) > 2 && n.Input[2] != "" {
		zt := inits[n.Input[2]]
		if zt == nil {
			return nil, fmt.Errorf("zero point %q is not a constant", n.Input[2])
		}
		if zp, err = int8Values(zt); err != nil {
			return nil, err
		}
	}
	if len(zp) != len(scale) {
		return nil, fmt.Errorf("%d scales, %d zero points", len(scale), len(zp))
	}
	dims := x.GetDims()
	// Per-tensor: one scale. Per-axis: scale[i] for index i along axis.
	stride, channels := len(q), 1
	if len(scale) > 1 {
		axis := int64(1)
		for _, a := range n.Attribute {
			if a.GetName() == "axis" {
				axis = a.GetI()
			}
		}
		if axis < 0 {
			axis += int64(len(dims))
		}
		if axis < 0 || axis >= int64(len(dims)) || dims[axis] != int64(len(scale)) {
			return nil, fmt.Errorf("%d scales for axis %d of shape %v", len(scale), axis, dims)
		}
		channels, stride = len(scale), 1
		for _, d := range dims[axis+1:] {
			stride *= int(d)
		}
	}
	out := make([]float32, len(q))
	for i, v := range q {
		c := (i / stride) % channels
		// ONNX Runtime: float(x - zp) * scale, in float32.
		out[i] = float32(int32(v)-int32(zp[c])) * scale[c]
	}
	return model.NewTensorFloat32(n.Output[0], dims, out), nil
}

// int8Values returns the values of an INT8 tensor, from raw_data or
// int32_data (ONNX's storage of 8-bit values).
func int8Values(t *onnxpb.TensorProto) ([]int8, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_INT8) {
		return nil, fmt.Errorf("tensor %q: %s, want INT8", t.GetName(), model.ElemTypeName(t.GetDataType()))
	}
	n := 1
	for _, d := range t.GetDims() {
		n *= int(d)
	}
	var out []int8
	switch {
	case t.RawData != nil:
		if len(t.RawData) != n {
			return nil, fmt.Errorf("tensor %q: raw_data has %d bytes, shape %v needs %d", t.GetName(), len(t.RawData), t.GetDims(), n)
		}
		out = make([]int8, n)
		for i, b := range t.RawData {
			out[i] = int8(b)
		}
	default:
		if len(t.Int32Data) != n {
			return nil, fmt.Errorf("tensor %q: int32_data has %d values, shape %v needs %d", t.GetName(), len(t.Int32Data), t.GetDims(), n)
		}
		out = make([]int8, n)
		for i, v := range t.Int32Data {
			out[i] = int8(v)
		}
	}
	return out, nil
}
