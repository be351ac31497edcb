package model

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// ConstantsToInitializers turns the top-level Constant nodes into
// initializers named after their output: `value` tensors, and
// value_float(s)/value_int(s) as FLOAT/INT64 scalars or 1-D tensors. Constants
// of other kinds (sparse, strings) and constants that are graph outputs stay
// nodes. It returns the number of nodes converted; an output name that is
// already an initializer is an error, and then p is unchanged.
func ConstantsToInitializers(p *onnxpb.ModelProto) (int, error) {
	g := p.GetGraph()
	if g == nil {
		return 0, ErrNoGraph
	}
	x := NewGraph(p)
	type conv struct {
		node *onnxpb.NodeProto
		t    *onnxpb.TensorProto
	}
	var todo []conv
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Constant" || !isDefaultDomain(n.GetDomain()) || len(n.GetOutput()) != 1 {
			continue
		}
		out := n.GetOutput()[0]
		if out == "" || x.IsGraphOutput(out) {
			continue
		}
		t := constantTensor(n)
		if t == nil {
			continue
		}
		if x.Initializer(out) != nil {
			return 0, fmt.Errorf("%s: output %q is also an initializer", nodeLabel(n), out)
		}
		t.Name = proto.String(out)
		todo = append(todo, conv{n, t})
	}
	if len(todo) == 0 {
		return 0, nil
	}
	drop := map[*onnxpb.NodeProto]bool{}
	for _, c := range todo {
		drop[c.node] = true
		g.Initializer = append(g.Initializer, c.t)
		if p.GetIrVersion() < 4 {
			// Before IR 4 every initializer must also be a graph input.
			g.Input = append(g.Input, tensorValueInfo(c.t))
		}
	}
	g.Node = slices.DeleteFunc(g.Node, func(n *onnxpb.NodeProto) bool { return drop[n] })
	return len(todo), nil
}

// constantTensor returns the value of a Constant node as a new tensor, nil
// for kinds it does not convert.
func constantTensor(n *onnxpb.NodeProto) *onnxpb.TensorProto {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "value":
			if a.T != nil && !isExternal(a.T) {
				return proto.Clone(a.T).(*onnxpb.TensorProto)
			}
		case "value_float":
			if a.F != nil {
				return NewTensorFloat32("", nil, []float32{a.GetF()})
			}
		case "value_floats":
			return NewTensorFloat32("", []int64{int64(len(a.Floats))}, a.Floats)
		case "value_int":
			if a.I != nil {
				return NewTensorInt64("", nil, []int64{a.GetI()})
			}
		case "value_ints":
			return NewTensorInt64("", []int64{int64(len(a.Ints))}, a.Ints)
		}
	}
	return nil
}

func tensorValueInfo(t *onnxpb.TensorProto) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range t.GetDims() {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{
			Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d},
		})
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(t.GetName()),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(t.GetDataType()),
			Shape:    shape,
		}}},
	}
}

// FoldBatchNorm folds every BatchNormalization (inference mode) whose input
// is produced by a Conv with constant (initializer) FLOAT weights and is
// consumed by that BatchNormalization only: the Conv's weight and bias are
// scaled and shifted, the Conv takes over the BatchNormalization's output,
// and the BatchNormalization and its now unused parameters go. Weights shared
// with other nodes are copied, never changed under them. Run
// ConstantsToInitializers first for models that store weights in Constant
// nodes. It returns the number of BatchNormalization nodes folded.
func FoldBatchNorm(p *onnxpb.ModelProto) (int, error) {
	g := p.GetGraph()
	if g == nil {
		return 0, ErrNoGraph
	}
	tried := map[*onnxpb.NodeProto]bool{}
	folded := 0
	for {
		x := NewGraph(p)
		var f *bnFold
		for _, n := range g.GetNode() {
			if n.GetOpType() != "BatchNormalization" || !isDefaultDomain(n.GetDomain()) || tried[n] {
				continue
			}
			tried[n] = true
			var err error
			if f, err = planBNFold(p, x, n); err != nil {
				return folded, err
			}
			if f != nil {
				break
			}
		}
		if f == nil {
			return folded, nil
		}
		f.apply(p, x)
		folded++
	}
}

