package reduce

import (
	"fmt"
	"maps"
	"slices"
)

// Set is every statistic of one calibration pass: PerSamples, Histograms
// and Folds by tensor name and statistic key, and the number of non-finite
// (NaN or ±Inf) values seen on each tensor.
type Set struct {
	Stats     map[string]map[string]*PerSample
	NonFinite map[string]uint64
	Hists     map[string]map[string]*Histogram
	Folds     map[string]map[string]*Fold
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{
		Stats:     map[string]map[string]*PerSample{},
		NonFinite: map[string]uint64{},
		Hists:     map[string]map[string]*Histogram{},
		Folds:     map[string]map[string]*Fold{},
	}
}

// Fold returns the fold key of tensor, or nil if there is none.
func (s *Set) Fold(tensor, key string) *Fold {
	return s.Folds[tensor][key]
}

// AddFold folds one sample's value v into the statistic key of tensor,
// creating an op Fold if there is none. It fails with ErrIncompatible if
// the Set holds that statistic with another op, and with ErrNonFinite on a
// NaN or ±Inf.
func (s *Set) AddFold(tensor, key string, op FoldOp, v float64) error {
	f := s.Fold(tensor, key)
	if f == nil {
		if !op.Valid() {
			return fmt.Errorf("tensor %q: %s: %w: fold op %q", tensor, key, ErrIncompatible, op)
		}
		f = NewFold(op)
		if s.Folds == nil {
			s.Folds = map[string]map[string]*Fold{}
		}
		m := s.Folds[tensor]
		if m == nil {
			m = map[string]*Fold{}
			s.Folds[tensor] = m
		}
		m[key] = f
	} else if f.op != op {
		return fmt.Errorf("tensor %q: %s: %w: have fold %s, asked %s", tensor, key, ErrIncompatible, f.op, op)
	}
	if err := f.Add(v); err != nil {
		return fmt.Errorf("tensor %q: %s: %w", tensor, key, err)
	}
	return nil
}

// Get returns the statistic key of tensor, or nil if there is none.
func (s *Set) Get(tensor, key string) *PerSample {
	return s.Stats[tensor][key]
}

// Add records sample index's values for the statistic key of tensor.
func (s *Set) Add(tensor, key string, index int, v []float64) error {
	if s.Stats == nil {
		s.Stats = map[string]map[string]*PerSample{}
	}
	m := s.Stats[tensor]
	if m == nil {
		m = map[string]*PerSample{}
		s.Stats[tensor] = m
	}
	p := m[key]
	if p == nil {
		p = NewPerSample(len(v))
		m[key] = p
	}
	if err := p.Add(index, v); err != nil {
		return fmt.Errorf("tensor %q: %s: %w", tensor, key, err)
	}
	return nil
}

// Hist returns the histogram key of tensor, or nil if there is none.
func (s *Set) Hist(tensor, key string) *Histogram {
	return s.Hists[tensor][key]
}

// EnsureHist returns the histogram key of tensor, creating it empty over
// [lo, hi) in bins bins if there is none. It fails with ErrIncompatible if
// the Set holds that histogram with other edges.
func (s *Set) EnsureHist(tensor, key string, lo, hi float64, bins int) (*Histogram, error) {
	if h := s.Hist(tensor, key); h != nil {
		if !sameBits(h.lo, lo) || !sameBits(h.hi, hi) || len(h.counts) != bins {
			return nil, fmt.Errorf("tensor %q: %s: %w: have [%g, %g) in %d bins, asked [%g, %g) in %d bins",
				tensor, key, ErrIncompatible, h.lo, h.hi, len(h.counts), lo, hi, bins)
		}
		return h, nil
	}
	h, err := NewHistogram(lo, hi, bins)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %s: %w", tensor, key, err)
	}
	if s.Hists == nil {
		s.Hists = map[string]map[string]*Histogram{}
	}
	m := s.Hists[tensor]
	if m == nil {
		m = map[string]*Histogram{}
		s.Hists[tensor] = m
	}
	m[key] = h
	return h, nil
}

