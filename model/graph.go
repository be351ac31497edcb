package model

import (
	"container/heap"
	"encoding/json"
	"fmt"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// ValueInfo describes a graph input or output.
type ValueInfo struct {
	Name string
	// ElemType is the TensorProto data type (1 = FLOAT); 0 if not a tensor
	// or unknown.
	ElemType int32
	// Shape has -1 for dynamic dimensions; nil when the rank is unknown.
	Shape []int64
	// DimNames holds the dim_param of each dimension ("" for static ones).
	DimNames []string
}

// Type is the ONNX name of the element type ("FLOAT").
func (v ValueInfo) Type() string { return ElemTypeName(v.ElemType) }

// ShapeString renders the shape with dim names for dynamic dimensions:
// "[N 3 16 16]"; "?" stands for an unnamed dynamic dimension.
func (v ValueInfo) ShapeString() string {
	if v.Shape == nil {
		return "unknown"
	}
	s := "["
	for i, d := range v.Shape {
		if i > 0 {
			s += " "
		}
		switch {
		case d >= 0:
			s += fmt.Sprint(d)
		case i < len(v.DimNames) && v.DimNames[i] != "":
			s += v.DimNames[i]
		default:
			s += "?"
		}
	}
	return s + "]"
}

// MarshalJSON adds the type name to the fields.
func (v ValueInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name     string   `json:"name"`
		Type     string   `json:"type"`
		ElemType int32    `json:"elem_type"`
		Shape    []int64  `json:"shape"`
		DimNames []string `json:"dim_names,omitempty"`
	}{v.Name, v.Type(), v.ElemType, v.Shape, v.DimNames})
}

func valueInfo(vi *onnxpb.ValueInfoProto) ValueInfo {
	v := ValueInfo{Name: vi.GetName()}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return v
	}
	v.ElemType = tt.GetElemType()
	if tt.Shape == nil {
		return v
	}
	v.Shape = make([]int64, len(tt.Shape.Dim))
	v.DimNames = make([]string, len(tt.Shape.Dim))
	named := false
	for i, d := range tt.Shape.Dim {
		v.Shape[i] = -1
		switch x := d.Value.(type) {
		case *onnxpb.TensorShapeProto_Dimension_DimValue:
			if x.DimValue >= 0 {
				v.Shape[i] = x.DimValue
			}
		case *onnxpb.TensorShapeProto_Dimension_DimParam:
			v.DimNames[i] = x.DimParam
			named = named || x.DimParam != ""
		}
	}
	if !named {
		v.DimNames = nil
	}
	return v
}

// Inputs returns the graph inputs that are not initializers (the inputs a
// user feeds).
func Inputs(p *onnxpb.ModelProto) []ValueInfo {
	g := p.GetGraph()
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var out []ValueInfo
	for _, vi := range g.GetInput() {
		if !inits[vi.GetName()] {
			out = append(out, valueInfo(vi))
		}
	}
	return out
}

// Outputs returns the graph outputs.
func Outputs(p *onnxpb.ModelProto) []ValueInfo {
	var out []ValueInfo
	for _, vi := range p.GetGraph().GetOutput() {
		out = append(out, valueInfo(vi))
	}
	return out
}

// Graph indexes the top-level graph of a model: who produces and who
// consumes each tensor, and the initializers by name. It is a snapshot:
// build a new one after editing the graph.
type Graph struct {
	g         *onnxpb.GraphProto
	index     map[*onnxpb.NodeProto]int
	uses      [][]string // per node: explicit inputs, then subgraph outer-scope names
	producer  map[string]*onnxpb.NodeProto
	consumers map[string][]*onnxpb.NodeProto
	inits     map[string]*onnxpb.TensorProto
}

// NewGraph indexes p's graph (an empty Graph if p has none).
func NewGraph(p *onnxpb.ModelProto) *Graph {
	g := p.GetGraph()
	x := &Graph{
		g:         g,
		index:     map[*onnxpb.NodeProto]int{},
		producer:  map[string]*onnxpb.NodeProto{},
		consumers: map[string][]*onnxpb.NodeProto{},
		inits:     map[string]*onnxpb.TensorProto{},
	}
	for _, t := range g.GetInitializer() {
		if _, dup := x.inits[t.GetName()]; !dup {
			x.inits[t.GetName()] = t
		}
	}
	x.uses = make([][]string, len(g.GetNode()))
	for i, n := range g.GetNode() {
		x.index[n] = i
		for _, o := range n.GetOutput() {
			if _, dup := x.producer[o]; o != "" && !dup {
				x.producer[o] = n
			}
		}
		seen := map[string]bool{}
		add := func(name string) {
			if name != "" && !seen[name] {
				seen[name] = true
				x.uses[i] = append(x.uses[i], name)
				x.consumers[name] = append(x.consumers[name], n)
			}
		}
		for _, in := range n.GetInput() {
			add(in)
		}
		for _, name := range outerNames(n) {
			add(name)
		}
	}
	return x
}

