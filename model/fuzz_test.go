package model

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// FuzzLoad feeds arbitrary bytes to the loader and, when they load, to the
// graph utilities and transformations: nothing may panic, and a loaded model
// must marshal and load back to the same bytes.
//
//	go test ./model -run XXX -fuzz FuzzLoad -fuzztime 60s
func FuzzLoad(f *testing.F) {
	// Small seeds only: the fuzzer minimizes every new interesting input,
	// which takes seconds for the 10 KB convnets.
	for _, name := range append(goodFixtures, "truncated.onnx", "not_onnx.onnx", "missing_weights.onnx") {
		b, err := os.ReadFile(fixture(name))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 4096 {
			f.Add(b)
		}
	}
	for _, p := range []*onnxpb.ModelProto{
		bnModel(true),
		oneNode(9, NewNode("Clip", "clip", []string{"x"}, []string{"y"}, floatAttr("min", 0), floatAttr("max", 6)), []int64{1, 4}),
		oneNode(11, NewNode("Unsqueeze", "u", []string{"x"}, []string{"y"}, intsAttr("axes", 2)), []int64{1, 4}),
		oneNode(11, NewNode("Softmax", "sm", []string{"x"}, []string{"y"}), nil),
		oneNode(9, NewNode("Pad", "pad", []string{"x"}, []string{"y"}, intsAttr("pads", 0, 1, 0, 1), floatAttr("value", 1)), []int64{1, 4}),
		oneNode(9, NewNode("Dropout", "d", []string{"x"}, []string{"y", "m"}, floatAttr("ratio", 0.1)), []int64{4}),
		oneNode(9, NewNode("Upsample", "up", []string{"x", "s"}, []string{"y"}), []int64{1, 1, 2, 2},
			NewTensorFloat32("s", []int64{4}, []float32{1, 1, 2, 2})),
		oneNode(9, NewNode("Constant", "c", nil, []string{"y"}, intsAttr("value_ints", 1, 2)), nil),
	} {
		b, err := Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// External data of the seeds resolves in dir: give them a weights file.
	dir := f.TempDir()
	for _, name := range []string{"convnet_extdata.onnx.data", "missing_weights.onnx.data"} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 4096), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	name := filepath.Join(dir, "fuzz.onnx")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := LoadBytes(name, data)
		if err != nil {
			if p != nil {
				t.Fatal("a model and an error")
			}
			return
		}
		b, err := Marshal(p)
		if err != nil {
			return // e.g. invalid UTF-8 is accepted on decode only in proto2 strings; nothing to check
		}
		p2, err := LoadBytes(name, b)
		if err != nil {
			t.Fatalf("a loaded model does not load back: %v", err)
		}
		b2, err := Marshal(p2)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("marshal is not stable: %v", err)
		}

		Inputs(p)
		Outputs(p)
		r := Inspect(p)
		var buf bytes.Buffer
		if err := r.WriteText(&buf); err != nil {
			t.Fatal(err)
		}
		x := NewGraph(p)
		x.TopoOrder()
		QuantizableNodes(p)
		for _, tp := range p.GetGraph().GetInitializer() {
			TensorFloat32(tp)
			TensorInt64(tp)
		}
		c := proto.Clone(p).(*onnxpb.ModelProto)
		ConstantsToInitializers(c)
		FoldBatchNorm(c)
		UpgradeOpset(c, MaxOpset)
		Marshal(c)
	})
}

