package fastbias

import (
	"fmt"
	"math"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// inputSpec is the statistic the fast mode needs: the per-channel mean of
// each candidate layer's input in the float model.
var inputSpec = pipeline.StatSpec{Kind: pipeline.StatChannelMean, Axis: 1}

// Layout lists the statistics the fast mode reads, on the prepared float
// model fp (MinMaxQuantization's Reference): the per-channel mean of the
// input of every Conv and Gemm with a constant weight. A quantizer adds them
// to its own statistics pass (minmax.Algorithm.AddStats), so the correction
// costs no pass of its own.
func Layout(fp *model.CompressedModel) pipeline.StatsLayout {
	layout := pipeline.StatsLayout{}
	for _, s := range fp.Models() {
		g := s.Proto.GetGraph()
		inits := map[string]bool{}
		for _, t := range g.GetInitializer() {
			inits[t.GetName()] = true
		}
		for _, n := range g.GetNode() {
			if in, ok := layerInput(n); ok && inits[n.Input[1]] {
				layout[in] = []pipeline.StatSpec{inputSpec}
			}
		}
	}
	return layout
}

// layerInput returns the input tensor of a Conv or Gemm the fast mode can
// correct (Gemm with transA set reads its channels on axis 0: not one).
func layerInput(n *onnxpb.NodeProto) (string, bool) {
	op := n.GetOpType()
	if (op != "Conv" && op != "Gemm") || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" || len(n.Input) < 3 || n.GetName() == "" {
		return "", false
	}
	if op == "Gemm" && attrInt(n, "transA", 0) != 0 {
		return "", false
	}
	return n.Input[0], n.Input[0] != ""
}

// fastCorrect shifts every target's bias by the difference between the
// float layer and the quantized layer on the float model's mean input,
// computed in float64 in Go (see doc.go).
func (a *Algorithm) fastCorrect(out []*model.Stage, ref *model.CompressedModel, targets []target, stats *reduce.Set) error {
	for _, t := range targets {
		q, f := out[t.stage].Proto.GetGraph(), ref.Models()[t.stage].Proto.GetGraph()
		fn, qn := nodeNamed(f, t.node), nodeNamed(q, t.node)
		if fn == nil || qn == nil {
			return fmt.Errorf("node %q: not found", t.node)
		}
		in, ok := layerInput(fn)
		if !ok {
			continue
		}
		mean, err := channelMeans(stats, in, inputSpec.Key())
		if err != nil {
			return fmt.Errorf("node %q: input mean: %w", t.node, err)
		}
		shift, err := layerShift(fn, qn, f, q, mean, t)
		if err != nil {
			return fmt.Errorf("node %q: %w", t.node, err)
		}
		zero := make([]float64, len(shift))
		m, err := correct(t, shift, zero)
		if err != nil {
			return fmt.Errorf("node %q: %w", t.node, err)
		}
		a.report.Layers = append(a.report.Layers, LayerShift{Node: t.node, MaxAbsShift: m})
	}
	return nil
}

