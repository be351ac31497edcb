package reduce

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// wireSets are the Sets the round-trip tests and the fuzz corpus start from.
func wireSets(t testing.TB) map[string]*Set {
	t.Helper()
	empty := NewSet()

	odd := NewSet()
	payloadNaN := math.Float64frombits(0x7ff8_0000_dead_beef)
	signalNaN := math.Float64frombits(0x7ff0_0000_0000_0001)
	negZero := math.Copysign(0, -1)
	for _, s := range []struct {
		t, k string
		i    int
		v    []float64
	}{
		{"x", "min", 5, []float64{negZero}},
		{"x", "min", 0, []float64{payloadNaN}},
		{"x", "min", math.MaxInt, []float64{signalNaN}},
		{"x", "min", math.MinInt, []float64{math.Inf(-1)}},
		{"x", "min", -1, []float64{math.SmallestNonzeroFloat64}},
		{"x", "channel_max@1", 3, []float64{1, 2, 3}},
		{"", "", 0, []float64{math.MaxFloat64}}, // empty names are names too
		{"ü/ñ", "q@0.999", 1 << 40, []float64{-math.MaxFloat64}},
	} {
		if err := odd.Add(s.t, s.k, s.i, s.v); err != nil {
			t.Fatal(err)
		}
	}
	odd.Stats["y"] = map[string]*PerSample{"max": NewPerSample(4)} // no samples yet
	odd.Stats["z"] = map[string]*PerSample{}
	odd.NonFinite["x"] = 3
	odd.NonFinite["w"] = 0
	h, err := odd.EnsureHist("x", "abs", 0, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.Add(math.NaN())
	h.Add(-1)
	h.Add(2)
	h.Add(0.5)
	h, err = odd.EnsureHist("x", "val", -3.5, 1e300, 7)
	if err != nil {
		t.Fatal(err)
	}
	for range 300 {
		h.Add(1)
	}
	odd.Hists["v"] = map[string]*Histogram{}
	for _, f := range []struct {
		t, k string
		op   FoldOp
		v    float64
	}{
		{"x", "sum(min)", FoldSum, -math.MaxFloat64},
		{"x", "sum(min)", FoldSum, -math.MaxFloat64}, // 2^2099 in 2^-1074 units
		{"x", "sum(min)", FoldSum, math.SmallestNonzeroFloat64},
		{"x", "max(max)", FoldMax, negZero},
		{"x", "min(min)", FoldMin, math.SmallestNonzeroFloat64},
		{"y", "sum(max)", FoldSum, 1.5},
		{"y", "sum(max)", FoldSum, -1.5}, // a zero sum of two values
		{"", "", FoldMax, math.MaxFloat64},
	} {
		if err := odd.AddFold(f.t, f.k, f.op, f.v); err != nil {
			t.Fatal(err)
		}
	}
	odd.Folds["z"] = map[string]*Fold{"sum": NewFold(FoldSum), "max": NewFold(FoldMax)} // no values yet
	odd.Folds["w"] = map[string]*Fold{}

	real := NewSet()
	for _, o := range randomObservations(rand.New(rand.NewPCG(30, 31)), 20) {
		observe(t, real, o)
	}
	return map[string]*Set{"empty": empty, "odd": odd, "real": real}
}

func TestWireRoundTrip(t *testing.T) {
	for name, s := range wireSets(t) {
		t.Run(name, func(t *testing.T) {
			b, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(MarshalBinary()): %v", err)
			}
			if !got.Equal(s) {
				t.Fatal("decoded set differs from the encoded one")
			}
			again, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encoding gives other bytes (%v):\n%x\n%x", err, again, b)
			}
			var u Set
			if err := u.UnmarshalBinary(b); err != nil || !u.Equal(s) {
				t.Fatalf("UnmarshalBinary: %v, equal %v", err, u.Equal(s))
			}
		})
	}
}

func TestWireBitExact(t *testing.T) {
	s := wireSets(t)["odd"]
	b, _ := s.MarshalBinary()
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	// Bits from wireSets: a quiet NaN with payload 0xdeadbeef at sample 0, -0 at sample 5.
	want := map[int]uint64{0: 0x7ff8_0000_dead_beef, 5: 0x8000_0000_0000_0000, math.MaxInt: 0x7ff0_0000_0000_0001}
	p := got.Get("x", "min")
	for i := range p.Len() {
		idx, v := p.At(i)
		if w, ok := want[idx]; ok && math.Float64bits(v[0]) != w {
			t.Errorf("sample %d: bits %#x, want %#x", idx, math.Float64bits(v[0]), w)
		}
	}
}

