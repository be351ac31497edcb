package minmax

import (
	"fmt"
	"math"
	"slices"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// Operator roles in a QDQ model, chosen for what ONNX Runtime's CPU
// execution provider fuses into integer kernels:
//   - compute ops take quantized inputs and (when their consumers are
//     quantized too) produce a quantized output: DQ → Conv → Q becomes
//     QLinearConv, DQ → MatMul → Q QLinearMatMul, DQ → Gemm → Q QGemm,
//     DQ,DQ → Add → Q QLinearAdd, and so on;
//   - pass-through ops move quantized values unchanged, so their output
//     shares their input's parameters and ORT drops the Q/DQ around them
//     (MaxPool on uint8, Reshape, Flatten, ...).
var (
	computeOps = map[string]bool{
		"Conv": true, "Gemm": true, "MatMul": true,
		"Add": true, "Mul": true,
		"AveragePool": true, "GlobalAveragePool": true, "Concat": true,
	}
	// transformerComputeOps: POT's model_type "transformer" keeps the
	// elementwise operations of attention blocks in float.
	transformerComputeOps = map[string]bool{"Gemm": true, "MatMul": true}
	passThroughOps        = map[string]bool{
		"MaxPool": true, "Reshape": true, "Flatten": true, "Transpose": true,
		"Squeeze": true, "Unsqueeze": true, "Identity": true,
	}
	// weightedOps have a constant weight at input 1 and maybe a bias at 2.
	weightedOps = map[string]bool{"Conv": true, "Gemm": true, "MatMul": true}
)

// layer is a compute node whose inputs are quantized.
type layer struct {
	node *onnxpb.NodeProto
	// input is the activation the layer reads (its first input).
	input string
	// weight and bias are initializer names ("" when absent).
	weight, bias string
	// weightAxis is the output-channel axis of the weight.
	weightAxis int
	// perChannel tells whether the weight is quantized per channel.
	perChannel bool
	// first marks a first weighted layer: it has a weight and no other
	// layer with a weight precedes it on any path from a graph input
	// (saturation_fix "first_layer" gives it 7-bit weights).
	first bool
}

// activation is a tensor that gets a QuantizeLinear/DequantizeLinear pair.
type activation struct {
	name string
	// shares names the tensor whose parameters this one reuses (the input of
	// a pass-through op), "" when it has its own statistics.
	shares string
	// nonNegative marks the output of a Relu folded into its producer: its
	// range starts at 0 so uint8 with zero point 0 reproduces the Relu.
	nonNegative bool
}

// plan is what MinMaxQuantization does to a model.
type plan struct {
	layers      []layer
	activations []activation
	// bypass lists Relu nodes folded into the quantization of their input.
	bypass []string
	// ignored lists the ignored scope names that matched no node.
	unmatchedScope []string
	// untyped lists, in graph order, the tensors a quantizable node reads
	// whose element type is unknown; those nodes stay in float.
	untyped []string
	// slow lists, in graph order, the layers the cost rule left in float.
	slow []SlowLayer
}

// SlowLayer is a layer the cost rule (min_macs_per_element) left in float.
type SlowLayer struct {
	Node string `json:"node"`
	Op   string `json:"op"`
	// MACsPerElement is the layer's multiply-adds per activation element it
	// reads or writes (0 for an elementwise op).
	MACsPerElement float64 `json:"macs_per_element,omitempty"`
	// MACs is its multiply-adds per sample at the calibration sample's
	// input shapes (0 when unknown).
	MACs   int64  `json:"macs,omitempty"`
	Reason string `json:"reason"`
}

type planOptions struct {
	transformer       bool
	ignoredScope      []string
	ignoredOperations []string
	perChannelWeights bool
	// minMACsPerElement > 0 turns the cost rule on (see costOf).
	minMACsPerElement float64
	// shapes, when set, are the tensor types with the graph inputs' shapes
	// of a calibration sample: the cost rule reads layer sizes from them.
	shapes *model.Types
}

// makePlan decides which tensors and weights to quantize. nodes must be in
// topological order; types are the graph's inferred tensor types: only
// float32 tensors get statistics and QDQ pairs (int64 shape arithmetic,
// booleans, float16 islands stay as they are). The result depends only on
// the graph and the options.
func makePlan(g *onnxpb.GraphProto, types *model.Types, nodes []*onnxpb.NodeProto, opt planOptions) plan {
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.Initializer {
		inits[t.GetName()] = t
	}
	consumers := map[string][]*onnxpb.NodeProto{}
	for _, n := range nodes {
		for _, in := range n.Input {
			consumers[in] = append(consumers[in], n)
		}
	}
	graphOutput := map[string]bool{}
	for _, o := range g.Output {
		graphOutput[o.GetName()] = true
	}
	ignoredNode := map[string]bool{}
	matched := map[string]bool{}
	for _, n := range nodes {
		if slices.Contains(opt.ignoredScope, n.GetName()) {
			ignoredNode[n.GetName()] = true
			matched[n.GetName()] = true
		}
		if slices.Contains(opt.ignoredOperations, n.GetOpType()) {
			ignoredNode[n.GetName()] = true
		}
	}
	ops := computeOps
	if opt.transformer {
		ops = transformerComputeOps
	}

	var p plan
	for _, s := range opt.ignoredScope {
		if !matched[s] {
			p.unmatchedScope = append(p.unmatchedScope, s)
		}
	}

	// quantizedInput: tensors some quantized node reads.
	quantizedInput := map[string]bool{}
	untyped := map[string]bool{}
	isActivation := func(name string) bool {
		if name == "" || inits[name] != nil {
			return false
		}
		if _, known := types.Of(name); !known {
			untyped[name] = true
			return false
		}
		return types.IsFloat32(name)
	}
	layerOf := map[*onnxpb.NodeProto]bool{}
	// int8Out: tensors an INT8 layer writes (or a pass-through op moves) as
	// uint8 under the cost rule, so that an elementwise op reading only such
	// tensors adds no QuantizeLinear of its own.
	int8Out := map[string]bool{}
	// readInt8 tells whether every reader of tensor can take it as uint8:
	// compute ops (a Conv, MatMul or Gemm only if it will pay in INT8 with
	// a uint8 input), and pass-through and int8UnaryOps ops whose own
	// readers can (looking depth ops ahead).
	var readInt8 func(tensor string, depth int) bool
	readInt8 = func(tensor string, depth int) bool {
		if graphOutput[tensor] || depth == 0 {
			return false
		}
		for _, c := range consumers[tensor] {
			switch op := c.GetOpType(); {
			case ignoredNode[c.GetName()]:
				return false
			case weightedOps[op] && ops[op]:
				w, ok := weightOf(c, inits)
				if !ok || len(c.Output) != 1 {
					return false
				}
				macs, out := perPosition(c, inits[w].GetDims())
				if !readInt8(c.Output[0], depth-1) && !(out > 0 && macs/out >= opt.minMACsPerElement) {
					return false
				}
			case ops[op]:
			case (passThroughOps[op] || int8UnaryOps[op]) && len(c.Output) == 1:
				if !readInt8(c.Output[0], depth-1) {
					return false
				}
			default:
				return false
			}
		}
		return len(consumers[tensor]) > 0
	}
	// Under the cost rule, the INT8 layers connected through uint8 tensors
	// form regions (union-find over p.layers' indices): origin is the layer
	// whose region a uint8 tensor belongs to, macs each layer's
	// multiply-adds (-1: unknown).
	origin := map[string]int{}
	var parent []int
	var macs, weights []int64
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, n := range nodes {
		op := n.GetOpType()
		if opt.minMACsPerElement > 0 && (passThroughOps[op] || int8UnaryOps[op]) && len(n.Input) > 0 && len(n.Output) == 1 && int8Out[n.Input[0]] {
			int8Out[n.Output[0]] = true
			origin[n.Output[0]] = origin[n.Input[0]]
		}
		if !ops[op] || ignoredNode[n.GetName()] || len(n.Input) == 0 {
			continue
		}
		l := layer{node: n, input: n.Input[0], perChannel: opt.perChannelWeights}
		acts := n.Input
		if weightedOps[op] {
			w, ok := weightOf(n, inits)
			if ok {
				l.weight, l.weightAxis = w, weightAxis(n, inits[w])
				if op != "Conv" {
					// ORT's QGemm / QLinearMatMul fusions want per-tensor weights.
					l.perChannel = false
				}
				if b := biasOf(n, inits); b != "" {
					l.bias = b
				}
				acts = n.Input[:1]
			} else if op == "Gemm" || op == "Conv" {
				continue // a Conv/Gemm with a computed weight stays in float
			}
		}
		ok := true
		for _, in := range acts {
			if !isActivation(in) {
				ok = false // elementwise with a constant operand: keep in float
			}
		}
		if !ok {
			continue
		}
		if opt.minMACsPerElement > 0 {
			outBoundary, act := 0.0, ""
			if len(n.Output) != 1 || !readInt8(n.Output[0], 3) {
				outBoundary = 1
				if len(n.Output) == 1 && weightedOps[op] {
					for _, c := range consumers[n.Output[0]] {
						if floatFusedActivations[c.GetOpType()] {
							outBoundary, act = UnfusedActivationCost, c.GetOpType()
						}
					}
				}
			}
			positions := int64(0)
			if opt.shapes != nil {
				positions = outputPositions(opt.shapes, n)
			}
			sl, slow := costOf(n, inits, l.weight, acts, int8Out, outBoundary, act, positions, opt.minMACsPerElement)
			if slow {
				p.slow = append(p.slow, sl)
				continue
			}
			li := len(p.layers)
			parent = append(parent, li)
			weights = append(weights, 0)
			if l.weight != "" && positions == 1 && n.GetOpType() == "Conv" {
				weights[li] = elements(inits[l.weight].GetDims())
			}
			switch {
			case l.weight == "":
				macs = append(macs, 0)
			case sl.MACs > 0:
				macs = append(macs, sl.MACs)
			default:
				macs = append(macs, -1)
			}
			for _, in := range acts {
				if int8Out[in] {
					parent[find(li)] = find(origin[in])
				}
			}
			for _, o := range n.Output {
				int8Out[o] = true
				origin[o] = li
			}
			if cs := consumers[n.Output[0]]; len(n.Output) == 1 && len(cs) == 1 && cs[0].GetOpType() == "Relu" && len(cs[0].Output) == 1 {
				int8Out[cs[0].Output[0]] = true
				origin[cs[0].Output[0]] = li
			}
			p.layers = append(p.layers, l)
			continue
		}
		for _, in := range acts {
			quantizedInput[in] = true
		}
		layerOf[n] = true
		p.layers = append(p.layers, l)
	}

	if opt.minMACsPerElement > 0 {
		p.layers = dropSmallRegions(&p, parent, macs, weights, find)
		for _, l := range p.layers {
			layerOf[l.node] = true
			acts := l.node.Input
			if l.weight != "" {
				acts = acts[:1]
			}
			for _, in := range acts {
				quantizedInput[in] = true
			}
		}
	}

	markFirstLayers(nodes, p.layers)

	// A quantized Conv's (MatMul's, Gemm's) output is quantized too,
	// whatever reads it: ONNX Runtime fuses DQ → Conv → Q into QLinearConv
	// only with the Q; without it, it runs a float Conv on weights
	// dequantized at every inference, slower than the FP32 model (exported
	// Hardswish, Add/Clip/Div/Mul after a Conv, left the Conv so), and a
	// MatMul followed by a bias Add becomes a float Gemm. A layer whose only
	// reader is a Relu has the Relu's output quantized instead, so that the
	// Relu folds away below.
	// A tensor read by an ignored node stays float: ignoring a node (as
	// AccuracyAwareQuantization does to a sensitive layer) keeps its
	// inputs in full precision.
	readByIgnored := func(tensor string) bool {
		return slices.ContainsFunc(consumers[tensor], func(c *onnxpb.NodeProto) bool { return ignoredNode[c.GetName()] })
	}
	for _, l := range p.layers {
		n := l.node
		if !weightedOps[n.GetOpType()] || l.weight == "" || len(n.Output) != 1 {
			continue
		}
		out := n.Output[0]
		if graphOutput[out] || !types.IsFloat32(out) || readByIgnored(out) {
			continue
		}
		if cs := consumers[out]; len(cs) == 1 && cs[0].GetOpType() == "Relu" && !ignoredNode[cs[0].GetName()] &&
			len(cs[0].Input) == 1 && len(cs[0].Output) == 1 {
			if r := cs[0].Output[0]; !graphOutput[r] && !readByIgnored(r) {
				quantizedInput[r] = true
			}
			continue
		}
		quantizedInput[out] = true
	}

	// Pass-through ops: their input is quantized when their output is, walking
	// backwards so chains (MaxPool → Flatten → Gemm) resolve.
	shares := map[string]string{}
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if !passThroughOps[n.GetOpType()] || ignoredNode[n.GetName()] || len(n.Output) != 1 || len(n.Input) == 0 {
			continue
		}
		out, in := n.Output[0], n.Input[0]
		if quantizedInput[out] && isActivation(in) && !graphOutput[in] {
			quantizedInput[in] = true
			shares[out] = in
		}
	}

	// Relu folding: a Relu that is the only consumer of a quantized layer's
	// output disappears; the layer's output takes the Relu's name and range.
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range nodes {
		for _, o := range n.Output {
			producer[o] = n
		}
	}
	nonNegative := map[string]bool{}
	for _, n := range nodes {
		if n.GetOpType() != "Relu" || ignoredNode[n.GetName()] || len(n.Input) != 1 || len(n.Output) != 1 {
			continue
		}
		in, out := n.Input[0], n.Output[0]
		pr := producer[in]
		if pr == nil || !layerOf[pr] || len(consumers[in]) != 1 || graphOutput[in] || !quantizedInput[out] {
			continue
		}
		p.bypass = append(p.bypass, n.GetName())
		nonNegative[out] = true
	}

	// Activations in a deterministic order: graph inputs, then node outputs
	// in topological order.
	seen := map[string]bool{}
	add := func(name string) {
		if !quantizedInput[name] || seen[name] {
			return
		}
		seen[name] = true
		p.activations = append(p.activations, activation{name: name, shares: resolveShare(shares, name), nonNegative: nonNegative[name]})
	}
	for _, in := range g.Input {
		add(in.GetName())
	}
	for _, n := range nodes {
		for _, o := range n.Output {
			add(o)
		}
	}
	for _, n := range nodes {
		for _, in := range n.Input {
			if untyped[in] {
				p.untyped = append(p.untyped, in)
				delete(untyped, in)
			}
		}
	}
	return p
}