// layerShift returns, per output channel, fp(x̄) − q(x̄): the float layer
// fn of graph f and its quantized copy qn of graph q (dequantized weight,
// fake-quantized input, int32 bias) applied to the input filled with its
// per-channel mean x̄. Both are affine, so their mean output is the
// weight's sum over the kernel times x̄; padding is left out, which only
// drops the product of the border fraction and the (small) quantization
// error, where POT's recipe (FP32 output mean − q(x̄)) would keep the
// whole border effect of the float layer.
func layerShift(fn, qn *onnxpb.NodeProto, f, q *onnxpb.GraphProto, mean []float64, t target) ([]float64, error) {
	w, dims, err := floatWeight(f, fn.Input[1])
	if err != nil {
		return nil, fmt.Errorf("float weight: %w", err)
	}
	wq, qdims, err := floatWeight(q, qn.Input[1])
	if err != nil {
		return nil, fmt.Errorf("quantized weight: %w", err)
	}
	if len(w) != len(wq) || len(dims) != len(qdims) {
		return nil, fmt.Errorf("float weight %v, quantized weight %v", dims, qdims)
	}
	fq, err := fakeQuant(q, qn.Input[0], mean)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	b, err := floatValues(f, fn.Input[2])
	if err != nil {
		return nil, fmt.Errorf("float bias: %w", err)
	}
	var shift []float64
	if fn.GetOpType() == "Conv" {
		shift, err = convShift(fn, w, wq, dims, mean, fq)
	} else {
		shift, err = gemmShift(fn, w, wq, dims, mean, fq)
	}
	if err != nil {
		return nil, err
	}
	if len(b) != len(shift) && len(b) != 1 {
		return nil, fmt.Errorf("bias has %d values for %d channels", len(b), len(shift))
	}
	raw := t.bias.GetRawData()
	if len(raw) != 4*len(shift) {
		return nil, fmt.Errorf("int32 bias has %d bytes for %d channels", len(raw), len(shift))
	}
	for o := range shift {
		v := int32(uint32(raw[4*o]) | uint32(raw[4*o+1])<<8 | uint32(raw[4*o+2])<<16 | uint32(raw[4*o+3])<<24)
		s := t.scales[0]
		if len(t.scales) == len(shift) {
			s = t.scales[o]
		}
		bo := b[0]
		if len(b) > 1 {
			bo = b[o]
		}
		shift[o] += float64(bo) - float64(float32(v)*s)
	}
	return shift, nil
}

// convShift is Σ_{c,k} (W[o,c,k]·x̄_c − Wq[o,c,k]·FQ(x̄)_c) for a Conv
// weight of shape [M, C/group, k...].
func convShift(n *onnxpb.NodeProto, w, wq []float32, dims []int64, mean, fq []float64) ([]float64, error) {
	if len(dims) < 3 {
		return nil, fmt.Errorf("conv weight of shape %v", dims)
	}
	group := int(attrInt(n, "group", 1))
	m, cg := int(dims[0]), int(dims[1])
	k := len(w) / max(m*cg, 1)
	if group < 1 || m%group != 0 || cg*group != len(mean) {
		return nil, fmt.Errorf("weight %v, group %d, %d input channels", dims, group, len(mean))
	}
	out := make([]float64, m)
	for o := range m {
		g := o / (m / group)
		var acc float64
		for c := range cg {
			x, xq := mean[g*cg+c], fq[g*cg+c]
			base := (o*cg + c) * k
			for i := range k {
				acc += float64(w[base+i])*x - float64(wq[base+i])*xq
			}
		}
		out[o] = acc
	}
	return out, nil
}

// gemmShift is alpha·Σ_k (B[k,n]·x̄_k − Bq[k,n]·FQ(x̄)_k), B transposed
// when transB is set.
func gemmShift(n *onnxpb.NodeProto, w, wq []float32, dims []int64, mean, fq []float64) ([]float64, error) {
	if len(dims) != 2 {
		return nil, fmt.Errorf("gemm weight of shape %v", dims)
	}
	kk, nn := int(dims[0]), int(dims[1])
	trans := attrInt(n, "transB", 0) != 0
	if trans {
		kk, nn = nn, kk
	}
	if kk != len(mean) {
		return nil, fmt.Errorf("weight %v for %d inputs", dims, len(mean))
	}
	alpha := float64(attrFloat(n, "alpha", 1))
	out := make([]float64, nn)
	for j := range nn {
		var acc float64
		for k := range kk {
			i := k*nn + j
			if trans {
				i = j*kk + k
			}
			acc += float64(w[i])*mean[k] - float64(wq[i])*fq[k]
		}
		out[j] = alpha * acc
	}
	return out, nil
}