// FuzzInferTypes feeds InferTypes arbitrary bytes decoded as a ModelProto
// and, from the same bytes, a small random graph: operators of the rule
// table (and unknown ones) wired at random, with random attributes,
// initializers and nested If/Loop/Scan bodies. Nothing may panic or hang,
// and Unknown lists node outputs only.
//
//	go test ./model -run XXX -fuzz FuzzInferTypes -fuzztime 60s
func FuzzInferTypes(f *testing.F) {
	// Small seeds only (see FuzzLoad): the minimizer spends a minute on
	// each new input grown from a 4 KB fixture, so the seeds are small
	// synthetic models: shape arithmetic, an If, a Loop.
	arith := synth(13, []*onnxpb.ValueInfoProto{vi("x", TypeFloat, []int64{2, 8, 4, 4})}, nil, []*onnxpb.NodeProto{
		nd("Shape", "x", "sh"), nd("Gather", "sh,zero", "n"), nd("Unsqueeze", "n,ax", "n1"),
		nd("Concat", "n1,m1", "shape", IntAttr("axis", 0)), nd("Reshape", "x,shape", "y"),
		nd("Cast", "n", "nf", IntAttr("to", int64(TypeFloat))), nd("Equal", "sh,sh", "eq"), nd("Where", "eq,sh,sh", "w"),
		nd("ConstantOfShape", "w", "c"), nd("Range", "n,n,n", "r"),
	}, NewTensorInt64("zero", nil, []int64{0}), NewTensorInt64("ax", []int64{1}, []int64{0}), NewTensorInt64("m1", []int64{1}, []int64{-1}))
	branch := func(op, out string) *onnxpb.GraphProto {
		return sub(op, nil, []*onnxpb.ValueInfoProto{vi(out, TypeFloat, nil)}, nd(op, "x", out))
	}
	ifModel := synth(11, []*onnxpb.ValueInfoProto{vi("x", TypeFloat, []int64{2, 3}), vi("c", typeBool, nil)}, nil, []*onnxpb.NodeProto{
		nd("If", "c", "y", graphAttr("then_branch", branch("Relu", "t")), graphAttr("else_branch", branch("Neg", "e"))),
	})
	body := sub("body", []*onnxpb.ValueInfoProto{{Name: proto.String("i")}, {Name: proto.String("ci")}, {Name: proto.String("v")}},
		[]*onnxpb.ValueInfoProto{{Name: proto.String("co")}, {Name: proto.String("vo")}, {Name: proto.String("so")}},
		nd("Identity", "ci", "co"), nd("Add", "v,x", "vo"), nd("Shape", "vo", "so"))
	loop := synth(13, []*onnxpb.ValueInfoProto{vi("x", TypeFloat, []int64{2, 3}), vi("m", TypeInt64, nil)}, nil, []*onnxpb.NodeProto{
		nd("Loop", "m,,x", "f,s", graphAttr("body", body)),
	})
	for _, p := range []*onnxpb.ModelProto{arith, ifModel, loop} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	ops := fuzzOps()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &onnxpb.ModelProto{}
		if proto.Unmarshal(data, p) == nil {
			checkInferTypes(t, p)
		}
		r := &fuzzBytes{b: data}
		opset := int64(7 + r.next()%15)
		g := r.graph(ops, 0, new(int))
		checkInferTypes(t, &onnxpb.ModelProto{
			OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
			Graph:       g,
		})
	})
}

func checkInferTypes(t *testing.T, p *onnxpb.ModelProto) {
	types := InferTypes(p)
	outs := map[string]bool{}
	for _, n := range p.GetGraph().GetNode() {
		for _, o := range n.GetOutput() {
			outs[o] = true
		}
	}
	for _, u := range types.Unknown() {
		if !outs[u] {
			t.Fatalf("unknown %q is not a node output", u)
		}
		if _, ok := types.Of(u); ok {
			t.Fatalf("unknown %q has a type", u)
		}
	}
	types.Conflicts()
}

// fuzzOps are the operators the random graphs use: every rule, plus
// unknown and custom-domain ones.
func fuzzOps() []string {
	ops := []string{"MyOp", "SequenceConstruct"}
	for op := range typeRules {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	return ops
}

type fuzzBytes struct {
	b []byte
	i int
}

func (r *fuzzBytes) next() int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1])
}

// small is a small signed number, -2 to 5.
func (r *fuzzBytes) small() int64 { return int64(r.next()%8) - 2 }

