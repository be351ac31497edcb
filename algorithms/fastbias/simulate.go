package fastbias

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// simulated returns a copy of the quantized model q in which the
// DequantizeLinear nodes of some constant int8 tensors (quantized weights)
// are replaced by the float initializers they compute, (w - zp)·scale, bit
// for bit as DequantizeLinear computes it: the weight of the node named
// node (if any), and every weight an x86 integer kernel might not compute
// exactly (one with values beyond ±64 or a nonzero zero point).
//
// FastBiasCorrection measures the INT8 model's means on this copy. A layer
// without a DequantizeLinear on its weight cannot be fused into an integer
// kernel (QLinearConv, QGemm, ...): ONNX Runtime runs DQ(activation) →
// float op → Q, the arithmetic the QDQ model defines, exact up to float
// rounding. Integer kernels give the same values on CPUs with VNNI but, on
// x86 CPUs without it, vpmaddubsw saturates int16 pair sums when weights
// exceed ±64 (255·65·2 > 32767); measured through them, the correction
// learns the calibrating CPU's saturation, and the output model depends on
// which CPU calibrated it (a model corrected on a CPU without VNNI lost a
// point on one with it). Weights within ±64 (saturation_fix's 7-bit grid)
// keep their integer kernels, which are exact on every x86 CPU, so the
// default model is measured at INT8 speed; the measured layer itself is
// always simulated, because ONNX Runtime computes a fused layer's float
// output (QGemm's) with CPU-specific rounding. Activations keep their Q/DQ
// pairs, so every activation's rounding and clipping is still measured.
//
// The copy shares no tensor with q.
func simulated(q *onnxpb.ModelProto, node string) (*onnxpb.ModelProto, error) {
	p := proto.Clone(q).(*onnxpb.ModelProto)
	g := p.GetGraph()
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	force := map[string]bool{} // DequantizeLinear outputs to replace
	for _, n := range g.GetNode() {
		if node != "" && n.GetName() == node && len(n.Input) > 1 {
			force[n.Input[1]] = true
		}
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
		if !force[n.Output[0]] && exactOnX86(n, x, inits) {
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

// exactOnX86 reports whether the int8 weight x of DequantizeLinear n has
// zero point 0 and values within ±64, which no x86 integer kernel of ONNX
// Runtime can saturate: u8·s8 pair sums stay within 255·64·2 = 32640.
func exactOnX86(n *onnxpb.NodeProto, x *onnxpb.TensorProto, inits map[string]*onnxpb.TensorProto) bool {
	if len(n.Input) > 2 && n.Input[2] != "" {
		zt := inits[n.Input[2]]
		if zt == nil {
			return false
		}
		zp, err := int8Values(zt)
		if err != nil {
			return false
		}
		for _, z := range zp {
			if z != 0 {
				return false
			}
		}
	}
	v, err := int8Values(x)
	if err != nil {
		return false
	}
	for _, w := range v {
		if w < -64 || w > 64 {
			return false
		}
	}
	return true
}

// dequantize computes DequantizeLinear(x, scale[, zp], axis) of a constant
// int8 x as a float initializer named after the node's output.
func dequantize(n *onnxpb.NodeProto, x *onnxpb.TensorProto, inits map[string]*onnxpb.TensorProto) (*onnxpb.TensorProto, error) {
	out, err := dequantizeValues(n, x, inits)
	if err != nil {
		return nil, err
	}
	return model.NewTensorFloat32(n.Output[0], x.GetDims(), out), nil
}

// dequantizeValues is dequantize's values, in x's shape.
func dequantizeValues(n *onnxpb.NodeProto, x *onnxpb.TensorProto, inits map[string]*onnxpb.TensorProto) ([]float32, error) {
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
	if len(q) > 0 && (stride == 0 || len(q)%stride != 0) {
		return nil, fmt.Errorf("tensor %q: %d values for shape %v", x.GetName(), len(q), dims)
	}
	out := make([]float32, len(q))
	for i := 0; i < len(q); i += stride {
		c := (i / stride) % channels
		s, z := scale[c], int32(zp[c])
		for j, v := range q[i : i+stride] {
			// ONNX Runtime: float(x - zp) * scale, in float32.
			out[i+j] = float32(int32(v)-z) * s
		}
	}
	return out, nil
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