type bnFold struct {
	bn, conv     *onnxpb.NodeProto
	weight, bias []float32
	dims         []int64
}

// planBNFold checks that bn can fold into its producer and computes the new
// weights; nil when it cannot.
func planBNFold(p *onnxpb.ModelProto, x *Graph, bn *onnxpb.NodeProto) (*bnFold, error) {
	in := bn.GetInput()
	if len(in) != 5 || slices.Contains(in, "") || len(bn.GetOutput()) == 0 || bn.GetOutput()[0] == "" {
		return nil, nil
	}
	for _, o := range bn.GetOutput()[1:] {
		if o != "" && (len(x.Consumers(o)) > 0 || x.IsGraphOutput(o)) {
			return nil, nil // training outputs in use
		}
	}
	if attrInt(bn, "training_mode", 0) != 0 || attrInt(bn, "spatial", 1) != 1 || getAttr(bn, "is_test") != nil && attrInt(bn, "is_test", 0) == 0 {
		return nil, nil
	}
	conv := x.Producer(in[0])
	if conv == nil || conv.GetOpType() != "Conv" || !isDefaultDomain(conv.GetDomain()) ||
		len(conv.GetOutput()) != 1 || len(conv.GetInput()) < 2 {
		return nil, nil
	}
	if c := x.Consumers(in[0]); len(c) != 1 || x.IsGraphOutput(in[0]) {
		return nil, nil
	}
	constant := func(name string) *onnxpb.TensorProto {
		t := x.Initializer(name)
		if t == nil || t.GetDataType() != TypeFloat || overridable(p, name) {
			return nil
		}
		return t
	}
	wt := constant(conv.GetInput()[1])
	if wt == nil || len(wt.GetDims()) < 3 || wt.GetDims()[0] <= 0 {
		return nil, nil
	}
	w, err := TensorFloat32(wt)
	if err != nil {
		return nil, fmt.Errorf("fold %s into %s: %w", nodeLabel(bn), nodeLabel(conv), err)
	}
	m := int(wt.GetDims()[0])
	var b []float32
	if len(conv.GetInput()) > 2 && conv.GetInput()[2] != "" {
		bt := constant(conv.GetInput()[2])
		if bt == nil {
			return nil, nil
		}
		if b, err = TensorFloat32(bt); err != nil {
			return nil, fmt.Errorf("fold %s into %s: %w", nodeLabel(bn), nodeLabel(conv), err)
		}
	} else {
		b = make([]float32, m)
	}
	var params [4][]float32 // scale, B, mean, var
	for i := range params {
		t := constant(in[i+1])
		if t == nil {
			return nil, nil
		}
		if params[i], err = TensorFloat32(t); err != nil {
			return nil, fmt.Errorf("fold %s into %s: %w", nodeLabel(bn), nodeLabel(conv), err)
		}
	}
	if len(b) != m || len(params[0]) != m || len(params[1]) != m || len(params[2]) != m || len(params[3]) != m {
		return nil, fmt.Errorf("fold %s into %s: %w: %d output channels, bias and batch-norm parameters of lengths %d, %d, %d, %d, %d",
			nodeLabel(bn), nodeLabel(conv), ErrTensor, m, len(b), len(params[0]), len(params[1]), len(params[2]), len(params[3]))
	}
	eps := float64(attrFloat(bn, "epsilon", 1e-5))
	per := len(w) / m
	nw := make([]float32, len(w))
	nb := make([]float32, m)
	for c := 0; c < m; c++ {
		// y = scale*(conv(x)+b-mean)/sqrt(var+eps) + B
		f := float64(params[0][c]) / math.Sqrt(float64(params[3][c])+eps)
		for k := c * per; k < (c+1)*per; k++ {
			nw[k] = float32(float64(w[k]) * f)
		}
		nb[c] = float32((float64(b[c])-float64(params[2][c]))*f + float64(params[1][c]))
	}
	return &bnFold{bn: bn, conv: conv, weight: nw, bias: nb, dims: wt.GetDims()}, nil
}

