package model

import (
	"math"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// TestFuseHardSwish rewrites the exported forms of hard-swish into
// HardSigmoid and Mul, and leaves alone what only looks like one.
func TestFuseHardSwish(t *testing.T) {
	scalar := func(name string, v float32) *onnxpb.TensorProto { return NewTensorFloat32(name, nil, []float32{v}) }
	consts := func() []*onnxpb.TensorProto {
		return []*onnxpb.TensorProto{scalar("three", 3), scalar("zero", 0), scalar("six", 6), scalar("sixth", 1.0/6), scalar("two", 2)}
	}
	clip := NewNode("Clip", "clip", []string{"a", "zero", "six"}, []string{"c"})
	for _, tc := range []struct {
		name  string
		nodes []*onnxpb.NodeProto
		outs  []string // graph outputs besides y
		want  int
		left  []string // initializers left after a rewrite: those no pattern read
	}{
		{"paddle2onnx: x·clip, then /6", []*onnxpb.NodeProto{
			NewNode("Add", "add", []string{"x", "three"}, []string{"a"}), clip,
			NewNode("Mul", "mul", []string{"x", "c"}, []string{"m"}),
			NewNode("Div", "div", []string{"m", "six"}, []string{"y"})}, nil, 1, []string{"sixth", "two"}},
		{"clip/6, then ·x, operands swapped", []*onnxpb.NodeProto{
			NewNode("Add", "add", []string{"three", "x"}, []string{"a"}), clip,
			NewNode("Div", "div", []string{"c", "six"}, []string{"m"}),
			NewNode("Mul", "mul", []string{"m", "x"}, []string{"y"})}, nil, 1, []string{"sixth", "two"}},
		{"clip attributes (opset 9), ·1/6 then ·x", []*onnxpb.NodeProto{
			NewNode("Add", "add", []string{"x", "three"}, []string{"a"}),
			NewNode("Clip", "clip", []string{"a"}, []string{"c"}, floatAttr("min", 0), floatAttr("max", 6)),
			NewNode("Mul", "sixth", []string{"sixth", "c"}, []string{"m"}),
			NewNode("Mul", "mul", []string{"x", "m"}, []string{"y"})}, nil, 1, []string{"zero", "six", "two"}},
		{"clip output read elsewhere", []*onnxpb.NodeProto{
			NewNode("Add", "add", []string{"x", "three"}, []string{"a"}), clip,
			NewNode("Mul", "mul", []string{"x", "c"}, []string{"m"}),
			NewNode("Div", "div", []string{"m", "six"}, []string{"y"})}, []string{"c"}, 0, nil},
		{"x+2", []*onnxpb.NodeProto{
			NewNode("Add", "add", []string{"x", "two"}, []string{"a"}), clip,
			NewNode("Mul", "mul", []string{"x", "c"}, []string{"m"}),
			NewNode("Div", "div", []string{"m", "six"}, []string{"y"})}, nil, 0, nil},
		{"clip·y, not clip·x", []*onnxpb.NodeProto{
			NewNode("Add", "add", []string{"x", "three"}, []string{"a"}), clip,
			NewNode("Mul", "mul", []string{"z", "c"}, []string{"m"}),
			NewNode("Div", "div", []string{"m", "six"}, []string{"y"})}, nil, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outs := []*onnxpb.ValueInfoProto{fvi("y", 1, 4)}
			for _, o := range tc.outs {
				outs = append(outs, fvi(o, 1, 4))
			}
			var nodes []*onnxpb.NodeProto
			for _, n := range tc.nodes {
				nodes = append(nodes, NewNode(n.GetOpType(), n.GetName(), slices.Clone(n.Input), slices.Clone(n.Output), n.Attribute...))
			}
			p := synth(13, []*onnxpb.ValueInfoProto{fvi("x", 1, 4), fvi("z", 1, 4)}, outs, nodes, consts()...)
			before := opTypes(p.Graph.Node)
			n, err := FuseHardSwish(p)
			if err != nil || n != tc.want {
				t.Fatalf("FuseHardSwish = %d, %v; want %d", n, err, tc.want)
			}
			if tc.want == 0 {
				if got := opTypes(p.Graph.Node); !slices.Equal(got, before) || len(p.Graph.Initializer) != len(consts()) {
					t.Errorf("graph changed: %v, %d initializers", got, len(p.Graph.Initializer))
				}
				return
			}
			g := p.Graph
			if got := opTypes(g.Node); !slices.Equal(got, []string{"HardSigmoid", "Mul"}) {
				t.Fatalf("nodes %v, want HardSigmoid, Mul", got)
			}
			hs, mul := g.Node[0], g.Node[1]
			if !slices.Equal(hs.Input, []string{"x"}) || !slices.Equal(mul.Input, []string{"x", hs.Output[0]}) || !slices.Equal(mul.Output, []string{"y"}) {
				t.Errorf("HardSigmoid %v → %v, Mul %v → %v", hs.Input, hs.Output, mul.Input, mul.Output)
			}
			if a, b := attrFloat(hs, "alpha", 0), attrFloat(hs, "beta", 0); a != 1.0/6 || b != 0.5 {
				t.Errorf("alpha %g, beta %g; want 1/6, 0.5", a, b)
			}
			// The constants the pattern read are gone.
			var left []string
			for _, it := range g.Initializer {
				left = append(left, it.GetName())
			}
			if !slices.Equal(left, tc.left) {
				t.Errorf("initializers left %v, want %v", left, tc.left)
			}
			if err := checkTopo(p); err != nil {
				t.Error(err)
			}
		})
	}
}

