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