// fakeQuant returns x quantized and dequantized as the QuantizeLinear →
// DequantizeLinear pair producing tensor in q does (per tensor), or x
// itself when tensor is not a DequantizeLinear output.
func fakeQuant(q *onnxpb.GraphProto, tensor string, x []float64) ([]float64, error) {
	dq := producer(q, tensor)
	if dq == nil || dq.GetOpType() != "DequantizeLinear" || len(dq.Input) < 2 {
		return x, nil
	}
	ql := producer(q, dq.Input[0])
	if ql == nil || ql.GetOpType() != "QuantizeLinear" || len(ql.Input) < 2 {
		return x, nil
	}
	scale, err := floatValues(q, ql.Input[1])
	if err != nil || len(scale) != 1 {
		return nil, fmt.Errorf("activation scale %q: want one constant (%v)", ql.Input[1], err)
	}
	zp, lo, hi := int64(0), int64(0), int64(255)
	if len(ql.Input) > 2 && ql.Input[2] != "" {
		zt := initializer(q, ql.Input[2])
		if zt == nil {
			return nil, fmt.Errorf("activation zero point %q is not a constant", ql.Input[2])
		}
		var z []int64
		z, lo, hi, err = int8or16(zt)
		if err != nil || len(z) != 1 {
			return nil, fmt.Errorf("activation zero point %q: want one 8-bit value (%v)", ql.Input[2], err)
		}
		zp = z[0]
	}
	s := float64(scale[0])
	out := make([]float64, len(x))
	for i, v := range x {
		r := math.RoundToEven(v/s) + float64(zp)
		r = max(min(r, float64(hi)), float64(lo))
		out[i] = (r - float64(zp)) * s
	}
	return out, nil
}

// int8or16 reads a UINT8 or INT8 zero point and its storage range.
func int8or16(t *onnxpb.TensorProto) (v []int64, lo, hi int64, err error) {
	switch t.GetDataType() {
	case int32(onnxpb.TensorProto_INT8):
		q, err := int8Values(t)
		for _, x := range q {
			v = append(v, int64(x))
		}
		return v, -128, 127, err
	case int32(onnxpb.TensorProto_UINT8):
		if t.RawData != nil {
			for _, b := range t.RawData {
				v = append(v, int64(b))
			}
		} else {
			for _, x := range t.Int32Data {
				v = append(v, int64(uint8(x)))
			}
		}
		return v, 0, 255, nil
	}
	return nil, 0, 0, fmt.Errorf("tensor %q: %s, want INT8 or UINT8", t.GetName(), model.ElemTypeName(t.GetDataType()))
}

// floatWeight returns the values and shape of a weight: a float
// initializer, or the DequantizeLinear of a constant int8 one (computed as
// ONNX Runtime does, see dequantize).
func floatWeight(g *onnxpb.GraphProto, name string) ([]float32, []int64, error) {
	if t := initializer(g, name); t != nil {
		v, err := model.TensorFloat32(t)
		return v, t.GetDims(), err
	}
	n := producer(g, name)
	if n == nil || n.GetOpType() != "DequantizeLinear" || len(n.Input) < 2 {
		return nil, nil, fmt.Errorf("%q is neither a constant nor a DequantizeLinear", name)
	}
	x := initializer(g, n.Input[0])
	if x == nil {
		return nil, nil, fmt.Errorf("%q: quantized weight %q is not a constant", name, n.Input[0])
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, in := range n.Input {
		if t := initializer(g, in); t != nil {
			inits[in] = t
		}
	}
	t, err := dequantize(n, x, inits)
	if err != nil {
		return nil, nil, err
	}
	v, err := model.TensorFloat32(t)
	return v, t.GetDims(), err
}

func floatValues(g *onnxpb.GraphProto, name string) ([]float32, error) {
	t := initializer(g, name)
	if t == nil {
		return nil, fmt.Errorf("%q is not a constant", name)
	}
	return model.TensorFloat32(t)
}

func initializer(g *onnxpb.GraphProto, name string) *onnxpb.TensorProto {
	for _, t := range g.GetInitializer() {
		if t.GetName() == name {
			return t
		}
	}
	return nil
}

func producer(g *onnxpb.GraphProto, tensor string) *onnxpb.NodeProto {
	for _, n := range g.GetNode() {
		for _, o := range n.Output {
			if o == tensor {
				return n
			}
		}
	}
	return nil
}

func nodeNamed(g *onnxpb.GraphProto, name string) *onnxpb.NodeProto {
	for _, n := range g.GetNode() {
		if n.GetName() == name {
			return n
		}
	}
	return nil
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetF()
		}
	}
	return def
}