func (r *fuzzBytes) smalls() []int64 {
	v := make([]int64, r.next()%5)
	for i := range v {
		v[i] = r.small()
	}
	return v
}

var fuzzElems = []int32{0, TypeFloat, TypeInt64, typeBool, TypeFloat16, typeUint8, typeInt32}

// graph builds a random graph; count numbers the tensors across nesting.
func (r *fuzzBytes) graph(ops []string, depth int, count *int) *onnxpb.GraphProto {
	g := &onnxpb.GraphProto{Name: proto.String("g")}
	var pool []string
	fresh := func() string {
		*count++
		return "t" + strconv.Itoa(*count)
	}
	for range 1 + r.next()%3 {
		name := fresh()
		var dims []int64
		if r.next()%4 != 0 {
			dims = make([]int64, r.next()%5)
			for i := range dims {
				dims[i] = r.small()
			}
		}
		v := vi(name, fuzzElems[r.next()%len(fuzzElems)], dims)
		if dims == nil {
			v.Type.GetTensorType().Shape = nil
		}
		g.Input = append(g.Input, v)
		pool = append(pool, name)
	}
	for range r.next() % 3 {
		name := fresh()
		g.Initializer = append(g.Initializer, NewTensorInt64(name, []int64{3}, []int64{r.small(), r.small(), r.small()}))
		pool = append(pool, name)
	}
	for range r.next() % 10 {
		op := ops[r.next()%len(ops)]
		n := &onnxpb.NodeProto{OpType: proto.String(op)}
		if op == "MyOp" {
			n.Domain = proto.String("com.example")
		} else if r.next()%16 == 0 {
			n.Domain = proto.String("com.microsoft")
		}
		for range r.next() % 5 {
			switch k := r.next(); {
			case k%8 == 0:
				n.Input = append(n.Input, "")
			case k%8 == 1:
				n.Input = append(n.Input, "t"+strconv.Itoa(*count+1+k%3)) // a later tensor: cycles
			default:
				n.Input = append(n.Input, pool[k%len(pool)])
			}
		}
		for range 1 + r.next()%3 {
			name := fresh()
			n.Output = append(n.Output, name)
			pool = append(pool, name)
		}
		for range r.next() % 4 {
			n.Attribute = append(n.Attribute, r.attr(ops, depth, count))
		}
		g.Node = append(g.Node, n)
	}
	for range r.next() % 3 {
		g.Output = append(g.Output, vi(pool[r.next()%len(pool)], fuzzElems[r.next()%len(fuzzElems)], nil))
	}
	return g
}

func (r *fuzzBytes) attr(ops []string, depth int, count *int) *onnxpb.AttributeProto {
	names := []string{"axis", "axes", "perm", "to", "keepdims", "kernel_shape", "strides", "pads", "dilations",
		"auto_pad", "value", "k", "start", "end", "blocksize", "num_scan_inputs", "dtype", "shape", "allowzero",
		"split", "scales", "ceil_mode", "transA", "transB", "then_branch", "else_branch", "body", "value_ints",
		"value_float", "stash_type", "output_dtype"}
	name := names[r.next()%len(names)]
	switch name {
	case "then_branch", "else_branch", "body":
		if depth >= 3 {
			return IntAttr(name, 0)
		}
		return graphAttr(name, r.graph(ops, depth+1, count))
	case "auto_pad":
		return StringAttr(name, []string{"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "BAD"}[r.next()%5])
	case "value":
		return tensorAttr(name, NewTensorInt64("", []int64{2}, []int64{r.small(), r.small()}))
	case "value_float":
		return floatAttr(name, float32(r.small()))
	case "scales":
		return floatsAttr(name, 1, 1, float32(r.small()), 0.5)
	case "to", "dtype", "stash_type", "output_dtype":
		return IntAttr(name, int64(fuzzElems[r.next()%len(fuzzElems)]))
	}
	if r.next()%2 == 0 {
		return IntAttr(name, r.small())
	}
	return intsAttr(name, r.smalls()...)
}
