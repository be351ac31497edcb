package reduce

import (
	"fmt"
	"math"
	"math/big"
)

// sumScale is the exponent of the fixed point of ExactSum: every finite
// float64 is an integer multiple of 2^-1074 (the smallest subnormal), so
// Σ v × 2^1074 is an integer.
const sumScale = 1074

// sumMaxBits bounds the magnitude of an ExactSum's integer after n
// additions: |v| < 2^1024, so |Σ v| × 2^1074 < n × 2^2098.
func sumMaxBits(n uint64) int {
	b := 2098
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// ExactSum is the exact sum of finite float64 values: an integer number of
// 2^-1074, which no rounding ever touches. Adding and merging are exact, so
// the sum does not depend on the order of the values or on how they were
// split between workers; Float64 and Quo round once, to nearest (ties to
// even). Its size is at most about 270 bytes, however many values it has
// summed. The zero value is the empty sum.
type ExactSum struct {
	acc big.Int // Σ v × 2^1074
}

// Add adds v to the sum. A NaN or ±Inf is an error wrapping ErrNonFinite,
// and the sum is unchanged.
func (s *ExactSum) Add(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%w: %g", ErrNonFinite, v)
	}
	b := math.Float64bits(v)
	exp := int(b >> 52 & 0x7ff)
	mant := b & (1<<52 - 1)
	shift := 0
	if exp > 0 { // normal: (2^52 + mant) × 2^(exp-1075); subnormal: mant × 2^-1074
		mant |= 1 << 52
		shift = exp - 1
	}
	if mant == 0 {
		return nil
	}
	var x big.Int
	x.SetUint64(mant).Lsh(&x, uint(shift))
	if b>>63 != 0 {
		s.acc.Sub(&s.acc, &x)
	} else {
		s.acc.Add(&s.acc, &x)
	}
	return nil
}

// Merge adds o's sum to s; o is not changed.
func (s *ExactSum) Merge(o *ExactSum) { s.acc.Add(&s.acc, &o.acc) }

// Float64 is the sum rounded to the nearest float64 (±Inf beyond the
// float64 range).
func (s *ExactSum) Float64() float64 { return s.Quo(1) }

// Quo is the sum divided by n, rounded once to the nearest float64: with
// n the number of values, their mean. It panics when n is 0.
func (s *ExactSum) Quo(n uint64) float64 {
	if n == 0 {
		panic("reduce: ExactSum.Quo by 0")
	}
	var d big.Int
	d.SetUint64(n).Lsh(&d, sumScale)
	f, _ := new(big.Rat).SetFrac(&s.acc, &d).Float64()
	return f
}

// Rat is the exact sum.
func (s *ExactSum) Rat() *big.Rat {
	var d big.Int
	d.SetInt64(1).Lsh(&d, sumScale)
	return new(big.Rat).SetFrac(&s.acc, &d)
}

// Copy returns a deep copy of s.
func (s *ExactSum) Copy() *ExactSum {
	c := &ExactSum{}
	c.acc.Set(&s.acc)
	return c
}

// Equal reports whether s and o hold the same sum.
func (s *ExactSum) Equal(o *ExactSum) bool { return s.acc.Cmp(&o.acc) == 0 }
