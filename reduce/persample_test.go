package reduce

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"testing/quick"
)

// randomSet builds n samples of dim values with distinct indices drawn from r.
func randomSamples(r *rand.Rand, n, dim int) (idx []int, vals [][]float64) {
	perm := r.Perm(n * 3)
	for i := range n {
		v := make([]float64, dim)
		for j := range v {
			v[j] = r.NormFloat64() * 10
		}
		idx = append(idx, perm[i])
		vals = append(vals, v)
	}
	return idx, vals
}

// split adds the samples into k PerSamples at random, in a random order.
func split(r *rand.Rand, idx []int, vals [][]float64, dim, k int) []*PerSample {
	parts := make([]*PerSample, k)
	for i := range parts {
		parts[i] = NewPerSample(dim)
	}
	for _, i := range r.Perm(len(idx)) {
		if err := parts[r.IntN(k)].Add(idx[i], vals[i]); err != nil {
			panic(err)
		}
	}
	return parts
}

func TestPerSampleMergeEqualsObservedAtOnce(t *testing.T) {
	f := func(seed uint64, n8, k8, dim8 uint8) bool {
		r := rand.New(rand.NewPCG(seed, 1))
		n, k, dim := int(n8)%200, int(k8)%7+1, int(dim8)%4+1
		idx, vals := randomSamples(r, n, dim)
		whole := NewPerSample(dim)
		for i := range idx {
			if err := whole.Add(idx[i], vals[i]); err != nil {
				t.Fatal(err)
			}
		}
		parts := split(r, idx, vals, dim, k)
		merged := NewPerSample(dim)
		for _, p := range parts {
			if err := merged.Merge(p); err != nil {
				t.Fatal(err)
			}
		}
		if !merged.Equal(whole) {
			t.Logf("seed %d n %d k %d dim %d: merged %v, whole %v", seed, n, k, dim, merged.Indices(), whole.Indices())
			return false
		}
		return true
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPerSampleMergeCommutativeAssociative(t *testing.T) {
	f := func(seed uint64) bool {
		r := rand.New(rand.NewPCG(seed, 2))
		idx, vals := randomSamples(r, 60, 2)
		p := split(r, idx, vals, 2, 3)
		ab := p[0].Copy()
		_ = ab.Merge(p[1])
		ba := p[1].Copy()
		_ = ba.Merge(p[0])
		abc := ab.Copy()
		_ = abc.Merge(p[2])
		bc := p[1].Copy()
		_ = bc.Merge(p[2])
		aBC := p[0].Copy()
		_ = aBC.Merge(bc)
		return ab.Equal(ba) && abc.Equal(aBC)
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPerSampleMergeLeavesArgumentAlone(t *testing.T) {
	a, b := NewPerSample(1), NewPerSample(1)
	_ = a.Add(3, []float64{1})
	_ = b.Add(1, []float64{2})
	before := b.Copy()
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if !b.Equal(before) {
		t.Fatalf("Merge changed its argument: %v", b.Indices())
	}
	if got := a.Column(0); got[0] != 2 || got[1] != 1 {
		t.Fatalf("merged column = %v, want [2 1] (sample 1 then sample 3)", got)
	}
}

func TestPerSampleErrors(t *testing.T) {
	a, b := NewPerSample(2), NewPerSample(1)
	if err := a.Merge(b); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("merge of dims 2 and 1: err = %v, want ErrIncompatible", err)
	}
	if err := a.Add(0, []float64{1}); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("add of 1 value to dim 2: err = %v, want ErrIncompatible", err)
	}
	c, d := NewPerSample(1), NewPerSample(1)
	_ = c.Add(5, []float64{1})
	_ = d.Add(5, []float64{2})
	if err := c.Merge(d); !errors.Is(err, ErrDuplicateSample) {
		t.Fatalf("merge with sample 5 twice: err = %v, want ErrDuplicateSample", err)
	}
}

func TestPerSampleEqualIsBitwise(t *testing.T) {
	a, b := NewPerSample(1), NewPerSample(1)
	_ = a.Add(0, []float64{0})
	_ = b.Add(0, []float64{math.Copysign(0, -1)})
	if a.Equal(b) {
		t.Fatal("0 and -0 compare equal; Equal must compare bits")
	}
}

func TestSetMerge(t *testing.T) {
	a, b := NewSet(), NewSet()
	_ = a.Add("x", "min", 0, []float64{-1})
	_ = b.Add("x", "min", 1, []float64{-2})
	_ = b.Add("y", "max", 1, []float64{7})
	a.NonFinite["x"] = 2
	b.NonFinite["x"] = 3
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if got := a.Get("x", "min").Len(); got != 2 {
		t.Fatalf("x/min has %d samples, want 2", got)
	}
	if got := a.Get("y", "max").Column(0)[0]; got != 7 {
		t.Fatalf("y/max = %v, want 7", got)
	}
	if a.NonFinite["x"] != 5 {
		t.Fatalf("non-finite count of x = %d, want 2+3", a.NonFinite["x"])
	}
}

func TestPerSampleDuplicateReportedEveryTime(t *testing.T) {
	p := NewPerSample(1)
	_ = p.Add(2, []float64{1})
	_ = p.Add(1, []float64{1})
	_ = p.Add(2, []float64{3})
	for i := range 2 {
		if err := p.Sort(); !errors.Is(err, ErrDuplicateSample) {
			t.Fatalf("Sort call %d with sample 2 twice: err = %v, want ErrDuplicateSample", i+1, err)
		}
	}
	if _, err := (&Set{Stats: map[string]map[string]*PerSample{"x": {"min": p}}}).MarshalBinary(); !errors.Is(err, ErrDuplicateSample) {
		t.Fatalf("encode after a failed Sort: err = %v, want ErrDuplicateSample", err)
	}
}