// The cost rule (min_macs_per_element, on by default in
// DefaultQuantization) leaves in float the layers whose integer kernel, with
// the QuantizeLinear and DequantizeLinear it needs at INT8/float
// boundaries, costs ONNX Runtime more than the float kernel it replaces. It
// reads only the graph, so the model written does not depend on the CPU or
// on timing. From ONNX Runtime's profiles of the corpus (BENCHMARKS.md):
//   - a Conv, MatMul or Gemm pays in INT8 when it does enough multiply-adds
//     per activation element that crosses a boundary: its input unless an
//     INT8 layer wrote it (uint8 already), its output unless every reader
//     takes uint8 (compute ops, and pass-through ops, Relu, Sigmoid and
//     LeakyRelu whose readers do). Per output position a Conv does
//     Cout·(Cin/group)·kh·kw multiply-adds and moves Cin·stride_h·stride_w
//     input and Cout output elements; a MatMul or Gemm K·N, K and N: the
//     ratio does not depend on the spatial size or the batch. A layer
//     inside an INT8 chain (ResNet blocks, EfficientNet's SiLU as
//     QLinearSigmoid and QLinearMul) crosses no boundary and stays INT8;
//     the small-channel and depthwise convolutions between exported
//     Hardswish ops (Add/Clip/Div/HardSigmoid, float), squeeze-excite and
//     small attention matrices between float Softmax, LayerNormalization and
//     bias Adds fall below the threshold; an output read by an activation
//     ONNX Runtime fuses into a float Conv only (floatFusedActivations)
//     counts UnfusedActivationCost times;
//   - with the layers' sizes (the graph inputs shaped like calibration
//     sample 0, followed through shape arithmetic such as the Shape →
//     Slice → Concat that sizes an exported Resize: model.InferTypes), a
//     region of INT8 layers connected through uint8 tensors
//     needs MinRegionMACs multiply-adds in all, a weight element of a
//     layer on a 1×1 map counting as WeightMACs (squeeze-excite layers do
//     few multiply-adds but read as many weights, which INT8 shrinks 4×);
//   - an elementwise op (Add, Mul, Concat, pooling) is INT8 only when every
//     input it reads is already uint8 (written by an INT8 layer), so it
//     never adds a QuantizeLinear of its own.

