package model

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// Element types used by the type rules, besides those of tensor.go.
const (
	typeUint8  = int32(onnxpb.TensorProto_UINT8)
	typeInt32  = int32(onnxpb.TensorProto_INT32)
	typeString = int32(onnxpb.TensorProto_STRING)
	typeBool   = int32(onnxpb.TensorProto_BOOL)
)

// TensorType is the element type (TensorProto data type, 1 = FLOAT, 7 =
// INT64, 10 = FLOAT16...; 0 = unknown) and shape (-1 for an unknown dim; nil
// when the rank is unknown) of a tensor.
type TensorType struct {
	ElemType int32
	Shape    []int64
}

// String renders the type as "FLOAT[1 3 8 8]", "INT64[?]" or "?[unknown]".
func (t TensorType) String() string {
	s := "?"
	if t.ElemType != 0 {
		s = ElemTypeName(t.ElemType)
	}
	return s + ValueInfo{Shape: t.Shape}.ShapeString()
}

func (t TensorType) clone() TensorType {
	if t.Shape != nil {
		t.Shape = append([]int64{}, t.Shape...)
	}
	return t
}

// Types holds the inferred type of every tensor of a model's graph
// (top-level and, for diagnostics, sub-graphs).
type Types struct {
	top       map[string]TensorType
	sub       map[string]TensorType
	unknown   []string
	conflicts []string
}

// InferTypes infers the element type and, where it is cheap and certain,
// the shape of every tensor of p's graph: graph inputs, initializers,
// Constant nodes and declared value_info/outputs are the seeds, and the
// nodes are walked in topological order (graph order on a cycle) with one
// rule per ai.onnx operator. It never fails: what cannot be inferred (custom
// domains, sequences, unknown operators) is unknown. A declared type wins
// over an inferred one; a disagreement is recorded in Conflicts.
//
// Small int64/int32 constants are folded through exported shape arithmetic
// (Shape, Gather, Slice, Concat, Cast, Unsqueeze, Squeeze, Reshape, integer
// Add, Sub, Mul and Div), so that a Reshape's shape or a Resize's sizes
// computed from Shape at run time give known dims once the graph inputs'
// shapes are known (a calibration sample's shapes set into p's inputs).
func InferTypes(p *onnxpb.ModelProto) *Types {
	t := &Types{top: map[string]TensorType{}, sub: map[string]TensorType{}}
	g := p.GetGraph()
	if g == nil {
		return t
	}
	inf := &inferer{t: t, opset: aiOnnxOpset(p)}
	s := inf.graph(g, nil, nil, 0)
	t.top = s.types
	seen := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			if o != "" && !seen[o] && s.types[o].ElemType == 0 {
				seen[o] = true
				t.unknown = append(t.unknown, o)
			}
		}
	}
	return t
}

// Of returns the type of a top-level graph tensor (input, initializer or
// node output); ok is false when its element type is unknown.
func (t *Types) Of(name string) (TensorType, bool) {
	tt, ok := t.top[name]
	if !ok || tt.ElemType == 0 {
		return tt.clone(), false
	}
	return tt.clone(), true
}

// InSubgraph returns the type of a tensor defined inside a sub-graph (If
// branches, Loop and Scan bodies; the first definition of a name wins), for
// diagnostics; ok is false when its element type is unknown.
func (t *Types) InSubgraph(name string) (TensorType, bool) {
	tt, ok := t.sub[name]
	return tt.clone(), ok && tt.ElemType != 0
}

// IsFloat32 reports whether a top-level tensor is known to be FLOAT.
func (t *Types) IsFloat32(name string) bool {
	tt, ok := t.Of(name)
	return ok && tt.ElemType == TypeFloat
}

// Unknown returns the top-level node outputs whose element type could not
// be inferred, in graph order.
func (t *Types) Unknown() []string { return append([]string(nil), t.unknown...) }

// Conflicts describes the tensors whose declared type (value_info, graph
// output, sub-graph input) disagrees with what the rules infer, and If
// branches that disagree; the declared (then-branch) type is kept.
func (t *Types) Conflicts() []string { return append([]string(nil), t.conflicts...) }

// aiOnnxOpset is the ai.onnx opset of p; without an import the newest.
func aiOnnxOpset(p *onnxpb.ModelProto) int64 {
	for _, o := range p.GetOpsetImport() {
		if isDefaultDomain(o.GetDomain()) {
			return o.GetVersion()
		}
	}
	return 21
}

// constVal is the value of a small constant tensor (shape arithmetic):
// integers, or floats for FLOAT scales.
type constVal struct {
	shape  []int64
	ints   []int64
	floats []float64
	float  bool
}

// maxConstLen bounds the constants tracked for shape arithmetic.
const maxConstLen = 64

