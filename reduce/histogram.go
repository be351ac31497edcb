package reduce

import (
	"fmt"
	"math"
	"slices"
)

// MaxBins is the largest number of bins NewHistogram accepts.
const MaxBins = 1 << 24

// Histogram counts values over fixed edges: N equal bins over [lo, hi), plus
// the values below lo (underflow, -Inf included), at or above hi (overflow,
// +Inf included) and NaNs. Counts are integers, so merging is exact,
// commutative and associative, and the memory is bins×8 bytes whatever the
// number of values added. The zero value is not usable; create one with
// NewHistogram.
type Histogram struct {
	lo, hi    float64
	width     float64 // (hi - lo) / bins
	scale     float64 // bins / (hi - lo): a first guess of the bin
	counts    []uint64
	underflow uint64
	overflow  uint64
	nan       uint64
}

// NewHistogram returns an empty histogram of bins equal bins over [lo, hi).
// lo and hi must be finite with lo < hi, and the range wide enough for every
// bin to have a width in float64.
func NewHistogram(lo, hi float64, bins int) (*Histogram, error) {
	if bins < 1 || bins > MaxBins {
		return nil, fmt.Errorf("new histogram: %w: %d bins, want 1 to %d", ErrBadEdges, bins, MaxBins)
	}
	w := hi - lo
	if math.IsNaN(lo) || math.IsInf(lo, 0) || math.IsNaN(hi) || math.IsInf(hi, 0) || !(lo < hi) || math.IsInf(w, 0) {
		return nil, fmt.Errorf("new histogram: %w: [%g, %g)", ErrBadEdges, lo, hi)
	}
	h := &Histogram{lo: lo, hi: hi, width: w / float64(bins), scale: float64(bins) / w, counts: make([]uint64, bins)}
	for k := 1; k <= bins; k++ {
		if !(h.Edge(k) > h.Edge(k-1)) {
			return nil, fmt.Errorf("new histogram: %w: [%g, %g) too narrow for %d bins", ErrBadEdges, lo, hi, bins)
		}
	}
	return h, nil
}

// Lo is the lower edge of the first bin.
func (h *Histogram) Lo() float64 { return h.lo }

// Hi is the upper edge of the last bin (excluded from it).
func (h *Histogram) Hi() float64 { return h.hi }

// Bins is the number of bins between Lo and Hi.
func (h *Histogram) Bins() int { return len(h.counts) }

// Edge is the lower edge of bin k, for k in [0, Bins()]: Lo + k×width, and
// Hi for k = Bins(). Bin k holds the values v with Edge(k) <= v < Edge(k+1).
func (h *Histogram) Edge(k int) float64 {
	if k == len(h.counts) {
		return h.hi
	}
	return edge(h.lo, h.width, k)
}

// edge is lo + k×width rounded after the product: the explicit conversion
// forbids a fused multiply-add, which arm64 and others would otherwise be
// free to use, so the edges are the same bits on every machine.
func edge(lo, width float64, k int) float64 {
	return lo + float64(float64(k)*width)
}

// Count is the number of values in bin k.
func (h *Histogram) Count(k int) uint64 { return h.counts[k] }

// Counts returns a copy of the bin counts.
func (h *Histogram) Counts() []uint64 { return slices.Clone(h.counts) }

// Underflow is the number of values below Lo, -Inf included.
func (h *Histogram) Underflow() uint64 { return h.underflow }

// Overflow is the number of values at or above Hi, +Inf included.
func (h *Histogram) Overflow() uint64 { return h.overflow }

// NaN is the number of NaNs added.
func (h *Histogram) NaN() uint64 { return h.nan }

// Total is the number of non-NaN values added: underflow, bins and overflow.
func (h *Histogram) Total() uint64 {
	t := h.underflow + h.overflow
	for _, c := range h.counts {
		t += c
	}
	return t
}

// bin returns the bin of v, for lo <= v < hi. The guess from scale may be
// one off at an edge because of rounding; the edges decide, so a value
// always lands in the bin Edge describes, on every machine and whatever the
// order of adds.
func (h *Histogram) bin(v float64) int {
	k := int((v - h.lo) * h.scale)
	if k >= len(h.counts) {
		k = len(h.counts) - 1
	}
	for v < h.Edge(k) {
		k--
	}
	for v >= h.Edge(k+1) {
		k++
	}
	return k
}

// Add counts one value.
func (h *Histogram) Add(v float64) {
	switch {
	case v != v:
		h.nan++
	case v < h.lo:
		h.underflow++
	case v >= h.hi:
		h.overflow++
	default:
		h.counts[h.bin(v)]++
	}
}

// AddFloat32s counts every value of vs (exactly as Add(float64(v)) would).
func (h *Histogram) AddFloat32s(vs []float32) {
	lo, hi, width, scale := h.lo, h.hi, h.width, h.scale
	counts := h.counts
	last := len(counts) - 1
	var under, over, nan uint64
	for _, f := range vs {
		v := float64(f)
		if v != v {
			nan++
			continue
		}
		if v < lo {
			under++
			continue
		}
		if v >= hi {
			over++
			continue
		}
		// As bin, inlined: a guess, then the edges decide.
		k := int((v - lo) * scale)
		if k > last {
			k = last
		}
		for v < edge(lo, width, k) {
			k--
		}
		for k < last && v >= edge(lo, width, k+1) {
			k++
		}
		counts[k]++
	}
	h.underflow += under
	h.overflow += over
	h.nan += nan
}

// Compatible reports whether h and o have the same edges (bit for bit), so
// that they can be merged.
func (h *Histogram) Compatible(o *Histogram) bool {
	return sameBits(h.lo, o.lo) && sameBits(h.hi, o.hi) && len(h.counts) == len(o.counts)
}

// Merge adds o's counts to h; o is not changed. It returns an error wrapping
// ErrIncompatible, and changes nothing, when the edges differ.
func (h *Histogram) Merge(o *Histogram) error {
	if !h.Compatible(o) {
		return fmt.Errorf("merge histograms: %w: [%g, %g) in %d bins and [%g, %g) in %d bins",
			ErrIncompatible, h.lo, h.hi, len(h.counts), o.lo, o.hi, len(o.counts))
	}
	for k, c := range o.counts {
		h.counts[k] += c
	}
	h.underflow += o.underflow
	h.overflow += o.overflow
	h.nan += o.nan
	return nil
}

// Copy returns a deep copy of h.
func (h *Histogram) Copy() *Histogram {
	c := *h
	c.counts = slices.Clone(h.counts)
	return &c
}

// Equal reports whether h and o have the same edges and the same counts.
func (h *Histogram) Equal(o *Histogram) bool {
	return h.Compatible(o) && h.underflow == o.underflow && h.overflow == o.overflow &&
		h.nan == o.nan && slices.Equal(h.counts, o.counts)
}