// DefaultMinMACsPerElement is min_macs_per_element's default in
// DefaultQuantization.
const DefaultMinMACsPerElement = 48.0

// costOf applies the cost rule to node n (weight w, activation inputs
// acts): slow is true when n stays in float, with the reason.
func costOf(n *onnxpb.NodeProto, inits map[string]*onnxpb.TensorProto, w string, acts []string, int8Out map[string]bool, outBoundary float64, act string, positions int64, minMACs float64) (sl SlowLayer, slow bool) {
	sl = SlowLayer{Node: n.GetName(), Op: n.GetOpType()}
	if w == "" {
		for _, in := range acts {
			if !int8Out[in] {
				sl.Reason = fmt.Sprintf("input %q is not written by an INT8 layer: quantizing it would add a QuantizeLinear", in)
				return sl, true
			}
		}
		return sl, false
	}
	d := inits[w].GetDims()
	switch n.GetOpType() {
	case "Conv":
		if len(d) < 3 {
			return sl, false
		}
		g := max(attrInt(n, "group", 1), 1)
		cout, cinG := float64(d[0]), float64(d[1])
		k, st := 1.0, 1.0
		for _, v := range d[2:] {
			k *= float64(v)
		}
		for _, a := range n.Attribute {
			if a.GetName() == "strides" {
				for _, v := range a.GetInts() {
					st *= float64(max(v, 1))
				}
			}
		}
		in := cinG * float64(g) * st
		if int8Out[acts[0]] {
			in = 0 // its input is uint8 already: no QuantizeLinear
		}
		sl.MACsPerElement = perElement(cout*cinG*k, in, cout*outBoundary)
		sl.MACs = int64(cout*cinG*k) * positions
		if g > 1 && d[1] == 1 {
			sl.Reason = "depthwise convolution, "
		}
	default: // MatMul, Gemm: a 2-D weight
		if len(d) != 2 {
			return sl, false
		}
		kd, nd := float64(d[0]), float64(d[1])
		if n.GetOpType() == "Gemm" && attrInt(n, "transB", 0) != 0 {
			kd, nd = nd, kd
		}
		in := kd
		if int8Out[acts[0]] {
			in = 0
		}
		sl.MACsPerElement = perElement(kd*nd, in, nd*outBoundary)
		sl.MACs = int64(kd*nd) * positions
	}
	if sl.MACsPerElement >= minMACs {
		return sl, false
	}
	if outBoundary > 1 {
		sl.Reason += fmt.Sprintf("its output's activation (%s) runs fused into the float layer but apart after an INT8 one (output elements count %g times), ", act, outBoundary)
	}
	sl.Reason += fmt.Sprintf("%g multiply-adds per activation element, below min_macs_per_element %g: slower in INT8 than in float with ONNX Runtime", sl.MACsPerElement, minMACs)
	return sl, true
}