// overridable reports whether the initializer name is also a graph input a
// user may feed (IR 4 and later; before, every initializer is an input).
func overridable(p *onnxpb.ModelProto, name string) bool {
	return p.GetIrVersion() >= 4 && isGraphInput(p, name)
}

func isGraphInput(p *onnxpb.ModelProto, name string) bool {
	for _, vi := range p.GetGraph().GetInput() {
		if vi.GetName() == name {
			return true
		}
	}
	return false
}

func (f *bnFold) apply(p *onnxpb.ModelProto, x *Graph) {
	g := p.Graph
	u := modelNames(p)
	// exclusive reports whether only node uses the initializer name.
	exclusive := func(name string, node *onnxpb.NodeProto) bool {
		c := x.Consumers(name)
		return len(c) == 1 && c[0] == node && !x.IsGraphOutput(name) && !overridable(p, name)
	}
	add := func(t *onnxpb.TensorProto) {
		g.Initializer = append(g.Initializer, t)
		if p.GetIrVersion() < 4 {
			g.Input = append(g.Input, tensorValueInfo(t))
		}
	}
	replace := func(name string, t *onnxpb.TensorProto) {
		for i, it := range g.Initializer {
			if it.GetName() == name {
				g.Initializer[i] = t
				return
			}
		}
	}
	wName := f.conv.Input[1]
	if exclusive(wName, f.conv) {
		replace(wName, NewTensorFloat32(wName, f.dims, f.weight))
	} else {
		n := u.fresh(wName + "_bnfolded")
		add(NewTensorFloat32(n, f.dims, f.weight))
		f.conv.Input[1] = n
	}
	m := int64(len(f.bias))
	if len(f.conv.Input) > 2 && f.conv.Input[2] != "" && exclusive(f.conv.Input[2], f.conv) {
		replace(f.conv.Input[2], NewTensorFloat32(f.conv.Input[2], []int64{m}, f.bias))
	} else {
		n := u.fresh(wName + "_bnfolded_bias")
		add(NewTensorFloat32(n, []int64{m}, f.bias))
		if len(f.conv.Input) > 2 {
			f.conv.Input[2] = n
		} else {
			f.conv.Input = append(f.conv.Input, n)
		}
	}
	mid := f.conv.Output[0]
	f.conv.Output[0] = f.bn.Output[0]
	g.Node = slices.DeleteFunc(g.Node, func(n *onnxpb.NodeProto) bool { return n == f.bn })
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == mid })
	unused := map[string]bool{}
	for _, name := range f.bn.Input[1:] {
		c := x.Consumers(name)
		if len(c) == 1 && c[0] == f.bn && !x.IsGraphOutput(name) && x.Initializer(name) != nil {
			unused[name] = true
		}
	}
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *onnxpb.TensorProto) bool { return unused[t.GetName()] })
	g.Input = slices.DeleteFunc(g.Input, func(vi *onnxpb.ValueInfoProto) bool { return unused[vi.GetName()] })
}

