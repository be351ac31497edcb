package reduce

import (
	"fmt"
	"math"
)

// FoldOp is how a Fold combines one value per sample: a running minimum,
// a running maximum, or an exact sum (for a mean). The empty FoldOp means
// no fold: the values are kept per sample (PerSample).
type FoldOp string

// The fold operations.
const (
	FoldNone FoldOp = ""
	FoldMin  FoldOp = "min"
	FoldMax  FoldOp = "max"
	FoldSum  FoldOp = "sum"
)

// Valid reports whether op is FoldMin, FoldMax or FoldSum.
func (op FoldOp) Valid() bool { return op == FoldMin || op == FoldMax || op == FoldSum }

// Fold is a per-sample scalar statistic folded over the samples as they
// come: the number of samples and their minimum, maximum or exact sum
// (ExactSum). Its size does not depend on the number of samples, and
// merging is exact, commutative and associative, so no sample index is
// kept. Unlike PerSample, a Fold cannot tell a sample counted twice: the
// caller accepts each shard's result once.
//
// Use a Fold where the aggregate over samples is the min, the max or the
// mean of the per-sample values; the median and the outlier-trimmed
// aggregates need every value (PerSample).
type Fold struct {
	op  FoldOp
	n   uint64
	ext float64 // FoldMin, FoldMax: the extremum of the n values
	sum ExactSum
}

// NewFold returns an empty Fold. It panics on an invalid op (a programmer
// error).
func NewFold(op FoldOp) *Fold {
	if !op.Valid() {
		panic(fmt.Sprintf("reduce: NewFold(%q)", op))
	}
	return &Fold{op: op}
}

// Op is the fold's operation.
func (f *Fold) Op() FoldOp { return f.op }

// Count is the number of values folded.
func (f *Fold) Count() uint64 { return f.n }

// Add folds one sample's value. A NaN or ±Inf is an error wrapping
// ErrNonFinite, and f is unchanged.
func (f *Fold) Add(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("fold %s: %w: %g", f.op, ErrNonFinite, v)
	}
	f.fold(v)
	f.n++
	return nil
}

// fold combines the finite v into the value, not the count.
func (f *Fold) fold(v float64) {
	switch f.op {
	case FoldMin:
		if f.n == 0 {
			f.ext = v
		}
		f.ext = min(f.ext, v) // min(-0, +0) is -0 in either order
	case FoldMax:
		if f.n == 0 {
			f.ext = v
		}
		f.ext = max(f.ext, v)
	case FoldSum:
		_ = f.sum.Add(v)
	}
}

// Merge folds o into f; o is not changed. Different ops fail with
// ErrIncompatible.
func (f *Fold) Merge(o *Fold) error {
	if f.op != o.op {
		return fmt.Errorf("%w: fold %s and fold %s", ErrIncompatible, f.op, o.op)
	}
	if o.n == 0 {
		return nil
	}
	switch f.op {
	case FoldSum:
		f.sum.Merge(&o.sum)
	default:
		f.fold(o.ext)
	}
	f.n += o.n
	return nil
}

// Value is the aggregate of the values folded: their minimum (FoldMin),
// maximum (FoldMax) or mean (FoldSum: the exact sum divided by the count,
// rounded once to the nearest float64). An empty Fold is an error wrapping
// ErrEmpty.
func (f *Fold) Value() (float64, error) {
	if f.n == 0 {
		return 0, fmt.Errorf("fold %s: %w", f.op, ErrEmpty)
	}
	if f.op == FoldSum {
		return f.sum.Quo(f.n), nil
	}
	return f.ext, nil
}

// Sum is the exact sum of a FoldSum (empty for the other ops); it aliases
// f's storage.
func (f *Fold) Sum() *ExactSum { return &f.sum }

// Copy returns a deep copy of f.
func (f *Fold) Copy() *Fold {
	c := &Fold{op: f.op, n: f.n, ext: f.ext}
	c.sum.acc.Set(&f.sum.acc)
	return c
}

// Equal reports whether f and o have the same op, count and value, bit
// for bit.
func (f *Fold) Equal(o *Fold) bool {
	return f.op == o.op && f.n == o.n && sameBits(f.ext, o.ext) && f.sum.Equal(&o.sum)
}