// outputPositions is the number of output positions of layer n per sample
// in shapes (a Conv's output spatial size, a MatMul's or Gemm's output rows
// but the batch); 0 when unknown.
func outputPositions(shapes *model.Types, n *onnxpb.NodeProto) int64 {
	if len(n.Output) == 0 {
		return 0
	}
	t, ok := shapes.Of(n.Output[0])
	if !ok || len(t.Shape) < 2 {
		return 0
	}
	dims := t.Shape[2:] // Conv: N, C, spatial...
	if n.GetOpType() != "Conv" {
		dims = t.Shape[1 : len(t.Shape)-1] // MatMul, Gemm: ..., rows, N
		if len(t.Shape) == 2 {
			dims = t.Shape[:1]
		}
	}
	p := int64(1)
	for _, d := range dims {
		if d <= 0 {
			return 0
		}
		p *= d
	}
	return p
}

// MinRegionMACs is the least number of multiply-adds (per sample, at the
// calibration sample's shapes) of a region of INT8 layers connected through
// uint8 tensors: a region pays a QuantizeLinear where it starts and a
// DequantizeLinear where it ends, and ONNX Runtime's integer kernels cost
// more than the float ones on small tensors (fmnist_mobilenetv3 at 28×28:
// QLinearConv 1,303 µs against 515 µs of float Conv). On the corpus
// (BENCHMARKS.md), ppocr_cls's regions (0.02M to 1.2M) made it 4–6 % slower
// than float, ppocr_det's from 2.4M up faster.
const MinRegionMACs = 2_000_000

