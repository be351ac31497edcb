package reduce

import (
	"fmt"
	"slices"
	"sort"
)

// PerSample holds Dim float64 values per sample index. The zero value is not
// usable; create one with NewPerSample.
type PerSample struct {
	dim    int
	index  []int
	values []float64
	sorted bool
}

// NewPerSample returns an empty PerSample of dim values per sample.
func NewPerSample(dim int) *PerSample {
	if dim < 1 {
		panic(fmt.Sprintf("reduce: PerSample dim %d < 1", dim))
	}
	return &PerSample{dim: dim, sorted: true}
}

// Dim is the number of values per sample.
func (p *PerSample) Dim() int { return p.dim }

// Len is the number of samples held.
func (p *PerSample) Len() int { return len(p.index) }

// Add records the values of sample index. len(v) must equal Dim.
func (p *PerSample) Add(index int, v []float64) error {
	if len(v) != p.dim {
		return fmt.Errorf("%w: sample %d has %d values, want %d", ErrIncompatible, index, len(v), p.dim)
	}
	if n := len(p.index); n > 0 && p.index[n-1] >= index {
		p.sorted = false
	}
	p.index = append(p.index, index)
	p.values = append(p.values, v...)
	return nil
}

// Merge adds o's samples to p; o is not changed. Dims must agree and the
// index sets must be disjoint.
func (p *PerSample) Merge(o *PerSample) error {
	if o.dim != p.dim {
		return fmt.Errorf("%w: dim %d and %d", ErrIncompatible, p.dim, o.dim)
	}
	if len(o.index) == 0 {
		return nil
	}
	if n := len(p.index); !o.sorted || (n > 0 && p.index[n-1] >= o.index[0]) {
		p.sorted = false
	}
	p.index = append(p.index, o.index...)
	p.values = append(p.values, o.values...)
	return p.normalize()
}

// normalize sorts by index and rejects duplicates.
//
// Invariant: sorted means strictly increasing. Add and Merge clear it on any
// index not above the last one, so a PerSample filled in index order (the
// coordinator merging shards in plan order, or a worker adding its shard's
// samples) is never scanned again, and merging k shards costs the samples
// appended, not k times the samples held.
func (p *PerSample) normalize() error {
	if p.sorted {
		return nil
	}
	order := make([]int, len(p.index))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p.index[order[a]] < p.index[order[b]] })
	idx := make([]int, len(p.index))
	vals := make([]float64, len(p.values))
	for i, o := range order {
		idx[i] = p.index[o]
		copy(vals[i*p.dim:(i+1)*p.dim], p.values[o*p.dim:(o+1)*p.dim])
	}
	p.index, p.values = idx, vals
	for i := 1; i < len(p.index); i++ {
		if p.index[i] == p.index[i-1] {
			// Stay unsorted: every later call reports the duplicate again.
			return fmt.Errorf("%w: %d", ErrDuplicateSample, p.index[i])
		}
	}
	p.sorted = true
	return nil
}

// Sort orders the samples by index; it fails on a duplicate index.
func (p *PerSample) Sort() error { return p.normalize() }

// Indices returns the sample indices in ascending order.
func (p *PerSample) Indices() []int {
	_ = p.normalize()
	return slices.Clone(p.index)
}

// At returns the i-th sample (in index order) and its values; the slice
// aliases p's storage.
func (p *PerSample) At(i int) (int, []float64) {
	_ = p.normalize()
	return p.index[i], p.values[i*p.dim : (i+1)*p.dim]
}

// Column returns value c of every sample, in index order.
func (p *PerSample) Column(c int) []float64 {
	_ = p.normalize()
	out := make([]float64, len(p.index))
	for i := range out {
		out[i] = p.values[i*p.dim+c]
	}
	return out
}

// Copy returns a deep copy of p.
func (p *PerSample) Copy() *PerSample {
	return &PerSample{dim: p.dim, index: slices.Clone(p.index), values: slices.Clone(p.values), sorted: p.sorted}
}

// Equal reports whether p and o hold the same samples with bit-identical values.
func (p *PerSample) Equal(o *PerSample) bool {
	if p.dim != o.dim || len(p.index) != len(o.index) {
		return false
	}
	_ = p.normalize()
	_ = o.normalize()
	if !slices.Equal(p.index, o.index) {
		return false
	}
	for i, v := range p.values {
		if !sameBits(v, o.values[i]) {
			return false
		}
	}
	return true
}
