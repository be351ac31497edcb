package reduce

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"testing/quick"
)

func mustHist(t testing.TB, lo, hi float64, bins int) *Histogram {
	t.Helper()
	h, err := NewHistogram(lo, hi, bins)
	if err != nil {
		t.Fatalf("NewHistogram(%g, %g, %d): %v", lo, hi, bins, err)
	}
	return h
}

func TestNewHistogramErrors(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	tests := []struct {
		lo, hi float64
		bins   int
	}{
		{0, 1, 0},
		{0, 1, -1},
		{0, 1, MaxBins + 1},
		{1, 1, 4},
		{2, 1, 4},
		{nan, 1, 4},
		{0, nan, 4},
		{-inf, 0, 4},
		{0, inf, 4},
		{-math.MaxFloat64, math.MaxFloat64, 4}, // hi - lo overflows
		{1, math.Nextafter(1, 2), 2},           // one float64 step cannot hold two bins
	}
	for _, tc := range tests {
		if _, err := NewHistogram(tc.lo, tc.hi, tc.bins); !errors.Is(err, ErrBadEdges) {
			t.Errorf("NewHistogram(%g, %g, %d): err = %v, want ErrBadEdges", tc.lo, tc.hi, tc.bins, err)
		}
	}
}

func TestHistogramBins(t *testing.T) {
	// Edges of [-1, 1) in 4 bins: -1, -0.5, 0, 0.5, 1 (all exact in binary).
	h := mustHist(t, -1, 1, 4)
	tests := []struct {
		v    float64
		bin  int // -1 underflow, 4 overflow, -2 NaN
		name string
	}{
		{-1, 0, "lo is in the first bin"},
		{-0.5, 1, "an edge starts its bin"},
		{math.Nextafter(-0.5, -1), 0, "just below an edge"},
		{0, 2, "zero"},
		{math.Copysign(0, -1), 2, "-0 equals 0"},
		{0.999, 3, "inside the last bin"},
		{math.Nextafter(1, 0), 3, "just below hi"},
		{1, 4, "hi overflows"},
		{math.Inf(1), 4, "+Inf overflows"},
		{math.Nextafter(-1, -2), -1, "just below lo"},
		{math.Inf(-1), -1, "-Inf underflows"},
		{math.NaN(), -2, "NaN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := h.Copy()
			h.Add(tc.v)
			got := -3
			switch {
			case h.NaN() == 1:
				got = -2
			case h.Underflow() == 1:
				got = -1
			case h.Overflow() == 1:
				got = 4
			default:
				for k := range h.Bins() {
					if h.Count(k) == 1 {
						got = k
					}
				}
			}
			if got != tc.bin {
				t.Fatalf("Add(%v) went to %d, want %d", tc.v, got, tc.bin)
			}
			if tc.bin == -2 {
				if h.Total() != 0 {
					t.Fatalf("Total() = %d after a NaN, want 0", h.Total())
				}
			} else if h.Total() != 1 {
				t.Fatalf("Total() = %d after one value, want 1", h.Total())
			}
		})
	}
}

// TestHistogramBinMatchesEdges checks the fast bin formula against a plain
// search of the edges, on values near the edges of awkward ranges.
func TestHistogramBinMatchesEdges(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ranges := []struct {
		lo, hi float64
		bins   int
	}{{0, 1, 2048}, {-3.7, 11.3, 1000}, {0, 0.1, 3}, {1e6, 1e6 + 1, 777}, {-1e-3, 2e-3, 129}}
	for _, rg := range ranges {
		h := mustHist(t, rg.lo, rg.hi, rg.bins)
		for range 20000 {
			k := r.IntN(rg.bins + 1)
			v := h.Edge(k)
			switch r.IntN(3) {
			case 0:
				v = math.Nextafter(v, math.Inf(-1))
			case 1:
				v = math.Nextafter(v, math.Inf(1))
			}
			if !(v >= rg.lo && v < rg.hi) {
				continue
			}
			want := -1
			for j := range rg.bins {
				if h.Edge(j) <= v && v < h.Edge(j+1) {
					want = j
					break
				}
			}
			if got := h.bin(v); got != want {
				t.Fatalf("[%g, %g) in %d bins: bin(%v) = %d, want %d (edges %v, %v)",
					rg.lo, rg.hi, rg.bins, v, got, want, h.Edge(want), h.Edge(want+1))
			}
		}
	}
}

func TestAddFloat32sMatchesAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	vs := make([]float32, 10000)
	for i := range vs {
		vs[i] = float32(r.NormFloat64() * 3)
	}
	vs[0], vs[1], vs[2] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
	a, b := mustHist(t, -4, 4, 100), mustHist(t, -4, 4, 100)
	a.AddFloat32s(vs)
	for _, v := range vs {
		b.Add(float64(v))
	}
	if !a.Equal(b) {
		t.Fatalf("AddFloat32s counts %v (u %d o %d n %d), Add counts %v (u %d o %d n %d)",
			a.Counts(), a.Underflow(), a.Overflow(), a.NaN(), b.Counts(), b.Underflow(), b.Overflow(), b.NaN())
	}
	if a.NaN() != 1 || a.Total() != uint64(len(vs)-1) {
		t.Fatalf("NaN %d total %d, want 1 and %d", a.NaN(), a.Total(), len(vs)-1)
	}
}