// WeightMACs is what one weight element of a Conv with a single output
// position (a 1×1 map after a GlobalAveragePool: squeeze-excite) counts
// for, in multiply-adds, in a region's size
// (MinRegionMACs): a float layer reads its float32 weights at every
// inference, an INT8 layer a quarter of the bytes, and with one output
// position that traffic, not the multiply-adds, is the layer's time.
// From ONNX Runtime's profile of lraspp_mobilenet_v3_large (BENCHMARKS.md):
// its squeeze-excite 1×1 convolutions on a 1×1 map (672→168, 113K
// multiply-adds) ran 25 to 77 µs in float, 0.2 to 0.7 ns per multiply-add,
// where the large 1×1 convolutions ran 6 ps per multiply-add. A Gemm or
// MatMul head is not counted so: the Fashion-MNIST example's (fc1, 3136×128
// weights on a flattened map) made its whole graph one INT8 region that
// ran at 0.74× FP32 speed (report.json, 1,001 alternated runs).
const WeightMACs = 64

func elements(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= max(d, 0)
	}
	return n
}

// dropSmallRegions removes from p.layers the regions whose layers' sizes
// are all known and add up to less than MinRegionMACs (their multiply-adds,
// and WeightMACs for each weight element), moving them to p.slow; it
// returns the layers kept, in order.
func dropSmallRegions(p *plan, parent []int, macs, weights []int64, find func(int) int) []layer {
	total := map[int]int64{}
	regionMACs, regionWeights := map[int]int64{}, map[int]int64{}
	for i := range p.layers {
		r := find(i)
		if macs[i] < 0 || total[r] < 0 {
			total[r] = -1
			continue
		}
		total[r] += macs[i] + WeightMACs*weights[i]
		regionMACs[r] += macs[i]
		regionWeights[r] += weights[i]
	}
	var kept []layer
	for i, l := range p.layers {
		r := find(i)
		if t := total[r]; t < 0 || t >= MinRegionMACs {
			kept = append(kept, l)
			continue
		}
		size := fmt.Sprintf("does %d multiply-adds in all", regionMACs[r])
		if regionWeights[r] > 0 {
			size = fmt.Sprintf("does %d multiply-adds and reads %d weights on 1×1 maps in all, %d with a weight counted as %d multiply-adds", regionMACs[r], regionWeights[r], total[r], WeightMACs)
		}
		p.slow = append(p.slow, SlowLayer{Node: l.node.GetName(), Op: l.node.GetOpType(), MACs: max(macs[i], 0),
			Reason: fmt.Sprintf("its INT8 region (layers connected through uint8 tensors) %s, below %d: the QuantizeLinear/DequantizeLinear at its ends and the integer kernels' overhead on small tensors cost more than INT8 saves",
				size, MinRegionMACs)})
	}
	return kept
}