// scope is a graph's tensors, seeing those of the enclosing graphs.
type scope struct {
	parent   *scope
	types    map[string]TensorType
	consts   map[string]constVal
	declared map[string]TensorType
}

func (s *scope) lookup(name string) (TensorType, bool) {
	for x := s; x != nil; x = x.parent {
		if tt, ok := x.types[name]; ok {
			return tt, true
		}
	}
	return TensorType{}, false
}

func (s *scope) constant(name string) (constVal, bool) {
	for x := s; x != nil; x = x.parent {
		if _, ok := x.types[name]; ok {
			c, ok := x.consts[name]
			return c, ok
		}
	}
	return constVal{}, false
}

type inferer struct {
	t     *Types
	opset int64
}

func (inf *inferer) conflict(format string, args ...any) {
	if len(inf.t.conflicts) < 1000 {
		inf.t.conflicts = append(inf.t.conflicts, fmt.Sprintf(format, args...))
	}
}

// graph infers the tensors of g. inputs, when given, are the types the
// enclosing node feeds to g's inputs (positionally); declared input types
// win over them.
func (inf *inferer) graph(g *onnxpb.GraphProto, parent *scope, inputs []TensorType, depth int) *scope {
	s := &scope{
		parent:   parent,
		types:    map[string]TensorType{},
		consts:   map[string]constVal{},
		declared: map[string]TensorType{},
	}
	for _, vis := range [][]*onnxpb.ValueInfoProto{g.GetValueInfo(), g.GetOutput()} {
		for _, vi := range vis {
			v := valueInfo(vi)
			if _, dup := s.declared[v.Name]; !dup && (v.ElemType != 0 || v.Shape != nil) {
				s.declared[v.Name] = TensorType{v.ElemType, v.Shape}
			}
		}
	}
	for i, vi := range g.GetInput() {
		v := valueInfo(vi)
		tt := TensorType{v.ElemType, v.Shape}
		if i < len(inputs) {
			tt = inf.declaredWins(g, v.Name, tt, inputs[i], "")
		}
		if _, dup := s.types[v.Name]; !dup {
			s.types[v.Name] = tt
		}
	}
	for _, tp := range g.GetInitializer() {
		name := tp.GetName()
		if tt, ok := s.types[name]; ok && tt.ElemType != 0 {
			continue // declared as a graph input too (IR < 4)
		}
		s.types[name] = TensorType{tp.GetDataType(), append([]int64{}, tp.GetDims()...)}
		if c, ok := tensorConst(tp); ok {
			s.consts[name] = c
		}
	}
	for _, sp := range g.GetSparseInitializer() {
		name := sp.GetValues().GetName()
		if _, ok := s.types[name]; !ok && name != "" {
			s.types[name] = TensorType{sp.GetValues().GetDataType(), append([]int64{}, sp.GetDims()...)}
		}
	}

	order, err := NewGraph(&onnxpb.ModelProto{Graph: g}).TopoOrder()
	if err != nil {
		order = g.GetNode()
	}
	for _, n := range order {
		c := &nodeCtx{n: n, s: s, inf: inf, depth: depth}
		outs := c.infer()
		consts := c.fold()
		for i, o := range n.GetOutput() {
			if o == "" {
				continue
			}
			var tt TensorType
			if i < len(outs) {
				tt = outs[i].clone()
			}
			tt = inf.declaredWins(g, o, s.declared[o], tt, nodeLabel(n))
			if _, dup := s.types[o]; dup {
				continue // a second producer of a name: invalid, keep the first
			}
			s.types[o] = tt
			if i < len(consts) && consts[i] != nil && equalShape(consts[i].shape, tt.Shape) {
				s.consts[o] = *consts[i]
			}
		}
	}
	// Declared types of names nothing defines (e.g. outer-scope names in a
	// sub-graph's value_info) are left to the scope that defines them.
	if depth > 0 {
		for name, tt := range s.types {
			if _, dup := inf.t.sub[name]; !dup {
				inf.t.sub[name] = tt
			}
		}
	}
	return s
}

