package reduce

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"testing/quick"
)

// wideValues draws n finite float64 values over the whole float64 range:
// ordinary ones, huge ones near MaxFloat64, subnormals, exact opposites of
// earlier values (cancellation) and neighbours of earlier values.
func wideValues(r *rand.Rand, n int) []float64 {
	vs := make([]float64, 0, n)
	for len(vs) < n {
		var v float64
		switch k := r.IntN(8); {
		case k == 0 && len(vs) > 0: // cancels an earlier value exactly
			v = -vs[r.IntN(len(vs))]
		case k == 1 && len(vs) > 0: // one ulp away from an earlier value
			v = math.Nextafter(vs[r.IntN(len(vs))], math.Inf(1-2*r.IntN(2)))
		case k == 2: // huge
			v = math.Float64frombits(0x7fe0_0000_0000_0000 | r.Uint64()&(1<<52-1))
		case k == 3: // subnormal or zero
			v = math.Float64frombits(r.Uint64() & (1<<52 - 1))
		case k == 4: // any finite bits
			v = math.Float64frombits(r.Uint64() &^ (1 << 63))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
		default: // a float32 activation, the common case
			v = float64(float32(r.NormFloat64() * math.Exp2(float64(r.IntN(40)-20))))
		}
		if math.IsInf(v, 0) {
			continue
		}
		if r.IntN(2) == 0 {
			v = -v
		}
		vs = append(vs, v)
	}
	return vs
}

// ratSum is the deliberately simple reference: the sum in math/big.Rat.
func ratSum(vs []float64) *big.Rat {
	s := new(big.Rat)
	for _, v := range vs {
		s.Add(s, new(big.Rat).SetFloat64(v))
	}
	return s
}

func sumOf(t testing.TB, vs []float64) *ExactSum {
	t.Helper()
	var s ExactSum
	for _, v := range vs {
		if err := s.Add(v); err != nil {
			t.Fatal(err)
		}
	}
	return &s
}

