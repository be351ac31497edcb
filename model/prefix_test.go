package model

import (
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"slices"
	"testing"
)

func TestPrefixNames(t *testing.T) {
	p, err := LoadFile("../testdata/models/cascade_stage2.onnx")
	if err != nil {
		t.Fatal(err)
	}
	in, out := Inputs(p)[0].Name, Outputs(p)[0].Name
	PrefixNames(p, "head/")
	g := p.GetGraph()
	if Inputs(p)[0].Name != in || Outputs(p)[0].Name != out {
		t.Fatalf("graph input/output renamed: %s, %s", Inputs(p)[0].Name, Outputs(p)[0].Name)
	}
	inits := map[string]bool{}
	for _, init := range g.GetInitializer() {
		inits[init.GetName()] = true
		if init.GetName()[:5] != "head/" {
			t.Errorf("initializer %q not prefixed", init.GetName())
		}
	}
	produced := map[string]bool{}
	for _, n := range g.GetNode() {
		if n.GetName()[:5] != "head/" {
			t.Errorf("node %q not prefixed", n.GetName())
		}
		for _, i := range n.Input {
			if i != in && !inits[i] && !produced[i] {
				t.Errorf("node %s reads %q, which nothing produces after renaming", n.GetName(), i)
			}
		}
		for _, o := range n.Output {
			produced[o] = true
		}
	}
	if !produced[out] || !slices.ContainsFunc(g.GetNode(), func(n *onnxpb.NodeProto) bool { return slices.Contains(n.Output, out) }) {
		t.Errorf("graph output %q no longer produced", out)
	}
	if _, err := NewGraph(p).TopoOrder(); err != nil {
		t.Fatal(err)
	}
}