// perPosition is a weighted layer's multiply-adds and output elements per
// output position (Conv: Cout·(Cin/group)·kh·kw and Cout; MatMul, Gemm:
// K·N and N), from its weight's dims.
func perPosition(n *onnxpb.NodeProto, d []int64) (macs, out float64) {
	if n.GetOpType() == "Conv" {
		if len(d) < 3 {
			return 0, 0
		}
		macs = float64(d[0] * d[1])
		for _, v := range d[2:] {
			macs *= float64(v)
		}
		return macs, float64(d[0])
	}
	if len(d) != 2 {
		return 0, 0
	}
	nd := d[1]
	if n.GetOpType() == "Gemm" && attrInt(n, "transB", 0) != 0 {
		nd = d[0]
	}
	return float64(d[0] * d[1]), float64(nd)
}

// floatFusedActivations are the activations ONNX Runtime fuses into a float
// Conv (its NCHWc Conv takes Clip, HardSigmoid and hard-swish, the
// HardSigmoid and Mul pair, as activations) but runs as separate float
// kernels after a QLinearConv, on the dequantized output.
var floatFusedActivations = map[string]bool{"HardSigmoid": true, "HardSwish": true, "Clip": true, "Tanh": true}

// UnfusedActivationCost is how many times a weighted layer's output
// elements count as boundary elements when they feed a floatFusedActivation:
// after an INT8 layer the DequantizeLinear and the activation's own pass
// (hard-swish: HardSigmoid and Mul) come on top of the kernel; in float they
// cost nothing. From ONNX Runtime's profile of lraspp_mobilenet_v3_large
// (BENCHMARKS.md): its 1×1 expansions 80→184, 80→200 and 80→480 before a
// hard-swish (40 multiply-adds per boundary element with this factor) ran
// 7 to 18 µs slower in INT8, those of 112→672 and 160→960 (56 and 80)
// 9 to 70 µs faster.
const UnfusedActivationCost = 2