func TestWireDeterministic(t *testing.T) {
	// The same statistics added in another order encode to the same bytes.
	obs := randomObservations(rand.New(rand.NewPCG(32, 33)), 40)
	a, b := NewSet(), NewSet()
	for _, o := range obs {
		observe(t, a, o)
	}
	for i := len(obs) - 1; i >= 0; i-- {
		observe(t, b, obs[i])
	}
	x, err1 := a.MarshalBinary()
	y, err2 := b.MarshalBinary()
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Fatalf("same set, two encodings (%v, %v)", err1, err2)
	}
}

func TestWireHeader(t *testing.T) {
	b, _ := NewSet().MarshalBinary()
	// magic "FCRS", version 2, then four empty maps.
	if want := []byte{'F', 'C', 'R', 'S', 2, 0, 0, 0, 0}; !bytes.Equal(b, want) {
		t.Fatalf("empty set = %x, want %x", b, want)
	}
}

func TestMarshalErrors(t *testing.T) {
	s := NewSet()
	_ = s.Add("x", "min", 1, []float64{1})
	_ = s.Add("x", "min", 1, []float64{2})
	if _, err := s.MarshalBinary(); !errors.Is(err, ErrDuplicateSample) {
		t.Fatalf("encode with sample 1 twice: err = %v, want ErrDuplicateSample", err)
	}
	s = NewSet()
	s.Hists["x"] = map[string]*Histogram{"h": nil}
	if _, err := s.MarshalBinary(); err == nil {
		t.Fatal("encode of a nil histogram: no error")
	}
}