// FuseHardSwish rewrites the hard-swish activations exporters write as four
// elementwise nodes, x·Clip(x+3, 0, 6)/6 (paddle2onnx: Add, Clip, Mul, Div;
// tf2onnx and hand-written graphs: Add, Clip, Div or Mul by 1/6, Mul, in
// either operand order), into HardSigmoid(x; alpha 1/6, beta 0.5) and one
// Mul, the form torch.onnx exports below opset 14. The value is the same
// function (it differs from the four-node form by float32 rounding only),
// and ONNX Runtime runs the two-node form fused into the Conv before it
// (its NCHWc Conv takes a hard-swish activation), while the four-node form
// costs four passes over the tensor and keeps the Conv unfused: on
// paddle2onnx's MobileNetV3 classifier the float model alone runs 1.3×
// faster (BENCHMARKS.md). Only patterns whose intermediate tensors nothing
// else reads are rewritten; constants that no node reads any more are
// removed. It returns the number of activations rewritten.
func FuseHardSwish(p *onnxpb.ModelProto) (int, error) {
	g := p.GetGraph()
	if g == nil {
		return 0, ErrNoGraph
	}
	x := NewGraph(p)
	u := modelNames(p)
	type fusion struct {
		first *onnxpb.NodeProto   // the Add: replaced by the HardSigmoid
		last  *onnxpb.NodeProto   // the final node: replaced by the Mul
		drop  []*onnxpb.NodeProto // the nodes in between
		input string
	}
	var todo []fusion
	used := map[*onnxpb.NodeProto]bool{}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Add" || !isDefaultDomain(n.GetDomain()) || used[n] {
			continue
		}
		f, ok := matchHardSwish(p, x, n)
		if !ok || slices.ContainsFunc(f.nodes, func(m *onnxpb.NodeProto) bool { return used[m] }) {
			continue
		}
		for _, m := range f.nodes {
			used[m] = true
		}
		todo = append(todo, fusion{first: n, last: f.nodes[len(f.nodes)-1], drop: f.nodes[1 : len(f.nodes)-1], input: f.input})
	}
	if len(todo) == 0 {
		return 0, nil
	}
	consts := map[string]bool{}
	drop := map[*onnxpb.NodeProto]bool{}
	replace := map[*onnxpb.NodeProto]*onnxpb.NodeProto{}
	for _, f := range todo {
		for _, m := range append([]*onnxpb.NodeProto{f.first, f.last}, f.drop...) {
			for _, in := range m.GetInput() {
				if x.Initializer(in) != nil {
					consts[in] = true
				}
			}
		}
		for _, m := range f.drop {
			drop[m] = true
		}
		out := f.last.GetOutput()[0]
		base := f.first.GetName()
		if base == "" {
			base = out
		}
		hs := u.fresh(base + "_hardsigmoid")
		replace[f.first] = NewNode("HardSigmoid", u.fresh(base+"/HardSigmoid"), []string{f.input}, []string{hs},
			float32Attr("alpha", 1.0/6), float32Attr("beta", 0.5))
		replace[f.last] = NewNode("Mul", u.fresh(base+"/HardSwishMul"), []string{f.input, hs}, []string{out})
	}
	for i, n := range g.Node {
		if r := replace[n]; r != nil {
			g.Node[i] = r
		}
	}
	g.Node = slices.DeleteFunc(g.Node, func(n *onnxpb.NodeProto) bool { return drop[n] })
	// The intermediate tensors are gone; so are constants nothing reads.
	// A subgraph (If, Loop, Scan) may read a constant from the outer scope.
	live := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, in := range slices.Concat(n.GetInput(), outerNames(n)) {
			live[in] = true
		}
		for _, o := range n.GetOutput() {
			live[o] = true
		}
	}
	for _, o := range g.GetOutput() {
		live[o.GetName()] = true
	}
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(v *onnxpb.ValueInfoProto) bool { return !live[v.GetName()] })
	unused := func(name string) bool { return consts[name] && !live[name] && !overridable(p, name) }
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *onnxpb.TensorProto) bool { return unused(t.GetName()) })
	if p.GetIrVersion() < 4 {
		g.Input = slices.DeleteFunc(g.Input, func(v *onnxpb.ValueInfoProto) bool { return unused(v.GetName()) })
	}
	return len(todo), nil
}

// hardSwishMatch is an exported hard-swish found by matchHardSwish: its
// nodes from the Add to the last one, and the tensor x it applies to.
type hardSwishMatch struct {
	nodes []*onnxpb.NodeProto
	input string
}