// Merge adds o into s; o is not changed. Histograms with different edges
// and Folds with different ops fail with ErrIncompatible before anything is
// merged; a sample index present in both fails with ErrDuplicateSample.
func (s *Set) Merge(o *Set) error {
	for _, t := range slices.Sorted(maps.Keys(o.Hists)) {
		for _, k := range slices.Sorted(maps.Keys(o.Hists[t])) {
			if h := s.Hist(t, k); h != nil && !h.Compatible(o.Hists[t][k]) {
				return fmt.Errorf("tensor %q: %s: %w", t, k, h.Merge(o.Hists[t][k]))
			}
		}
	}
	for _, t := range slices.Sorted(maps.Keys(o.Folds)) {
		for _, k := range slices.Sorted(maps.Keys(o.Folds[t])) {
			if f := s.Fold(t, k); f != nil && f.op != o.Folds[t][k].op {
				return fmt.Errorf("tensor %q: %s: %w", t, k, f.Merge(o.Folds[t][k]))
			}
		}
	}
	if len(o.Stats) > 0 && s.Stats == nil {
		s.Stats = map[string]map[string]*PerSample{}
	}
	for _, t := range slices.Sorted(maps.Keys(o.Stats)) {
		for _, k := range slices.Sorted(maps.Keys(o.Stats[t])) {
			op := o.Stats[t][k]
			m := s.Stats[t]
			if m == nil {
				m = map[string]*PerSample{}
				s.Stats[t] = m
			}
			if p := m[k]; p == nil {
				m[k] = op.Copy()
			} else if err := p.Merge(op); err != nil {
				return fmt.Errorf("tensor %q: %s: %w", t, k, err)
			}
		}
	}
	if len(o.NonFinite) > 0 && s.NonFinite == nil {
		s.NonFinite = map[string]uint64{}
	}
	for t, n := range o.NonFinite {
		s.NonFinite[t] += n
	}
	if len(o.Hists) > 0 && s.Hists == nil {
		s.Hists = map[string]map[string]*Histogram{}
	}
	for t, ok := range o.Hists {
		m := s.Hists[t]
		if m == nil {
			m = map[string]*Histogram{}
			s.Hists[t] = m
		}
		for k, oh := range ok {
			if h := m[k]; h == nil {
				m[k] = oh.Copy()
			} else if err := h.Merge(oh); err != nil {
				return fmt.Errorf("tensor %q: %s: %w", t, k, err) // checked above: unreachable
			}
		}
	}
	if len(o.Folds) > 0 && s.Folds == nil {
		s.Folds = map[string]map[string]*Fold{}
	}
	for t, ok := range o.Folds {
		m := s.Folds[t]
		if m == nil {
			m = map[string]*Fold{}
			s.Folds[t] = m
		}
		for k, of := range ok {
			if f := m[k]; f == nil {
				m[k] = of.Copy()
			} else if err := f.Merge(of); err != nil {
				return fmt.Errorf("tensor %q: %s: %w", t, k, err) // checked above: unreachable
			}
		}
	}
	return nil
}

// Tensors lists the tensor names with per-sample statistics in s, sorted.
func (s *Set) Tensors() []string { return slices.Sorted(maps.Keys(s.Stats)) }

// Copy returns a deep copy of s.
func (s *Set) Copy() *Set {
	c := NewSet()
	for t, m := range s.Stats {
		cm := make(map[string]*PerSample, len(m))
		for k, p := range m {
			cm[k] = p.Copy()
		}
		c.Stats[t] = cm
	}
	maps.Copy(c.NonFinite, s.NonFinite)
	for t, m := range s.Hists {
		cm := make(map[string]*Histogram, len(m))
		for k, h := range m {
			cm[k] = h.Copy()
		}
		c.Hists[t] = cm
	}
	for t, m := range s.Folds {
		cm := make(map[string]*Fold, len(m))
		for k, f := range m {
			cm[k] = f.Copy()
		}
		c.Folds[t] = cm
	}
	return c
}

// Equal reports whether s and o hold the same statistics, bit for bit. A nil
// map and an empty one are equal.
func (s *Set) Equal(o *Set) bool {
	if len(s.Stats) != len(o.Stats) || len(s.NonFinite) != len(o.NonFinite) || len(s.Hists) != len(o.Hists) ||
		len(s.Folds) != len(o.Folds) {
		return false
	}
	for t, n := range s.NonFinite {
		if on, ok := o.NonFinite[t]; !ok || on != n {
			return false
		}
	}
	for t, m := range s.Stats {
		om, ok := o.Stats[t]
		if !ok || len(m) != len(om) {
			return false
		}
		for k, p := range m {
			op := om[k]
			if op == nil || !p.Equal(op) {
				return false
			}
		}
	}
	for t, m := range s.Hists {
		om, ok := o.Hists[t]
		if !ok || len(m) != len(om) {
			return false
		}
		for k, h := range m {
			oh := om[k]
			if oh == nil || !h.Equal(oh) {
				return false
			}
		}
	}
	for t, m := range s.Folds {
		om, ok := o.Folds[t]
		if !ok || len(m) != len(om) {
			return false
		}
		for k, f := range m {
			of := om[k]
			if of == nil || !f.Equal(of) {
				return false
			}
		}
	}
	return true
}
