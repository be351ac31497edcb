package model

import (
	"encoding/binary"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// TestFloat16ToFloat32 checks every half-precision bit pattern against the
// definition (IEEE 754-2008 binary16: (-1)^s × 2^(e-15) × 1.f, subnormals
// 2^-14 × 0.f) evaluated in float64.
func TestFloat16ToFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		s, e, f := h>>15, (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case e == 0x1f && f == 0:
			want = math.Inf(1)
		case e == 0x1f:
			want = math.NaN()
		case e == 0:
			want = math.Ldexp(float64(f)/1024, -14)
		default:
			want = math.Ldexp(1+float64(f)/1024, e-15)
		}
		if s == 1 {
			want = -want
		}
		got := Float16ToFloat32(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("Float16ToFloat32(%#04x) = %v, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (s == 1) {
			t.Fatalf("Float16ToFloat32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

func half(vals ...uint16) []byte {
	b := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

func castNode(name, in, out string, to int64) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String("Cast"), Input: []string{in}, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(to)}}}
}

func TestFoldConstantCasts(t *testing.T) {
	// x → Conv(W = Cast(W16)) → MatMul(M = Cast(M16)); W16 is also cast to
	// FLOAT16 (kept) and a Cast of a graph input stays.
	w16 := newTensor("W16", TypeFloat16, []int64{1, 1, 1, 1}, half(0x3c00))                          // 1.0
	m16 := newTensor("M16", int32(onnxpb.TensorProto_BFLOAT16), []int64{1, 2}, half(0x4000, 0xc040)) // 2.0, -3.0
	d := newTensor("D", TypeDouble, []int64{1}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1)))
	nodes := []*onnxpb.NodeProto{
		castNode("cw", "W16", "W", 1),
		castNode("cm", "M16", "M", 1),
		castNode("cd", "D", "Dw", 1),
		castNode("keep", "W16", "W16b", 10),
		castNode("cx", "x", "xf", 1),
		{Name: proto.String("conv"), OpType: proto.String("Conv"), Input: []string{"xf", "W"}, Output: []string{"c"}},
		{Name: proto.String("mm"), OpType: proto.String("MatMul"), Input: []string{"c", "M"}, Output: []string{"y"}},
		{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"y", "Dw"}, Output: []string{"z"}},
	}
	p := synth(13, []*onnxpb.ValueInfoProto{fvi("x", 1, 1, 1, 1)}, []*onnxpb.ValueInfoProto{fvi("z"), fvi("W16b")}, nodes, w16, m16, d)
	n, err := FoldConstantCasts(p)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("folded %d casts, want 3 (cw, cm, cd)", n)
	}
	if got := countOp(p, "Cast"); got != 2 {
		t.Errorf("%d Cast nodes left, want 2 (keep, cx)", got)
	}
	x := NewGraph(p)
	for name, want := range map[string][]float32{"W": {1}, "M": {2, -3}, "Dw": {float32(0.1)}} {
		init := x.Initializer(name)
		if init == nil {
			t.Fatalf("no initializer %q after folding", name)
		}
		got, err := TensorFloat32(init)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	}
	// W16 is still read by the kept Cast; M16 and D are gone.
	if x.Initializer("W16") == nil || x.Initializer("M16") != nil || x.Initializer("D") != nil {
		t.Errorf("unused initializers: W16 kept=%v, M16 kept=%v, D kept=%v; want true, false, false",
			x.Initializer("W16") != nil, x.Initializer("M16") != nil, x.Initializer("D") != nil)
	}

	// Bad data (wrong byte count) is left alone, not an error.
	bad := newTensor("B", TypeFloat16, []int64{4}, half(1))
	p = synth(13, nil, []*onnxpb.ValueInfoProto{fvi("b")}, []*onnxpb.NodeProto{castNode("c", "B", "b0", 1),
		{OpType: proto.String("Relu"), Input: []string{"b0"}, Output: []string{"b"}}}, bad)
	if n, err := FoldConstantCasts(p); err != nil || n != 0 {
		t.Errorf("truncated FLOAT16 initializer: folded %d, err %v; want 0, nil", n, err)
	}
}

func TestFoldConstantIdentities(t *testing.T) {
	w := NewTensorFloat32("w", []int64{2, 2}, []float32{1, 2, 3, 4})
	id := func(name, in, out string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String("Identity"), Input: []string{in}, Output: []string{out}}
	}
	mm := func(name, a, b string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String("MatMul"), Input: []string{a, b}, Output: []string{name}}
	}
	// Two MatMuls share w, the second through an Identity (torch's
	// deduplicated weights); an Identity of the graph input and one that
	// is a graph output stay.
	nodes := []*onnxpb.NodeProto{
		mm("m1", "x", "w"), id("alias", "w", "w_copy"), mm("m2", "m1", "w_copy"),
		id("xid", "x", "x2"), mm("m3", "m2", "x2"), id("outid", "w", "wout"),
	}
	p := synth(13, []*onnxpb.ValueInfoProto{fvi("x", 2, 2)}, []*onnxpb.ValueInfoProto{fvi("m3"), fvi("wout")}, nodes, w)
	n, err := FoldConstantIdentities(p)
	if err != nil || n != 1 {
		t.Fatalf("folded %d, err %v; want 1 (alias)", n, err)
	}
	x := NewGraph(p)
	got, err := TensorFloat32(x.Initializer("w_copy"))
	if err != nil || len(got) != 4 || got[3] != 4 {
		t.Fatalf("w_copy = %v, %v; want a copy of w", got, err)
	}
	if countOp(p, "Identity") != 2 || x.Initializer("w") == nil {
		t.Errorf("%d Identity nodes left (want 2: xid, outid), w kept %v", countOp(p, "Identity"), x.Initializer("w") != nil)
	}
}
