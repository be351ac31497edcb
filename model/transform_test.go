package model

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

func countOp(p *onnxpb.ModelProto, op string) int {
	n := 0
	for _, node := range p.GetGraph().GetNode() {
		if node.GetOpType() == op {
			n++
		}
	}
	return n
}

func TestConstantsToInitializers(t *testing.T) {
	p := proto.Clone(mustLoad(t, "convnet_op9_const.onnx")).(*onnxpb.ModelProto)
	consts := countOp(p, "Constant")
	nodes := len(p.Graph.Node)
	n, err := ConstantsToInitializers(p)
	if err != nil {
		t.Fatal(err)
	}
	// gen_models.py: 3 Conv x (weight, bias) + 4 BN parameters + Gemm (weight, bias).
	if n != 12 || consts != 12 {
		t.Errorf("converted %d of %d Constant nodes, want 12", n, consts)
	}
	if countOp(p, "Constant") != 0 || len(p.Graph.Node) != nodes-n {
		t.Errorf("%d Constant nodes left, %d nodes", countOp(p, "Constant"), len(p.Graph.Node))
	}
	// The weights are the same as convnet_op13's (same seed, same order).
	op13 := mustLoad(t, "convnet_op13.onnx")
	if len(p.Graph.Initializer) != len(op13.Graph.Initializer) {
		t.Fatalf("%d initializers, want %d", len(p.Graph.Initializer), len(op13.Graph.Initializer))
	}
	for i, w := range op13.Graph.Initializer {
		if !proto.Equal(w, p.Graph.Initializer[i]) {
			t.Errorf("initializer %d: %q differs from convnet_op13's %q", i, p.Graph.Initializer[i].GetName(), w.GetName())
		}
	}
	if len(Inputs(p)) != 1 {
		t.Errorf("inputs %v", Inputs(p))
	}
	if n, err := ConstantsToInitializers(p); n != 0 || err != nil {
		t.Errorf("second run: %d, %v", n, err)
	}
}

func TestConstantsToInitializersKinds(t *testing.T) {
	c := func(name string, a *onnxpb.AttributeProto) *onnxpb.NodeProto {
		return NewNode("Constant", name, nil, []string{name}, a)
	}
	nodes := []*onnxpb.NodeProto{
		c("vf", floatAttr("value_float", 2.5)),
		c("vfs", floatsAttr("value_floats", 1, 2)),
		c("vi", IntAttr("value_int", 3)),
		c("vis", intsAttr("value_ints", 4, 5, 6)),
		c("vs", StringAttr("value_string", "s")), // stays a node
		c("out", floatAttr("value_float", 1)),    // a graph output: stays a node
		NewNode("Sum", "sum", []string{"vf", "vfs"}, []string{"y"}),
	}
	p := synth(13, nil, []*onnxpb.ValueInfoProto{fvi("y", 2), fvi("out")}, nodes)
	n, err := ConstantsToInitializers(p)
	if err != nil || n != 4 {
		t.Fatalf("ConstantsToInitializers = %d, %v; want 4", n, err)
	}
	x := NewGraph(p)
	checkF := func(name string, dims []int64, want []float32) {
		tp := x.Initializer(name)
		got, err := TensorFloat32(tp)
		if err != nil || !reflect.DeepEqual(got, want) || len(tp.GetDims()) != len(dims) {
			t.Errorf("%s = %v dims %v (%v), want %v dims %v", name, got, tp.GetDims(), err, want, dims)
		}
	}
	checkI := func(name string, dims []int64, want []int64) {
		tp := x.Initializer(name)
		got, err := TensorInt64(tp)
		if err != nil || !reflect.DeepEqual(got, want) || len(tp.GetDims()) != len(dims) {
			t.Errorf("%s = %v dims %v (%v), want %v dims %v", name, got, tp.GetDims(), err, want, dims)
		}
	}
	checkF("vf", nil, []float32{2.5})
	checkF("vfs", []int64{2}, []float32{1, 2})
	checkI("vi", nil, []int64{3})
	checkI("vis", []int64{3}, []int64{4, 5, 6})
	if got := nodeNames(p.Graph.Node); !reflect.DeepEqual(got, []string{"vs", "out", "sum"}) {
		t.Errorf("nodes left %v", got)
	}

	// An output name that is already an initializer: error, p unchanged.
	dup := synth(13, nil, nil, []*onnxpb.NodeProto{c("w", floatAttr("value_float", 1))}, NewTensorFloat32("w", nil, []float32{0}))
	before := proto.Clone(dup)
	if _, err := ConstantsToInitializers(dup); err == nil || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("duplicate: %v", err)
	}
	if !proto.Equal(before, dup) {
		t.Error("model changed on error")
	}
}

