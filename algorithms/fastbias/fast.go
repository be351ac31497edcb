package fastbias

import (
	"context"
	"fmt"

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
// float32 input of every Conv and Gemm with a constant weight. A quantizer adds them
// to its own statistics pass (minmax.Algorithm.AddStats), so the correction
// costs no pass of its own.
func Layout(fp *model.CompressedModel) pipeline.StatsLayout {
	return layout(fp, nil)
}

// LayoutFor is Layout for the nodes named in layers only: the layers a
// quantizer quantizes (minmax.Algorithm.AddLayerStats). A Conv or Gemm the
// quantizer leaves in float gets no bias to correct, so its input's means
// would be computed for nothing, and the tensor could not take the cheaper
// paths of a min/max-only statistic (a Relu output derived from its input).
func LayoutFor(fp *model.CompressedModel, layers []string) pipeline.StatsLayout {
	keep := make(map[string]bool, len(layers))
	for _, n := range layers {
		keep[n] = true
	}
	return layout(fp, keep)
}

// layout is Layout restricted to the nodes in keep (nil: every node).
func layout(fp *model.CompressedModel, keep map[string]bool) pipeline.StatsLayout {
	layout := pipeline.StatsLayout{}
	for _, s := range fp.Models() {
		g := s.Proto.GetGraph()
		inits := map[string]bool{}
		for _, t := range g.GetInitializer() {
			inits[t.GetName()] = true
		}
		// Only float32 layers are quantized (a float16 part of a mixed
		// model stays as it is): no statistic of another type.
		types := model.InferTypes(s.Proto)
		for _, n := range g.GetNode() {
			if keep != nil && !keep[n.GetName()] {
				continue
			}
			if in, ok := layerInput(n); ok && inits[n.Input[1]] && types.IsFloat32(in) {
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
func (a *Algorithm) fastCorrect(ctx context.Context, out []*model.Stage, ref *model.CompressedModel, targets []target, stats *reduce.Set) error {
	// A layer whose input means the given statistics lack (a layer the
	// quantizer's pass did not list, see LayoutFor) gets them from one pass
	// of its own, over the same subset: the same bits as in the quantizer's
	// pass, since each tensor's means are computed alone.
	missing := pipeline.StatsLayout{}
	for _, t := range targets {
		fn := nodeNamed(ref.Models()[t.stage].Proto.GetGraph(), t.node)
		if fn == nil {
			continue
		}
		if in, ok := layerInput(fn); ok && stats.Get(in, inputSpec.Key()) == nil {
			missing[in] = []pipeline.StatSpec{inputSpec}
		}
	}
	var more *reduce.Set
	if len(missing) > 0 {
		var err error
		if more, err = a.means(ctx, ref, missing, "bias correction statistics"); err != nil {
			return err
		}
	}
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
		src := stats
		if _, ok := missing[in]; ok {
			src = more
		}
		mean, err := channelMeans(src, in, inputSpec.Key())
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
// int32 bias) applied to the input filled with its per-channel mean x̄.
// The input is not fake-quantized: rounding x̄ to the activation grid
// moves every channel by up to half a step in one direction, where the
// rounding of real activations averages out; with it the corrected models
// agreed less with FP32 (ppocr_cls top-1 agreement 0.78 against 0.91
// without, on 64 held-out samples; BENCHMARKS.md). Both are affine, so their mean output is the
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
	b, err := floatValues(f, fn.Input[2])
	if err != nil {
		return nil, fmt.Errorf("float bias: %w", err)
	}
	var shift []float64
	if fn.GetOpType() == "Conv" {
		shift, err = convShift(fn, w, wq, dims, mean)
	} else {
		shift, err = gemmShift(fn, w, wq, dims, mean)
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

// convShift is Σ_{c,k} (W[o,c,k] − Wq[o,c,k])·x̄_c for a Conv
// weight of shape [M, C/group, k...].
func convShift(n *onnxpb.NodeProto, w, wq []float32, dims []int64, mean []float64) ([]float64, error) {
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
			x := mean[g*cg+c]
			base := (o*cg + c) * k
			for i := range k {
				acc += (float64(w[base+i]) - float64(wq[base+i])) * x
			}
		}
		out[o] = acc
	}
	return out, nil
}

// gemmShift is alpha·Σ_k (B[k,n] − Bq[k,n])·x̄_k, B transposed
// when transB is set.
func gemmShift(n *onnxpb.NodeProto, w, wq []float32, dims []int64, mean []float64) ([]float64, error) {
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
			acc += (float64(w[i]) - float64(wq[i])) * mean[k]
		}
		out[j] = alpha * acc
	}
	return out, nil
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
	v, err := dequantizeValues(n, x, inits)
	return v, x.GetDims(), err
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