func TestExactSumMatchesRat(t *testing.T) {
	f := func(seed uint64, n8 uint8) bool {
		r := rand.New(rand.NewPCG(seed, 40))
		vs := wideValues(r, int(n8)%80+1)
		s := sumOf(t, vs)
		want := ratSum(vs)
		if s.Rat().Cmp(want) != 0 {
			t.Logf("seed %d: sum %v, want %v", seed, s.Rat(), want)
			return false
		}
		wf, _ := want.Float64()
		if got := s.Float64(); !sameBits(got, wf) && !(got == 0 && wf == 0) {
			t.Logf("seed %d: Float64 = %v, want %v", seed, got, wf)
			return false
		}
		n := uint64(len(vs))
		wm, _ := new(big.Rat).Quo(want, new(big.Rat).SetUint64(n)).Float64()
		if got := s.Quo(n); got != wm {
			t.Logf("seed %d: Quo(%d) = %v, want %v", seed, n, got, wm)
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
}

func TestExactSumCases(t *testing.T) {
	tiny := math.SmallestNonzeroFloat64
	tests := []struct {
		name string
		vs   []float64
		n    uint64
		want float64 // the exact mean, rounded once
	}{
		// 1e308 + 1 - 1e308 is 1 exactly; left to right in float64 it is 0.
		{"cancellation", []float64{1e308, 1, -1e308}, 1, 1},
		// The sum overflows float64, the mean does not.
		{"overflowing sum", []float64{math.MaxFloat64, math.MaxFloat64}, 2, math.MaxFloat64},
		// Two smallest subnormals halved: 2^-1074, exact.
		{"subnormal mean", []float64{tiny, tiny}, 2, tiny},
		// 2^-1074 / 2 is a tie between 0 and 2^-1074: to even, 0.
		{"subnormal tie", []float64{tiny}, 2, 0},
		// 3 × 2^-1074 / 2 = 1.5 × 2^-1074: a tie between 1 and 2, to even 2.
		{"subnormal tie up", []float64{tiny, 2 * tiny}, 2, 2 * tiny},
		// (0.1 + 0.2 + 0.3) / 3 of the float64 values, exact then rounded
		// once: Python's float(sum(map(Fraction, (0.1, 0.2, 0.3))) / 3) is
		// 0.2, where the left-to-right float64 sum gives 0.20000000000000004.
		{"tenths", []float64{0.1, 0.2, 0.3}, 3, 0.2},
		{"empty", nil, 5, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sumOf(t, tc.vs)
			if got := s.Quo(tc.n); !sameBits(got, tc.want) {
				t.Fatalf("mean of %v over %d = %v (%#x), want %v", tc.vs, tc.n, got, math.Float64bits(got), tc.want)
			}
		})
	}
	var s ExactSum
	_ = s.Add(math.MaxFloat64)
	_ = s.Add(math.MaxFloat64)
	if got := s.Float64(); !math.IsInf(got, 1) {
		t.Fatalf("2 × MaxFloat64 rounded = %v, want +Inf", got)
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := s.Add(v); !errors.Is(err, ErrNonFinite) {
			t.Fatalf("Add(%v): err = %v, want ErrNonFinite", v, err)
		}
	}
}

// foldOf folds vs with op.
func foldOf(t testing.TB, op FoldOp, vs []float64) *Fold {
	t.Helper()
	f := NewFold(op)
	for _, v := range vs {
		if err := f.Add(v); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// refFold is the simple reference: min and max by comparison, the mean as
// the math/big.Rat sum over the count, rounded once.
func refFold(op FoldOp, vs []float64) float64 {
	switch op {
	case FoldMin:
		m := math.Inf(1)
		for _, v := range vs {
			m = min(m, v)
		}
		return m
	case FoldMax:
		m := math.Inf(-1)
		for _, v := range vs {
			m = max(m, v)
		}
		return m
	}
	f, _ := new(big.Rat).Quo(ratSum(vs), new(big.Rat).SetInt64(int64(len(vs)))).Float64()
	return f
}

func TestFoldMergeEqualsObservedAtOnce(t *testing.T) {
	for _, op := range []FoldOp{FoldMin, FoldMax, FoldSum} {
		t.Run(string(op), func(t *testing.T) {
			f := func(seed uint64, n8, k8 uint8) bool {
				r := rand.New(rand.NewPCG(seed, 41))
				vs := wideValues(r, int(n8)%100+1)
				k := int(k8)%7 + 1
				whole := foldOf(t, op, vs)
				parts := make([]*Fold, k)
				for i := range parts {
					parts[i] = NewFold(op)
				}
				for _, i := range r.Perm(len(vs)) {
					if err := parts[r.IntN(k)].Add(vs[i]); err != nil {
						t.Fatal(err)
					}
				}
				merged := NewFold(op)
				for _, i := range r.Perm(k) {
					if err := merged.Merge(parts[i]); err != nil {
						t.Fatal(err)
					}
				}
				if !merged.Equal(whole) {
					t.Logf("seed %d: merged fold differs from the fold observed at once", seed)
					return false
				}
				got, err := whole.Value()
				if want := refFold(op, vs); err != nil || got != want {
					t.Logf("seed %d: value %v (%v), reference %v", seed, got, err, want)
					return false
				}
				return true
			}
			if err := quick.Check(f, &quick.Config{MaxCount: 200}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFoldMergeCommutativeAssociative(t *testing.T) {
	for _, op := range []FoldOp{FoldMin, FoldMax, FoldSum} {
		t.Run(string(op), func(t *testing.T) {
			f := func(seed uint64) bool {
				r := rand.New(rand.NewPCG(seed, 42))
				p := []*Fold{NewFold(op), NewFold(op), NewFold(op)}
				for _, v := range wideValues(r, 60) {
					_ = p[r.IntN(3)].Add(v)
				}
				merge := func(a, b *Fold) *Fold {
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
			if err := quick.Check(f, &quick.Config{MaxCount: 100}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFoldSignedZeros(t *testing.T) {
	// min and max of -0 and +0 do not depend on the order they come in.
	negZero := math.Copysign(0, -1)
	for _, op := range []FoldOp{FoldMin, FoldMax} {
		a, b := foldOf(t, op, []float64{negZero, 0}), foldOf(t, op, []float64{0, negZero})
		if !a.Equal(b) {
			t.Fatalf("fold %s of -0 and +0 depends on their order", op)
		}
	}
}

func TestFoldErrors(t *testing.T) {
	f := NewFold(FoldMax)
	if _, err := f.Value(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Value of an empty fold: err = %v, want ErrEmpty", err)
	}
	if err := f.Add(math.NaN()); !errors.Is(err, ErrNonFinite) || f.Count() != 0 {
		t.Fatalf("Add(NaN): err = %v, count %d; want ErrNonFinite, 0", err, f.Count())
	}
	if err := f.Merge(NewFold(FoldMin)); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("merge of max and min folds: err = %v, want ErrIncompatible", err)
	}
	s := NewSet()
	if err := s.AddFold("x", "k", FoldSum, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFold("x", "k", FoldMax, 1); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("AddFold with another op: err = %v, want ErrIncompatible", err)
	}
	o := NewSet()
	_ = o.AddFold("x", "k", FoldMin, 2)
	_ = o.Add("x", "min", 0, []float64{2})
	before := s.Copy()
	if err := s.Merge(o); !errors.Is(err, ErrIncompatible) || !s.Equal(before) {
		t.Fatalf("merge of sum and min folds: err = %v, changed %v; want ErrIncompatible, unchanged", err, !s.Equal(before))
	}
}

// TestFoldSizeFlat: a fold's encoding does not grow with its count.
func TestFoldSizeFlat(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	size := func(n int) int {
		s := NewSet()
		for range n {
			v := float64(float32(r.NormFloat64()))
			_ = s.AddFold("x", "sum(max)", FoldSum, v)
			_ = s.AddFold("x", "max(max)", FoldMax, v)
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	// float32 values of |v| < 8 sum, in 2^-1074 units, to under
	// 2^(1074+3+log2 n) ≈ 2^1094 for n = 160,000: 137 bytes.
	small, large := size(16), size(160000)
	if large > small+8 {
		t.Fatalf("encoding of 160,000 folded samples: %d bytes, of 16: %d", large, small)
	}
}