func TestDecodeRejectsTruncation(t *testing.T) {
	for name, s := range wireSets(t) {
		b, _ := s.MarshalBinary()
		for n := range len(b) {
			if _, err := Decode(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: Decode of the first %d of %d bytes: err = %v, want ErrCorrupt", name, n, len(b), err)
			}
		}
		if _, err := Decode(append(b, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: Decode with a trailing byte: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	head := []byte("FCRS\x02")
	uv := func(b []byte, xs ...uint64) []byte {
		for _, x := range xs {
			b = binary.AppendUvarint(b, x)
		}
		return b
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"bad magic", []byte("FCRX\x02\x00\x00\x00\x00")},
		{"version 1", []byte("FCRS\x01\x00\x00\x00")},
		{"version 3", []byte("FCRS\x03\x00\x00\x00\x00")},
		{"overlong varint", cat(head, []byte{0x80, 0x00}, []byte{0, 0})},
		{"varint past 64 bits", cat(head, bytes.Repeat([]byte{0xff}, 10), []byte{1})},
		{"2^62 tensors", uv(head, 1<<62)},
		{"names out of order", cat(uv(head, 2), uv(nil, 1), []byte("b"), uv(nil, 0), uv(nil, 1), []byte("a"), uv(nil, 0, 0, 0))},
		{"duplicate names", cat(uv(head, 2), uv(nil, 1), []byte("a"), uv(nil, 0), uv(nil, 1), []byte("a"), uv(nil, 0, 0, 0))},
		{"dim 0", cat(uv(head, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), uv(nil, 0, 0, 0, 0))},
		{"2^40 samples", cat(uv(head, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), uv(nil, 1, 1<<40), make([]byte, 64))},
		{"dim 2^60", cat(uv(head, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), uv(nil, 1<<60, 1), make([]byte, 64))},
		{"index overflow", cat(uv(head, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), uv(nil, 1, 2),
			binary.AppendVarint(nil, math.MaxInt64), uv(nil, 0), make([]byte, 16), uv(nil, 0, 0))},
		{"hist lo > hi", cat(uv(head, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"),
			binary.LittleEndian.AppendUint64(nil, math.Float64bits(2)), binary.LittleEndian.AppendUint64(nil, math.Float64bits(1)), uv(nil, 1, 0, 0, 0, 0))},
		{"hist NaN lo", cat(uv(head, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"),
			binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.NaN())), binary.LittleEndian.AppendUint64(nil, math.Float64bits(1)), uv(nil, 1, 0, 0, 0, 0))},
		{"hist 2^50 bins", cat(uv(head, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"),
			binary.LittleEndian.AppendUint64(nil, 0), binary.LittleEndian.AppendUint64(nil, math.Float64bits(1)), uv(nil, 1<<50, 0, 0, 0, 0))},
		{"hist 0 bins", cat(uv(head, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"),
			binary.LittleEndian.AppendUint64(nil, 0), binary.LittleEndian.AppendUint64(nil, math.Float64bits(1)), uv(nil, 0, 0, 0, 0, 0))},
		{"fold op 0", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{0}, uv(nil, 0))},
		{"fold op 4", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{4}, uv(nil, 0))},
		{"fold max NaN", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{2}, uv(nil, 1),
			binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.NaN())))},
		{"fold min Inf", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{1}, uv(nil, 1),
			binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Inf(-1))))},
		{"fold max without value", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{2}, uv(nil, 1))},
		{"fold sum sign 2", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{3}, uv(nil, 1), []byte{2}, uv(nil, 1), []byte{1})},
		{"fold sum -0", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{3}, uv(nil, 1), []byte{1}, uv(nil, 0))},
		{"fold sum leading zero", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{3}, uv(nil, 1), []byte{0}, uv(nil, 2), []byte{0, 1})},
		{"fold sum of no values", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{3}, uv(nil, 0), []byte{0}, uv(nil, 1), []byte{1})},
		// One value is below 2^1024, 2^2098 in 2^-1074 units: 2^2100 is not a sum of one.
		{"fold sum too large", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{3}, uv(nil, 1), []byte{0}, uv(nil, 263), []byte{0x10}, make([]byte, 262))},
		{"fold sum 2^40 bytes", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 1), []byte("k"), []byte{3}, uv(nil, 1), []byte{0}, uv(nil, 1<<40), []byte{1})},
		{"folds out of order", cat(uv(head, 0, 0, 0, 1, 1), []byte("t"), uv(nil, 2, 1), []byte("k"), []byte{2}, uv(nil, 0), uv(nil, 1), []byte("a"), []byte{2}, uv(nil, 0))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode(%x): err = %v, want ErrCorrupt", tc.b, err)
			}
		})
	}
	// The smallest histogram entry (22 bytes after the key count) is accepted.
	ok := cat(uv(head, 0, 0, 1, 1), []byte("t"), uv(nil, 1, 0),
		binary.LittleEndian.AppendUint64(nil, 0), binary.LittleEndian.AppendUint64(nil, math.Float64bits(1)), uv(nil, 1, 0, 0, 0, 0), uv(nil, 0))
	if _, err := Decode(ok); err != nil {
		t.Fatalf("Decode of a one-bin histogram with an empty key: %v", err)
	}
}

// TestDecodeAllocationBound: a header announcing huge counts in a few bytes
// fails without allocating for them.
func TestDecodeAllocationBound(t *testing.T) {
	b := binary.AppendUvarint([]byte("FCRS\x02\x01\x01t\x01\x01k\x01"), 1<<40)
	b = append(b, make([]byte, 32)...)
	allocs := testing.AllocsPerRun(10, func() { _, _ = Decode(b) })
	if allocs > 30 {
		t.Fatalf("Decode of %d bytes announcing 2^40 samples: %v allocations", len(b), allocs)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range wireSets(f) {
		b, err := s.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("FCRS\x02\x00\x00\x00\x00"))
	// The smallest fold of each op.
	f.Add([]byte("FCRS\x02\x00\x00\x00\x01\x01t\x01\x01k\x01\x00"))
	f.Add([]byte("FCRS\x02\x00\x00\x00\x01\x01t\x01\x01k\x03\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode(%x): err = %v, want ErrCorrupt", b, err)
			}
			return
		}
		// Accepted input is canonical: it re-encodes to the same bytes.
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded set: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("Decode then MarshalBinary:\n in %x\nout %x", b, again)
		}
		// A decoded set merges with itself through a copy without panicking.
		c := s.Copy()
		_ = c.Merge(NewSet())
	})
}
