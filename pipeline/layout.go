package pipeline

import (
	"slices"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/reduce"
)

// NodeAliases maps a tensor collected for a layout to the node names the
// layout asked for it by (NodeIndex.Resolve).
type NodeAliases map[string][]string

// NodeIndex knows the tensor names of a model and the first output of each
// of its nodes: what Resolve needs, built once per model.
type NodeIndex struct {
	tensors  map[string]bool
	firstOut map[string]string
}

// NewNodeIndex indexes the models (the stages of one, in order).
func NewNodeIndex(stages []*onnxpb.ModelProto) *NodeIndex {
	x := &NodeIndex{tensors: map[string]bool{}, firstOut: map[string]string{}}
	for _, p := range stages {
		g := p.GetGraph()
		for _, v := range g.GetInput() {
			x.tensors[v.GetName()] = true
		}
		for _, t := range g.GetInitializer() {
			x.tensors[t.GetName()] = true
		}
		for _, n := range g.GetNode() {
			for _, o := range n.GetOutput() {
				x.tensors[o] = true
			}
			if n.GetName() != "" && len(n.GetOutput()) > 0 && n.GetOutput()[0] != "" {
				if _, dup := x.firstOut[n.GetName()]; !dup {
					x.firstOut[n.GetName()] = n.GetOutput()[0]
				}
			}
		}
	}
	return x
}

// Resolve lets a statistics layout name nodes, as POT's stats_layout does:
// a name that is no tensor of the model but a node's name stands for the
// node's first output. It returns the layout to collect, keyed by tensors
// (the specs of a node and of its output merged), and the node names
// asked for each tensor; nil aliases when the layout names tensors only.
// Names that are neither are left for the engine to refuse. A nil index
// resolves nothing.
func (x *NodeIndex) Resolve(layout StatsLayout) (StatsLayout, NodeAliases) {
	if x == nil || len(layout) == 0 {
		return layout, nil
	}
	tensors, firstOut := x.tensors, x.firstOut
	var aliases NodeAliases
	for name := range layout {
		if t, ok := firstOut[name]; ok && !tensors[name] {
			if aliases == nil {
				aliases = NodeAliases{}
			}
			aliases[t] = append(aliases[t], name)
		}
	}
	if aliases == nil {
		return layout, nil
	}
	out := StatsLayout{}
	add := func(tensor string, specs []StatSpec) {
		for _, s := range specs {
			if !slices.ContainsFunc(out[tensor], func(o StatSpec) bool { return o.Key() == s.Key() }) {
				out[tensor] = append(out[tensor], s)
			}
		}
	}
	for name, specs := range layout {
		if t, ok := firstOut[name]; ok && !tensors[name] {
			add(t, specs)
		} else {
			add(name, specs)
		}
	}
	for _, names := range aliases {
		slices.Sort(names)
	}
	return out, aliases
}

// Apply files the statistics of s collected on each aliased tensor under
// the node names asked for (each name gets the statistics its layout
// entry asked for); the tensor keeps those its own entry asked for, none
// when layout did not name it.
func (a NodeAliases) Apply(s *reduce.Set, layout StatsLayout) {
	if s == nil {
		return
	}
	for tensor, names := range a {
		for _, name := range names {
			keys := map[string]bool{}
			for _, spec := range layout[name] {
				keys[spec.Key()] = true
			}
			copyKeys(s.Stats, tensor, name, keys)
			copyKeys(s.Hists, tensor, name, keys)
			copyKeys(s.Folds, tensor, name, keys)
			if n, ok := s.NonFinite[tensor]; ok {
				s.NonFinite[name] = n
			}
		}
		specs, asked := layout[tensor]
		if !asked {
			delete(s.Stats, tensor)
			delete(s.Hists, tensor)
			delete(s.Folds, tensor)
			delete(s.NonFinite, tensor)
			continue
		}
		// The tensor keeps what its own entry asked for.
		keys := map[string]bool{}
		for _, spec := range specs {
			keys[spec.Key()] = true
		}
		keepKeys(s.Stats, tensor, keys)
		keepKeys(s.Hists, tensor, keys)
		keepKeys(s.Folds, tensor, keys)
	}
}

// keepKeys drops the statistics of tensor not in keys.
func keepKeys[V any](m map[string]map[string]V, tensor string, keys map[string]bool) {
	for k := range m[tensor] {
		if !keys[k] {
			delete(m[tensor], k)
		}
	}
}

// copyKeys copies the statistics keys of tensor into name.
func copyKeys[V any](m map[string]map[string]V, tensor, name string, keys map[string]bool) {
	src, ok := m[tensor]
	if !ok {
		return
	}
	dst := map[string]V{}
	for k, v := range src {
		if keys[k] {
			dst[k] = v
		}
	}
	if len(dst) > 0 {
		m[name] = dst
	}
}
