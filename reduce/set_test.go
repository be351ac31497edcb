package reduce

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"testing/quick"
)

// observation is what a worker sees of one sample: an activation per tensor.
type observation struct {
	index int
	act   map[string][]float32
}

var obsTensors = []string{"conv1", "relu2", "fc"}

func randomObservations(r *rand.Rand, n int) []observation {
	obs := make([]observation, n)
	for i, idx := range r.Perm(3 * n)[:n] {
		o := observation{index: idx, act: map[string][]float32{}}
		for _, t := range obsTensors {
			o.act[t] = randomValues(r, 16+r.IntN(16))
		}
		obs[i] = o
	}
	return obs
}

// observe records one sample into s as a worker would: per-sample min and
// abs-max of the finite values, their folds (exact sum and min of the min,
// max of the abs-max), a histogram of |x|, and the NaN count.
func observe(t testing.TB, s *Set, o observation) {
	t.Helper()
	for _, name := range obsTensors {
		mn, amax := math.Inf(1), 0.0
		abs := make([]float32, 0, len(o.act[name]))
		var nan uint64
		for _, v := range o.act[name] {
			if v != v {
				nan++
				continue
			}
			mn = min(mn, float64(v))
			amax = max(amax, math.Abs(float64(v)))
			abs = append(abs, float32(math.Abs(float64(v))))
		}
		if err := s.Add(name, "min", o.index, []float64{mn}); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(name, "abs_max", o.index, []float64{amax}); err != nil {
			t.Fatal(err)
		}
		if !math.IsInf(mn, 0) {
			for _, f := range []struct {
				key string
				op  FoldOp
				v   float64
			}{{"sum(min)", FoldSum, mn}, {"min(min)", FoldMin, mn}, {"max(abs_max)", FoldMax, amax}} {
				if err := s.AddFold(name, f.key, f.op, f.v); err != nil {
					t.Fatal(err)
				}
			}
		}
		h, err := s.EnsureHist(name, "abs_hist", 0, 8, 128)
		if err != nil {
			t.Fatal(err)
		}
		h.AddFloat32s(abs)
		if nan > 0 {
			s.NonFinite[name] += nan
		}
	}
}

func TestSetMergeEqualsObservedAtOnce(t *testing.T) {
	f := func(seed uint64, n8, k8 uint8) bool {
		r := rand.New(rand.NewPCG(seed, 20))
		obs := randomObservations(r, int(n8)%60)
		k := int(k8)%6 + 1
		whole := NewSet()
		for _, o := range obs {
			observe(t, whole, o)
		}
		parts := make([]*Set, k)
		for i := range parts {
			parts[i] = NewSet()
		}
		for _, i := range r.Perm(len(obs)) {
			observe(t, parts[r.IntN(k)], obs[i])
		}
		merged := NewSet()
		for _, i := range r.Perm(k) {
			if err := merged.Merge(parts[i]); err != nil {
				t.Fatal(err)
			}
		}
		if !merged.Equal(whole) {
			t.Logf("seed %d: merged set differs from the set observed at once", seed)
			return false
		}
		// Bit for bit, down to the encoding.
		x, err1 := merged.MarshalBinary()
		y, err2 := whole.MarshalBinary()
		if err1 != nil || err2 != nil || string(x) != string(y) {
			t.Logf("seed %d: encodings differ (%v, %v)", seed, err1, err2)
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 50}); err != nil {
		t.Fatal(err)
	}
}

func TestSetMergeCommutativeAssociative(t *testing.T) {
	f := func(seed uint64) bool {
		r := rand.New(rand.NewPCG(seed, 21))
		obs := randomObservations(r, 30)
		p := []*Set{NewSet(), NewSet(), NewSet()}
		for _, o := range obs {
			observe(t, p[r.IntN(3)], o)
		}
		merge := func(a, b *Set) *Set {
			c := a.Copy()
			if err := c.Merge(b); err != nil {
				t.Fatal(err)
			}
			return c
		}
		ab, ba := merge(p[0], p[1]), merge(p[1], p[0])
		abC, aBC := merge(ab, p[2]), merge(p[0], merge(p[1], p[2]))
		return ab.Equal(ba) && abC.Equal(aBC)
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 50}); err != nil {
		t.Fatal(err)
	}
}

func TestSetMergeHists(t *testing.T) {
	a, b := NewSet(), NewSet()
	ha, _ := a.EnsureHist("x", "h", 0, 1, 4)
	ha.Add(0.1)
	hb, _ := b.EnsureHist("x", "h", 0, 1, 4)
	hb.Add(0.9)
	hy, _ := b.EnsureHist("y", "h", -1, 1, 2)
	hy.Add(-0.5)
	before := b.Copy()
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if !b.Equal(before) {
		t.Fatal("Set.Merge changed its argument")
	}
	if got := a.Hist("x", "h").Counts(); got[0] != 1 || got[3] != 1 {
		t.Fatalf("x/h counts = %v, want [1 0 0 1]", got)
	}
	if got := a.Hist("y", "h"); got == nil || got.Count(0) != 1 {
		t.Fatalf("y/h = %v, want a copy of b's", got)
	}
	if a.Hist("y", "h") == b.Hist("y", "h") {
		t.Fatal("merged set shares a histogram with its argument")
	}
}

func TestSetMergeIncompatibleHistChangesNothing(t *testing.T) {
	a, b := NewSet(), NewSet()
	_ = a.Add("x", "min", 0, []float64{1})
	h, _ := a.EnsureHist("x", "h", 0, 1, 4)
	h.Add(0.5)
	_ = b.Add("x", "min", 1, []float64{2})
	_, _ = b.EnsureHist("x", "h", 0, 2, 4)
	before := a.Copy()
	if err := a.Merge(b); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("merge of [0, 1) and [0, 2) histograms: err = %v, want ErrIncompatible", err)
	}
	if !a.Equal(before) {
		t.Fatal("a failed merge changed the receiver")
	}
}

func TestEnsureHist(t *testing.T) {
	s := NewSet()
	h1, err := s.EnsureHist("x", "h", 0, 1, 8)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := s.EnsureHist("x", "h", 0, 1, 8)
	if err != nil || h1 != h2 {
		t.Fatalf("second EnsureHist = %p, %v; want the first %p", h2, err, h1)
	}
	if _, err := s.EnsureHist("x", "h", 0, 1, 16); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("EnsureHist with other bins: err = %v, want ErrIncompatible", err)
	}
	if _, err := s.EnsureHist("x", "g", 1, 0, 8); !errors.Is(err, ErrBadEdges) {
		t.Fatalf("EnsureHist over [1, 0): err = %v, want ErrBadEdges", err)
	}
	// A Set built as a literal, without maps, still works.
	var z Set
	if _, err := z.EnsureHist("z", "h", 0, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := z.Merge(s); err != nil {
		t.Fatal(err)
	}
}