func TestFoldBatchNorm(t *testing.T) {
	orig := mustLoad(t, "convnet_op13.onnx")
	p := proto.Clone(orig).(*onnxpb.ModelProto)
	n, err := FoldBatchNorm(p)
	if err != nil || n != 1 {
		t.Fatalf("FoldBatchNorm = %d, %v; want 1", n, err)
	}
	if countOp(p, "BatchNormalization") != 0 || len(p.Graph.Node) != len(orig.Graph.Node)-1 {
		t.Errorf("nodes after folding: %v", opTypes(p.Graph.Node))
	}
	x := NewGraph(p)
	conv := x.Producer("bn_0_out")
	if conv == nil || conv.GetName() != "conv_0" {
		t.Fatalf("bn_0_out produced by %v, want conv_0", conv)
	}
	if got := nodeNames(x.Consumers("bn_0_out")); !reflect.DeepEqual(got, []string{"relu_0"}) {
		t.Errorf("bn_0_out consumers %v", got)
	}
	for _, name := range []string{"bn_0.scale", "bn_0.bias", "bn_0.mean", "bn_0.var"} {
		if x.Initializer(name) != nil {
			t.Errorf("initializer %s not removed", name)
		}
	}
	if _, err := NewGraph(p).TopoOrder(); err != nil {
		t.Error(err)
	}

	// Folded values against the BatchNormalization formula, in float64.
	ox := NewGraph(orig)
	get := func(x *Graph, name string) []float32 {
		v, err := TensorFloat32(x.Initializer(name))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	w, b := get(ox, "conv_0.weight"), get(ox, "conv_0.bias")
	scale, shift, mean, variance := get(ox, "bn_0.scale"), get(ox, "bn_0.bias"), get(ox, "bn_0.mean"), get(ox, "bn_0.var")
	nw, nb := get(x, "conv_0.weight"), get(x, "conv_0.bias")
	const eps = 1e-5 // gen_models.py sets epsilon=1e-5
	per := len(w) / 8
	for c := range 8 {
		f := float64(scale[c]) / math.Sqrt(float64(variance[c])+eps)
		for k := c * per; k < (c+1)*per; k++ {
			if want := float32(float64(w[k]) * f); nw[k] != want {
				t.Fatalf("weight[%d] = %g, want %g", k, nw[k], want)
			}
		}
		if want := float32((float64(b[c])-float64(mean[c]))*f + float64(shift[c])); nb[c] != want {
			t.Errorf("bias[%d] = %g, want %g", c, nb[c], want)
		}
	}
	if n, err := FoldBatchNorm(p); n != 0 || err != nil {
		t.Errorf("second run: %d, %v", n, err)
	}

	// Weights in Constant nodes fold once they are initializers.
	p9 := proto.Clone(mustLoad(t, "convnet_op9_const.onnx")).(*onnxpb.ModelProto)
	if n, _ := FoldBatchNorm(p9); n != 0 {
		t.Errorf("folded %d with Constant weights", n)
	}
	if _, err := ConstantsToInitializers(p9); err != nil {
		t.Fatal(err)
	}
	if n, err := FoldBatchNorm(p9); n != 1 || err != nil {
		t.Errorf("op9 after ConstantsToInitializers: %d, %v", n, err)
	}
	if got, want := get(NewGraph(p9), "conv_0.weight"), nw; !reflect.DeepEqual(got, want) {
		t.Error("op9 and op13 fold to different weights")
	}
}

// bnModel: input x -> Conv(w[, bias]) -> c -> BN -> y, plus extra nodes.
func bnModel(bias bool, extra ...*onnxpb.NodeProto) *onnxpb.ModelProto {
	convIn := []string{"x", "w"}
	inits := []*onnxpb.TensorProto{
		NewTensorFloat32("w", []int64{2, 1, 1, 1}, []float32{1, 2}),
		NewTensorFloat32("s", []int64{2}, []float32{2, 4}),
		NewTensorFloat32("sh", []int64{2}, []float32{1, 1}),
		NewTensorFloat32("m", []int64{2}, []float32{0, 1}),
		NewTensorFloat32("v", []int64{2}, []float32{1, 4}),
	}
	if bias {
		convIn = append(convIn, "b")
		inits = append(inits, NewTensorFloat32("b", []int64{2}, []float32{0.5, -0.5}))
	}
	nodes := []*onnxpb.NodeProto{
		NewNode("Conv", "conv", convIn, []string{"c"}),
		NewNode("BatchNormalization", "bn", []string{"c", "s", "sh", "m", "v"}, []string{"y"}, floatAttr("epsilon", 0)),
	}
	nodes = append(nodes, extra...)
	return synth(13, []*onnxpb.ValueInfoProto{fvi("x", 1, 1, 1, 1)}, []*onnxpb.ValueInfoProto{fvi("y", 1, 2, 1, 1)}, nodes, inits...)
}

func TestFoldBatchNormCases(t *testing.T) {
	t.Run("no bias", func(t *testing.T) {
		p := bnModel(false)
		if n, err := FoldBatchNorm(p); n != 1 || err != nil {
			t.Fatalf("%d, %v", n, err)
		}
		conv := p.Graph.Node[0]
		if len(conv.Input) != 3 {
			t.Fatalf("conv inputs %v", conv.Input)
		}
		x := NewGraph(p)
		// epsilon 0: f = s/sqrt(v) = [2, 2]; w' = [2, 4]; b' = (0-m)*f + sh = [1, -1].
		w, _ := TensorFloat32(x.Initializer("w"))
		b, _ := TensorFloat32(x.Initializer(conv.Input[2]))
		if !reflect.DeepEqual(w, []float32{2, 4}) || !reflect.DeepEqual(b, []float32{1, -1}) {
			t.Errorf("w %v b %v", w, b)
		}
		if len(p.Graph.Initializer) != 2 {
			t.Errorf("initializers %d, want w and the new bias", len(p.Graph.Initializer))
		}
	})
	t.Run("shared weight is copied", func(t *testing.T) {
		p := bnModel(true, NewNode("Conv", "other", []string{"x", "w", "b"}, []string{"o"}))
		if n, err := FoldBatchNorm(p); n != 1 || err != nil {
			t.Fatalf("%d, %v", n, err)
		}
		x := NewGraph(p)
		w, _ := TensorFloat32(x.Initializer("w"))
		b, _ := TensorFloat32(x.Initializer("b"))
		if !reflect.DeepEqual(w, []float32{1, 2}) || !reflect.DeepEqual(b, []float32{0.5, -0.5}) {
			t.Errorf("shared initializers changed: w %v b %v", w, b)
		}
		conv := p.Graph.Node[0]
		if conv.Input[1] == "w" || conv.Input[2] == "b" || x.Initializer(conv.Input[1]) == nil {
			t.Errorf("folded conv inputs %v", conv.Input)
		}
		// b' = (0.5-0)*2+1, (-0.5-1)*2+1
		nb, _ := TensorFloat32(x.Initializer(conv.Input[2]))
		if !reflect.DeepEqual(nb, []float32{2, -2}) {
			t.Errorf("folded bias %v", nb)
		}
	})
	skip := []struct {
		name string
		p    func() *onnxpb.ModelProto
	}{
		{"conv output used elsewhere", func() *onnxpb.ModelProto {
			return bnModel(true, NewNode("Relu", "r", []string{"c"}, []string{"r"}))
		}},
		{"weight not constant", func() *onnxpb.ModelProto {
			p := bnModel(true)
			p.Graph.Input = append(p.Graph.Input, fvi("w", 2, 1, 1, 1))
			return p
		}},
		{"training mode", func() *onnxpb.ModelProto {
			p := bnModel(true)
			p.Graph.Node[1].Attribute = append(p.Graph.Node[1].Attribute, IntAttr("training_mode", 1))
			return p
		}},
		{"not after a conv", func() *onnxpb.ModelProto {
			p := bnModel(true)
			p.Graph.Node[0].OpType = proto.String("MatMul")
			return p
		}},
	}
	for _, tc := range skip {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p()
			before := proto.Clone(p)
			if n, err := FoldBatchNorm(p); n != 0 || err != nil {
				t.Errorf("FoldBatchNorm = %d, %v; want 0", n, err)
			}
			if !proto.Equal(before, p) {
				t.Error("model changed")
			}
		})
	}
	t.Run("channel mismatch", func(t *testing.T) {
		p := bnModel(true)
		p.Graph.Initializer[1] = NewTensorFloat32("s", []int64{3}, []float32{1, 2, 3})
		if _, err := FoldBatchNorm(p); err == nil || !strings.Contains(err.Error(), `node "bn"`) {
			t.Errorf("error %v, want one naming the node", err)
		}
	})
	if !slices.Equal(nodeNames(bnModel(true).Graph.Node), []string{"conv", "bn"}) {
		t.Error("bnModel")
	}
}