// matchHardSwish matches x·Clip(x+3, 0, 6)/6 starting at add:
// Add(x, 3) → Clip(0, 6) → then either Mul(x, ·) → Div(·, 6) (or Mul by
// 1/6), or Div(·, 6) (or Mul by 1/6) → Mul(x, ·).
func matchHardSwish(p *onnxpb.ModelProto, x *Graph, add *onnxpb.NodeProto) (hardSwishMatch, bool) {
	var m hardSwishMatch
	if len(add.GetInput()) != 2 || len(add.GetOutput()) != 1 {
		return m, false
	}
	in, c := add.GetInput()[0], add.GetInput()[1]
	if !isScalar(p, x, c, 3) {
		in, c = c, in
		if !isScalar(p, x, c, 3) {
			return m, false
		}
	}
	if x.Initializer(in) != nil {
		return m, false
	}
	// next returns the only reader of n's output, of type op, when nothing
	// else reads it and it is not a graph output.
	next := func(n *onnxpb.NodeProto, ops ...string) *onnxpb.NodeProto {
		o := n.GetOutput()[0]
		cs := x.Consumers(o)
		if len(cs) != 1 || x.IsGraphOutput(o) || !slices.Contains(ops, cs[0].GetOpType()) || !isDefaultDomain(cs[0].GetDomain()) ||
			len(cs[0].GetOutput()) != 1 || len(cs[0].GetInput()) < 1 {
			return nil
		}
		return cs[0]
	}
	other := func(n *onnxpb.NodeProto, t string) (string, bool) {
		if len(n.GetInput()) != 2 {
			return "", false
		}
		switch t {
		case n.GetInput()[0]:
			return n.GetInput()[1], true
		case n.GetInput()[1]:
			return n.GetInput()[0], true
		}
		return "", false
	}
	// bySix tells whether n divides its input t by 6 (Div by 6 or Mul by 1/6).
	bySix := func(n *onnxpb.NodeProto, t string) bool {
		if n.GetOpType() == "Div" {
			return len(n.GetInput()) == 2 && n.GetInput()[0] == t && isScalar(p, x, n.GetInput()[1], 6)
		}
		k, ok := other(n, t)
		return ok && isScalar(p, x, k, 1.0/6)
	}
	clip := next(add, "Clip")
	if clip == nil || !clipZeroSix(p, x, clip) {
		return m, false
	}
	a := next(clip, "Mul", "Div")
	if a == nil {
		return m, false
	}
	if k, ok := other(a, clip.GetOutput()[0]); ok && a.GetOpType() == "Mul" && k == in {
		// x·Clip(…), then /6
		b := next(a, "Div", "Mul")
		if b == nil || !bySix(b, a.GetOutput()[0]) {
			return m, false
		}
		return hardSwishMatch{nodes: []*onnxpb.NodeProto{add, clip, a, b}, input: in}, true
	}
	if !bySix(a, clip.GetOutput()[0]) {
		return m, false
	}
	b := next(a, "Mul")
	if k, ok := other(b, a.GetOutput()[0]); b == nil || !ok || k != in {
		return m, false
	}
	return hardSwishMatch{nodes: []*onnxpb.NodeProto{add, clip, a, b}, input: in}, true
}

// clipZeroSix tells whether n clips to [0, 6] (attributes before opset 11,
// constant inputs after).
func clipZeroSix(p *onnxpb.ModelProto, x *Graph, n *onnxpb.NodeProto) bool {
	if getAttr(n, "min") != nil || getAttr(n, "max") != nil {
		return len(n.GetInput()) == 1 && attrFloat(n, "min", -math.MaxFloat32) == 0 && attrFloat(n, "max", math.MaxFloat32) == 6
	}
	in := n.GetInput()
	return len(in) == 3 && isScalar(p, x, in[1], 0) && isScalar(p, x, in[2], 6)
}

// isScalar tells whether name is a constant float32 initializer holding
// one value equal to v in float32 (its user cannot override it), of rank 0
// or 1: a constant of higher rank (shape [1,1,1,1]) would broadcast x to
// its rank, which HardSigmoid·Mul does not.
func isScalar(p *onnxpb.ModelProto, x *Graph, name string, v float32) bool {
	t := x.Initializer(name)
	if t == nil || t.GetDataType() != TypeFloat || overridable(p, name) || len(t.GetDims()) > 1 {
		return false
	}
	vals, err := TensorFloat32(t)
	return err == nil && len(vals) == 1 && vals[0] == v
}

func float32Attr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}