// declaredWins merges a declared type with an inferred one: the declared
// element type and known dims win; a disagreement is recorded.
func (inf *inferer) declaredWins(g *onnxpb.GraphProto, name string, decl, got TensorType, by string) TensorType {
	where := ""
	if by != "" {
		where = " by " + by
	}
	if decl.ElemType != 0 && got.ElemType != 0 && decl.ElemType != got.ElemType {
		inf.conflict("graph %q: tensor %q: declared %s, inferred %s%s", g.GetName(), name,
			ElemTypeName(decl.ElemType), ElemTypeName(got.ElemType), where)
	}
	out := TensorType{ElemType: decl.ElemType}
	if out.ElemType == 0 {
		out.ElemType = got.ElemType
	}
	switch {
	case decl.Shape == nil:
		out.Shape = got.Shape
	case got.Shape == nil:
		out.Shape = decl.Shape
	case len(decl.Shape) != len(got.Shape):
		inf.conflict("graph %q: tensor %q: declared shape %v, inferred %v%s", g.GetName(), name, decl.Shape, got.Shape, where)
		out.Shape = decl.Shape
	default:
		out.Shape = make([]int64, len(decl.Shape))
		for i, d := range decl.Shape {
			out.Shape[i] = d
			if d < 0 {
				out.Shape[i] = got.Shape[i]
			} else if got.Shape[i] >= 0 && got.Shape[i] != d {
				inf.conflict("graph %q: tensor %q: declared shape %v, inferred %v%s", g.GetName(), name, decl.Shape, got.Shape, where)
			}
		}
	}
	return out
}

func equalShape(a, b []int64) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// tensorConst returns the value of a small INT64, INT32 or FLOAT tensor.
func tensorConst(tp *onnxpb.TensorProto) (constVal, bool) {
	if tp == nil || isExternal(tp) || tp.Segment != nil {
		return constVal{}, false
	}
	n, err := numElements(tp.GetDims())
	if err != nil || n > maxConstLen {
		return constVal{}, false
	}
	c := constVal{shape: append([]int64{}, tp.GetDims()...)}
	switch tp.GetDataType() {
	case TypeInt64:
		v, err := TensorInt64(tp)
		if err != nil {
			return constVal{}, false
		}
		c.ints = v
	case typeInt32:
		switch {
		case tp.RawData != nil && int64(len(tp.RawData)) == 4*n:
			for i := int64(0); i < n; i++ {
				c.ints = append(c.ints, int64(int32(binary.LittleEndian.Uint32(tp.RawData[4*i:]))))
			}
		case tp.RawData == nil && int64(len(tp.Int32Data)) == n:
			for _, v := range tp.Int32Data {
				c.ints = append(c.ints, int64(v))
			}
		default:
			return constVal{}, false
		}
	case TypeFloat:
		v, err := TensorFloat32(tp)
		if err != nil {
			return constVal{}, false
		}
		c.float = true
		for _, f := range v {
			c.floats = append(c.floats, float64(f))
		}
	default:
		return constVal{}, false
	}
	if c.ints == nil && !c.float {
		c.ints = []int64{}
	}
	return c, true
}

// constantType is the type of a Constant node's output, and its value when
// small and numeric.
func constantType(n *onnxpb.NodeProto) (TensorType, *constVal) {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "value":
			if a.T == nil {
				continue
			}
			tt := TensorType{a.T.GetDataType(), append([]int64{}, a.T.GetDims()...)}
			if c, ok := tensorConst(a.T); ok {
				return tt, &c
			}
			return tt, nil
		case "sparse_value":
			if a.SparseTensor == nil {
				continue
			}
			return TensorType{a.SparseTensor.GetValues().GetDataType(), append([]int64{}, a.SparseTensor.GetDims()...)}, nil
		case "value_float":
			return TensorType{TypeFloat, []int64{}}, &constVal{shape: []int64{}, floats: []float64{float64(a.GetF())}, float: true}
		case "value_floats":
			c := &constVal{shape: []int64{int64(len(a.Floats))}, float: true}
			for _, f := range a.Floats {
				c.floats = append(c.floats, float64(f))
			}
			if len(a.Floats) > maxConstLen {
				c = nil
			}
			return TensorType{TypeFloat, []int64{int64(len(a.Floats))}}, c
		case "value_int":
			return TensorType{TypeInt64, []int64{}}, &constVal{shape: []int64{}, ints: []int64{a.GetI()}}
		case "value_ints":
			c := &constVal{shape: []int64{int64(len(a.Ints))}, ints: append([]int64{}, a.Ints...)}
			if len(a.Ints) > maxConstLen {
				c = nil
			}
			return TensorType{TypeInt64, []int64{int64(len(a.Ints))}}, c
		case "value_string":
			return TensorType{typeString, []int64{}}, nil
		case "value_strings":
			return TensorType{typeString, []int64{int64(len(a.Strings))}}, nil
		}
	}
	return TensorType{}, nil
}

// unknownDims is a shape of known rank and unknown dims.
func unknownDims(rank int) []int64 {
	if rank < 0 {
		return nil
	}
	s := make([]int64, rank)
	for i := range s {
		s[i] = -1
	}
	return s
}

// prodDims multiplies dims, -1 if one is unknown or the product overflows.
func prodDims(dims []int64) int64 {
	p := int64(1)
	for _, d := range dims {
		if d < 0 {
			return -1
		}
		if d != 0 && p > math.MaxInt64/d {
			return -1
		}
		p *= d
	}
	return p
}
