package model

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// Opset is one opset_import entry; Domain "" is shown as ai.onnx.
type Opset struct {
	Domain  string `json:"domain"`
	Version int64  `json:"version"`
}

// OpCount is how many nodes of an operator a graph has.
type OpCount struct {
	Op    string `json:"op"`
	Count int    `json:"count"`
}

// InspectResult summarizes a model for `coordinator inspect`.
type InspectResult struct {
	// File is the model file, set by the caller ("" for a proto in memory).
	File            string      `json:"file,omitempty"`
	IRVersion       int64       `json:"ir_version"`
	Producer        string      `json:"producer,omitempty"`
	ProducerVersion string      `json:"producer_version,omitempty"`
	Opsets          []Opset     `json:"opsets"`
	Inputs          []ValueInfo `json:"inputs"`
	Outputs         []ValueInfo `json:"outputs"`
	Nodes           int         `json:"nodes"`
	// Ops counts the top-level nodes by operator, most frequent first.
	Ops          []OpCount `json:"ops"`
	Initializers int       `json:"initializers"`
	// Parameters is the number of elements in the initializers.
	Parameters int64 `json:"parameters"`
	// Quantizable names the nodes QuantizableNodes returns.
	Quantizable []string `json:"quantizable"`
	// Tensors, filled by WithTensors, lists every node output of the
	// top-level graph in graph order with the node that makes it and its
	// inferred type and shape (InferTypes): the names a statistics layout
	// or an ignored scope takes.
	Tensors []TensorEntry `json:"tensors,omitempty"`
}

// TensorEntry is one tensor of InspectResult.Tensors.
type TensorEntry struct {
	Name string `json:"name"`
	Node string `json:"node"`
	Op   string `json:"op"`
	// Type is the element type's ONNX name, "unknown" when InferTypes
	// could not tell; Shape is "unknown" when the rank is not known.
	Type  string `json:"type"`
	Shape string `json:"shape"`
}

// WithTensors adds the tensor list of p to r.
func (r *InspectResult) WithTensors(p *onnxpb.ModelProto) {
	types := InferTypes(p)
	r.Tensors = []TensorEntry{}
	for _, n := range p.GetGraph().GetNode() {
		for _, o := range n.GetOutput() {
			if o == "" {
				continue
			}
			e := TensorEntry{Name: o, Node: n.GetName(), Op: n.GetOpType(), Type: "unknown", Shape: "unknown"}
			if tt, ok := types.Of(o); ok {
				e.Type = ElemTypeName(tt.ElemType)
				e.Shape = ValueInfo{Shape: tt.Shape}.ShapeString()
			}
			r.Tensors = append(r.Tensors, e)
		}
	}
}

// Inspect summarizes p: IR version, opsets, inputs and outputs with types
// and shapes, nodes by operator and the quantizable nodes.
func Inspect(p *onnxpb.ModelProto) InspectResult {
	r := InspectResult{
		IRVersion:       p.GetIrVersion(),
		Producer:        p.GetProducerName(),
		ProducerVersion: p.GetProducerVersion(),
		Opsets:          []Opset{},
		Inputs:          Inputs(p),
		Outputs:         Outputs(p),
		Ops:             []OpCount{},
		Quantizable:     []string{},
	}
	for _, o := range p.GetOpsetImport() {
		d := o.GetDomain()
		if d == "" {
			d = "ai.onnx"
		}
		r.Opsets = append(r.Opsets, Opset{Domain: d, Version: o.GetVersion()})
	}
	g := p.GetGraph()
	r.Nodes = len(g.GetNode())
	counts := map[string]int{}
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if !isDefaultDomain(n.GetDomain()) {
			op = n.GetDomain() + "." + op
		}
		counts[op]++
	}
	for op, c := range counts {
		r.Ops = append(r.Ops, OpCount{op, c})
	}
	sort.Slice(r.Ops, func(i, j int) bool {
		if r.Ops[i].Count != r.Ops[j].Count {
			return r.Ops[i].Count > r.Ops[j].Count
		}
		return r.Ops[i].Op < r.Ops[j].Op
	})
	r.Initializers = len(g.GetInitializer())
	for _, t := range g.GetInitializer() {
		if n, err := numElements(t.GetDims()); err == nil {
			r.Parameters += n
		}
	}
	for _, n := range QuantizableNodes(p) {
		name := n.GetName()
		if name == "" && len(n.GetOutput()) > 0 {
			name = "(output " + n.GetOutput()[0] + ")"
		}
		r.Quantizable = append(r.Quantizable, name)
	}
	if r.Inputs == nil {
		r.Inputs = []ValueInfo{}
	}
	if r.Outputs == nil {
		r.Outputs = []ValueInfo{}
	}
	return r
}

// WriteText writes r as aligned text tables.
func (r InspectResult) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if r.File != "" {
		fmt.Fprintf(tw, "file:\t%s\n", r.File)
	}
	producer := r.Producer
	if r.ProducerVersion != "" {
		producer += " " + r.ProducerVersion
	}
	if producer != "" {
		fmt.Fprintf(tw, "producer:\t%s\n", producer)
	}
	fmt.Fprintf(tw, "ir_version:\t%d\n", r.IRVersion)
	var ops []string
	for _, o := range r.Opsets {
		ops = append(ops, fmt.Sprintf("%s %d", o.Domain, o.Version))
	}
	fmt.Fprintf(tw, "opsets:\t%s\n", strings.Join(ops, ", "))
	fmt.Fprintf(tw, "nodes:\t%d\n", r.Nodes)
	fmt.Fprintf(tw, "initializers:\t%d (%d parameters)\n", r.Initializers, r.Parameters)
	for _, sec := range []struct {
		title string
		vis   []ValueInfo
	}{{"inputs", r.Inputs}, {"outputs", r.Outputs}} {
		fmt.Fprintf(tw, "\n%s:\n", sec.title)
		fmt.Fprintf(tw, "  NAME\tTYPE\tSHAPE\n")
		for _, v := range sec.vis {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, v.Type(), v.ShapeString())
		}
	}
	fmt.Fprintf(tw, "\noperators:\n")
	fmt.Fprintf(tw, "  OP\tCOUNT\n")
	for _, o := range r.Ops {
		fmt.Fprintf(tw, "  %s\t%d\n", o.Op, o.Count)
	}
	fmt.Fprintf(tw, "\nquantizable nodes (%d):\n", len(r.Quantizable))
	for _, q := range r.Quantizable {
		fmt.Fprintf(tw, "  %s\n", q)
	}
	if r.Tensors != nil {
		fmt.Fprintf(tw, "\ntensors (%d):\n", len(r.Tensors))
		fmt.Fprintf(tw, "  NAME\tTYPE\tSHAPE\tNODE\tOP\n")
		for _, t := range r.Tensors {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", t.Name, t.Type, t.Shape, t.Node, t.Op)
		}
	}
	return tw.Flush()
}