// outerNames lists the names a node's subgraphs use without defining them
// (implicit inputs from the enclosing scope), in first-use order.
func outerNames(n *onnxpb.NodeProto) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range n.GetAttribute() {
		gs := a.GetGraphs()
		if a.G != nil {
			gs = append([]*onnxpb.GraphProto{a.G}, gs...)
		}
		for _, g := range gs {
			for _, name := range freeNames(g, 0) {
				if !seen[name] {
					seen[name] = true
					out = append(out, name)
				}
			}
		}
	}
	return out
}

// maxGraphDepth bounds the recursion into nested subgraphs.
const maxGraphDepth = 64

func freeNames(g *onnxpb.GraphProto, depth int) []string {
	if depth > maxGraphDepth {
		return nil
	}
	defined := map[string]bool{}
	for _, vi := range g.GetInput() {
		defined[vi.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		defined[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			defined[o] = true
		}
	}
	var out []string
	seen := map[string]bool{}
	use := func(name string) {
		if name != "" && !defined[name] && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			use(in)
		}
		for _, a := range n.GetAttribute() {
			gs := a.GetGraphs()
			if a.G != nil {
				gs = append([]*onnxpb.GraphProto{a.G}, gs...)
			}
			for _, sg := range gs {
				for _, name := range freeNames(sg, depth+1) {
					use(name)
				}
			}
		}
	}
	for _, vi := range g.GetOutput() {
		use(vi.GetName())
	}
	return out
}

// Producer returns the node producing tensor, nil for graph inputs,
// initializers and unknown names.
func (x *Graph) Producer(tensor string) *onnxpb.NodeProto { return x.producer[tensor] }

// Consumers returns the nodes using tensor as an input (or, for nodes with
// subgraphs, from inside them), in graph order, each once.
func (x *Graph) Consumers(tensor string) []*onnxpb.NodeProto { return x.consumers[tensor] }

// Initializer returns the initializer named name, or nil.
func (x *Graph) Initializer(name string) *onnxpb.TensorProto { return x.inits[name] }

// IsGraphOutput reports whether tensor is an output of the graph.
func (x *Graph) IsGraphOutput(tensor string) bool {
	for _, o := range x.g.GetOutput() {
		if o.GetName() == tensor {
			return true
		}
	}
	return false
}

// TopoOrder returns the nodes in an order where every node comes after the
// producers of its inputs, keeping the graph's order where it allows. A
// cycle is an error (ErrCycle) naming a node on or behind it.
func (x *Graph) TopoOrder() ([]*onnxpb.NodeProto, error) {
	nodes := x.g.GetNode()
	indeg := make([]int, len(nodes))
	next := make([][]int, len(nodes))
	for i := range nodes {
		for _, name := range x.uses[i] {
			if p, ok := x.producer[name]; ok {
				j := x.index[p]
				next[j] = append(next[j], i)
				indeg[i]++
			}
		}
	}
	ready := &intHeap{}
	for i, d := range indeg {
		if d == 0 {
			*ready = append(*ready, i)
		}
	}
	heap.Init(ready)
	out := make([]*onnxpb.NodeProto, 0, len(nodes))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		out = append(out, nodes[i])
		for _, j := range next[i] {
			if indeg[j]--; indeg[j] == 0 {
				heap.Push(ready, j)
			}
		}
	}
	if len(out) < len(nodes) {
		for i, d := range indeg {
			if d > 0 {
				return nil, fmt.Errorf("graph %q: %w: %s and %d other nodes never get their inputs",
					x.g.GetName(), ErrCycle, nodeLabel(nodes[i]), len(nodes)-len(out)-1)
			}
		}
	}
	return out, nil
}

// nodeLabel names a node in messages: `node "conv1" (Conv)`; a node without
// a name is shown by its first output.
func nodeLabel(n *onnxpb.NodeProto) string {
	if n.GetName() != "" {
		return fmt.Sprintf("node %q (%s)", n.GetName(), n.GetOpType())
	}
	if len(n.GetOutput()) > 0 {
		return fmt.Sprintf("node with output %q (%s)", n.GetOutput()[0], n.GetOpType())
	}
	return fmt.Sprintf("unnamed node (%s)", n.GetOpType())
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
