package model

import "github.com/fleetcal/fleetcal/model/onnxpb"

// PrefixNames renames every node and every internal tensor of p (node
// outputs that are not graph outputs, initializers, value infos) to
// prefix+name, keeping the graph's inputs and outputs. The stages of a
// cascade get distinct names this way (POT prefixes them the same way), so
// that statistics keyed by tensor name cannot mix two stages' tensors.
func PrefixNames(p *onnxpb.ModelProto, prefix string) {
	g := p.GetGraph()
	keep := map[string]bool{"": true}
	for _, v := range g.Input {
		keep[v.GetName()] = true
	}
	for _, v := range g.Output {
		keep[v.GetName()] = true
	}
	rename := func(s string) string {
		if keep[s] {
			return s
		}
		return prefix + s
	}
	for _, t := range g.Initializer {
		if !keep[t.GetName()] {
			n := prefix + t.GetName()
			t.Name = &n
		}
	}
	for _, v := range g.ValueInfo {
		n := rename(v.GetName())
		v.Name = &n
	}
	for _, n := range g.Node {
		for i, in := range n.Input {
			n.Input[i] = rename(in)
		}
		for i, out := range n.Output {
			n.Output[i] = rename(out)
		}
		if n.Name != nil && n.GetName() != "" {
			name := prefix + n.GetName()
			n.Name = &name
		}
	}
}