func checkTopo(p *onnxpb.ModelProto) error {
	_, err := NewGraph(p).TopoOrder()
	return err
}

// TestHardSwishForms: the two forms FuseHardSwish exchanges compute the
// same function up to float32 rounding (ONNX's HardSigmoid is
// max(0, min(1, alpha·x + beta))), over the range activations take.
func TestHardSwishForms(t *testing.T) {
	worst := 0.0
	for i := -4000; i <= 4000; i++ {
		x := float32(i) / 400 // -10 … 10
		four := x * min(max(x+3, 0), 6) / 6
		two := x * max(0, min(1, float32(1.0/6)*x+0.5))
		if d := math.Abs(float64(four - two)); d > worst {
			worst = d
		}
	}
	// 2 ulp of the largest output (10): float32 rounding, not a different function.
	if worst > 2*float64(math.Nextafter32(10, 11)-10) {
		t.Errorf("largest difference %g", worst)
	}
}

// TestFuseHardSwishKeepsSubgraphConstants: a constant of the pattern that
// an If's subgraph also reads (an outer-scope name) survives the rewrite.
func TestFuseHardSwishKeepsSubgraphConstants(t *testing.T) {
	three := NewTensorFloat32("three", nil, []float32{3})
	zero := NewTensorFloat32("zero", nil, []float32{0})
	six := NewTensorFloat32("six", nil, []float32{6})
	body := &onnxpb.GraphProto{Name: proto.String("then"),
		Node:   []*onnxpb.NodeProto{NewNode("Identity", "id", []string{"three"}, []string{"t_out"})},
		Output: []*onnxpb.ValueInfoProto{fvi("t_out")}}
	ifn := NewNode("If", "if", []string{"cond"}, []string{"w"},
		&onnxpb.AttributeProto{Name: proto.String("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: body},
		&onnxpb.AttributeProto{Name: proto.String("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: body})
	nodes := []*onnxpb.NodeProto{
		NewNode("Add", "add", []string{"x", "three"}, []string{"a"}),
		NewNode("Clip", "clip", []string{"a", "zero", "six"}, []string{"c"}),
		NewNode("Mul", "mul", []string{"x", "c"}, []string{"m"}),
		NewNode("Div", "div", []string{"m", "six"}, []string{"y"}),
		ifn,
	}
	p := synth(13, []*onnxpb.ValueInfoProto{fvi("x", 1, 4), fvi("cond")}, []*onnxpb.ValueInfoProto{fvi("y", 1, 4), fvi("w")}, nodes, three, zero, six)
	if n, err := FuseHardSwish(p); n != 1 || err != nil {
		t.Fatalf("FuseHardSwish: %d rewritten, %v; want 1", n, err)
	}
	var left []string
	for _, it := range p.Graph.Initializer {
		left = append(left, it.GetName())
	}
	if !slices.Contains(left, "three") {
		t.Errorf("initializers left %v: \"three\", read by the If's subgraph, was deleted", left)
	}
	if slices.Contains(left, "zero") {
		t.Errorf("initializers left %v: \"zero\", read by nothing now, was kept", left)
	}
}

// TestFuseHardSwishKeepsRank: constants of rank 4 broadcast a rank-2 x to
// rank 4 in the exported form; HardSigmoid·Mul would keep rank 2, so the
// pattern is left as it is.
func TestFuseHardSwishKeepsRank(t *testing.T) {
	sc := func(name string, v float32) *onnxpb.TensorProto {
		return NewTensorFloat32(name, []int64{1, 1, 1, 1}, []float32{v})
	}
	nodes := []*onnxpb.NodeProto{
		NewNode("Add", "add", []string{"x", "three"}, []string{"a"}),
		NewNode("Clip", "clip", []string{"a", "zero", "six"}, []string{"c"}),
		NewNode("Mul", "mul", []string{"x", "c"}, []string{"m"}),
		NewNode("Div", "div", []string{"m", "six"}, []string{"y"}),
	}
	p := synth(13, []*onnxpb.ValueInfoProto{fvi("x", 2, 4)}, []*onnxpb.ValueInfoProto{fvi("y", 1, 1, 2, 4)}, nodes, sc("three", 3), sc("zero", 0), sc("six", 6))
	if n, err := FuseHardSwish(p); n != 0 || err != nil {
		t.Errorf("FuseHardSwish rewrote %d (%v) hard-swish whose rank-4 constants broadcast x to rank 4", n, err)
	}
}