// randomValues returns n float32 values: mostly normal, some outside [-4, 4)
// and a few NaNs.
func randomValues(r *rand.Rand, n int) []float32 {
	vs := make([]float32, n)
	for i := range vs {
		switch r.IntN(50) {
		case 0:
			vs[i] = float32(math.NaN())
		case 1:
			vs[i] = float32(r.NormFloat64() * 100)
		default:
			vs[i] = float32(r.NormFloat64())
		}
	}
	return vs
}

func TestHistogramMergeEqualsObservedAtOnce(t *testing.T) {
	f := func(seed uint64, n16 uint16, k8 uint8) bool {
		r := rand.New(rand.NewPCG(seed, 8))
		vs := randomValues(r, int(n16)%5000)
		k := int(k8)%9 + 1
		whole := mustHist(t, -4, 4, 64)
		whole.AddFloat32s(vs)
		parts := make([]*Histogram, k)
		for i := range parts {
			parts[i] = mustHist(t, -4, 4, 64)
		}
		// Shards of random sizes, observed by random parts, merged in random order.
		for len(vs) > 0 {
			n := min(len(vs), r.IntN(200)+1)
			parts[r.IntN(k)].AddFloat32s(vs[:n])
			vs = vs[n:]
		}
		merged := mustHist(t, -4, 4, 64)
		for _, i := range r.Perm(k) {
			if err := merged.Merge(parts[i]); err != nil {
				t.Fatal(err)
			}
		}
		if !merged.Equal(whole) {
			t.Logf("seed %d: merged %v, whole %v", seed, merged.Counts(), whole.Counts())
			return false
		}
		return true
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestHistogramMergeCommutativeAssociative(t *testing.T) {
	f := func(seed uint64) bool {
		r := rand.New(rand.NewPCG(seed, 9))
		h := make([]*Histogram, 3)
		for i := range h {
			h[i] = mustHist(t, -4, 4, 32)
			h[i].AddFloat32s(randomValues(r, r.IntN(300)))
		}
		ab := h[0].Copy()
		_ = ab.Merge(h[1])
		ba := h[1].Copy()
		_ = ba.Merge(h[0])
		abc := ab.Copy()
		_ = abc.Merge(h[2])
		bc := h[1].Copy()
		_ = bc.Merge(h[2])
		aBC := h[0].Copy()
		_ = aBC.Merge(bc)
		return ab.Equal(ba) && abc.Equal(aBC)
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestHistogramMergeIncompatible(t *testing.T) {
	a := mustHist(t, 0, 1, 8)
	a.Add(0.5)
	before := a.Copy()
	for _, o := range []*Histogram{mustHist(t, 0, 1, 16), mustHist(t, 0, 2, 8), mustHist(t, -1, 1, 8)} {
		if err := a.Merge(o); !errors.Is(err, ErrIncompatible) {
			t.Errorf("merge [0, 1)/8 with [%g, %g)/%d: err = %v, want ErrIncompatible", o.Lo(), o.Hi(), o.Bins(), err)
		}
	}
	if !a.Equal(before) {
		t.Fatal("a failed merge changed the receiver")
	}
}

func TestHistogramMergeLeavesArgumentAlone(t *testing.T) {
	a, b := mustHist(t, 0, 1, 4), mustHist(t, 0, 1, 4)
	a.Add(0.1)
	b.Add(0.9)
	b.Add(math.NaN())
	before := b.Copy()
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if !b.Equal(before) {
		t.Fatalf("Merge changed its argument: %v", b.Counts())
	}
	if a.Count(0) != 1 || a.Count(3) != 1 || a.NaN() != 1 {
		t.Fatalf("merged counts %v nan %d, want [1 0 0 1] nan 1", a.Counts(), a.NaN())
	}
	// Copies do not share counts.
	c := a.Copy()
	c.Add(0.1)
	if a.Count(0) != 1 {
		t.Fatal("Add on a copy changed the original")
	}
}

// TestHistogramMemoryBound: a histogram's size is fixed by its bins; adding
// values allocates nothing, however many there are.
func TestHistogramMemoryBound(t *testing.T) {
	h := mustHist(t, 0, 8, 2048)
	r := rand.New(rand.NewPCG(10, 11))
	vs := randomValues(r, 1<<16)
	allocs := testing.AllocsPerRun(20, func() {
		h.AddFloat32s(vs)
		h.Add(1.5)
	})
	if allocs != 0 {
		t.Fatalf("adding %d values allocated %v times, want 0", len(vs), allocs)
	}
	if h.Bins() != 2048 || len(h.counts) != 2048 || cap(h.counts) != 2048 {
		t.Fatalf("histogram grew: %d bins, len %d cap %d", h.Bins(), len(h.counts), cap(h.counts))
	}
	if want := uint64(21 * (len(vs) + 1)); h.Total()+h.NaN() != want {
		t.Fatalf("counted %d values, want %d", h.Total()+h.NaN(), want)
	}
}