// int8UnaryOps keep a uint8 tensor uint8 in ONNX Runtime's QDQ fusions
// (QLinearSigmoid, QLinearLeakyRelu; a Relu folds into the Q before it).
var int8UnaryOps = map[string]bool{"Relu": true, "Sigmoid": true, "LeakyRelu": true}

// perElement is macs (per output position) over the activation elements
// per output position that cross an INT8/float boundary: in (0 when the
// input is uint8 already) and out (when a reader of the output stays in
// float). With no boundary it is +Inf: the layer sits inside an INT8 chain.
func perElement(macs, in, out float64) float64 {
	if in+out == 0 {
		return math.Inf(1)
	}
	return float64(int64(macs/(in+out)*10+0.5)) / 10
}

// markFirstLayers sets first on the layers with a weight that no other
// layer with a weight precedes: walking nodes in topological order, a
// tensor is "after a weighted layer" when a weighted layer produced it or
// any input of its producer is. Nodes outside the plan (float ones,
// normalization, pass-through ops) neither start nor stop the marking.
func markFirstLayers(nodes []*onnxpb.NodeProto, layers []layer) {
	weighted := map[*onnxpb.NodeProto]*layer{}
	for i := range layers {
		if layers[i].weight != "" {
			weighted[layers[i].node] = &layers[i]
		}
	}
	after := map[string]bool{}
	for _, n := range nodes {
		reached := false
		for _, in := range n.Input {
			reached = reached || after[in]
		}
		l := weighted[n]
		if l != nil && !reached {
			l.first = true
		}
		if reached || l != nil {
			for _, o := range n.Output {
				after[o] = true
			}
		}
	}
}

// resolveShare follows pass-through chains to the tensor with statistics.
func resolveShare(shares map[string]string, name string) string {
	s, ok := shares[name]
	if !ok {
		return ""
	}
	for {
		next, ok := shares[s]
		if !ok {
			return s
		}
		s = next
	}
}

// weightOf returns the constant weight input of a Conv, Gemm or MatMul.
func weightOf(n *onnxpb.NodeProto, inits map[string]*onnxpb.TensorProto) (string, bool) {
	if len(n.Input) < 2 {
		return "", false
	}
	w := inits[n.Input[1]]
	if w == nil || w.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return "", false
	}
	switch n.GetOpType() {
	case "MatMul", "Gemm":
		if len(w.Dims) != 2 {
			return "", false
		}
		if n.GetOpType() == "Gemm" && (attrInt(n, "transA", 0) != 0 || attrFloat(n, "alpha", 1) != 1 || attrFloat(n, "beta", 1) != 1) {
			return "", false
		}
	}
	return n.Input[1], true
}

// biasOf returns the 1-D constant bias of a Conv or Gemm.
func biasOf(n *onnxpb.NodeProto, inits map[string]*onnxpb.TensorProto) string {
	if n.GetOpType() == "MatMul" || len(n.Input) < 3 || n.Input[2] == "" {
		return ""
	}
	b := inits[n.Input[2]]
	if b == nil || len(b.Dims) != 1 || b.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return ""
	}
	return n.Input[2]
}

// weightAxis is the output-channel axis of a layer's weight.
func weightAxis(n *onnxpb.NodeProto, w *onnxpb.TensorProto) int {
	switch n.GetOpType() {
	case "Gemm":
		if attrInt(n, "transB", 0) != 0 {
			return 0
		}
		return 1
	case "MatMul":
		return len(w.Dims) - 1
	}
	return 0
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a.GetF()
		}
	}
	return def
}
