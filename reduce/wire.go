package reduce

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/fleetcal/fleetcal/internal/wire"
)

// The wire encoding of a Set, version 2 (version 1 had no folds). Integers are unsigned LEB128
// varints (uvarint) in their shortest form; floats are the 8 bytes of their
// IEEE 754 bits, little-endian, so NaN payloads and -0 survive; a string is a
// uvarint length and its bytes. Every map is written in ascending order of
// its keys, so the same Set always encodes to the same bytes.
//
//	set      = magic "FCRS" · version 0x02 · stats · nonfinite · hists · folds
//	stats    = uvarint n · n × (string tensor · uvarint m · m × (string key · persample))
//	persample= uvarint dim (≥ 1) · uvarint n
//	           · [n > 0] varint first index (zig-zag) · (n-1) × uvarint (index[i] - index[i-1] - 1)
//	           · n×dim × float64 values, sample by sample in index order
//	nonfinite= uvarint n · n × (string tensor · uvarint count)
//	hists    = uvarint n · n × (string tensor · uvarint m · m × (string key · histogram))
//	histogram= float64 lo · float64 hi · uvarint bins · uvarint underflow
//	           · uvarint overflow · uvarint nan · bins × uvarint count
//	folds    = uvarint n · n × (string tensor · uvarint m · m × (string key · fold))
//	fold     = byte op (1 min, 2 max, 3 sum) · uvarint count
//	           · [min, max with count > 0] float64 value (finite)
//	           · [sum] byte sign (0 ≥ 0, 1 < 0) · uvarint len · len bytes
//	           big-endian magnitude of Σ v × 2^1074 (no leading zero byte;
//	           zero is sign 0, len 0; below count × 2^2098)
//
// The decoder accepts exactly this canonical form: names in strictly
// ascending order, shortest varints, no trailing bytes. Any other input is
// an error wrapping ErrCorrupt, and no count is trusted before the bytes
// left can hold what it announces.
const (
	wireMagic   = "FCRS"
	wireVersion = 2
)

// Fold ops on the wire.
var (
	foldCodes = map[FoldOp]byte{FoldMin: 1, FoldMax: 2, FoldSum: 3}
	foldOps   = [...]FoldOp{1: FoldMin, 2: FoldMax, 3: FoldSum}
)

// MarshalBinary encodes s in the wire format above. It fails when a
// PerSample holds a sample index twice or a map holds a nil statistic.
func (s *Set) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64)
	b = append(b, wireMagic...)
	b = append(b, wireVersion)

	b = binary.AppendUvarint(b, uint64(len(s.Stats)))
	for _, t := range slices.Sorted(maps.Keys(s.Stats)) {
		m := s.Stats[t]
		b = wire.AppendString(b, t)
		b = binary.AppendUvarint(b, uint64(len(m)))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			p := m[k]
			if p == nil {
				return nil, fmt.Errorf("encode statistics: tensor %q: %s: nil PerSample", t, k)
			}
			if err := p.normalize(); err != nil {
				return nil, fmt.Errorf("encode statistics: tensor %q: %s: %w", t, k, err)
			}
			b = wire.AppendString(b, k)
			b = p.appendBinary(b)
		}
	}

	b = binary.AppendUvarint(b, uint64(len(s.NonFinite)))
	for _, t := range slices.Sorted(maps.Keys(s.NonFinite)) {
		b = wire.AppendString(b, t)
		b = binary.AppendUvarint(b, s.NonFinite[t])
	}

	b = binary.AppendUvarint(b, uint64(len(s.Hists)))
	for _, t := range slices.Sorted(maps.Keys(s.Hists)) {
		m := s.Hists[t]
		b = wire.AppendString(b, t)
		b = binary.AppendUvarint(b, uint64(len(m)))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			h := m[k]
			if h == nil {
				return nil, fmt.Errorf("encode statistics: tensor %q: %s: nil Histogram", t, k)
			}
			b = wire.AppendString(b, k)
			b = h.appendBinary(b)
		}
	}

	b = binary.AppendUvarint(b, uint64(len(s.Folds)))
	for _, t := range slices.Sorted(maps.Keys(s.Folds)) {
		m := s.Folds[t]
		b = wire.AppendString(b, t)
		b = binary.AppendUvarint(b, uint64(len(m)))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			f := m[k]
			if f == nil || !f.op.Valid() {
				return nil, fmt.Errorf("encode statistics: tensor %q: %s: nil or invalid Fold", t, k)
			}
			b = wire.AppendString(b, k)
			b = f.appendBinary(b)
		}
	}
	return b, nil
}

func (f *Fold) appendBinary(b []byte) []byte {
	b = append(b, foldCodes[f.op])
	b = binary.AppendUvarint(b, f.n)
	switch {
	case f.op == FoldSum:
		sign := byte(0)
		if f.sum.acc.Sign() < 0 {
			sign = 1
		}
		mag := f.sum.acc.Bytes() // big-endian |acc|, no leading zero
		b = append(b, sign)
		b = binary.AppendUvarint(b, uint64(len(mag)))
		b = append(b, mag...)
	case f.n > 0:
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f.ext))
	}
	return b
}

// appendBinary appends p, which must be normalized.
func (p *PerSample) appendBinary(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(p.dim))
	b = binary.AppendUvarint(b, uint64(len(p.index)))
	for i, idx := range p.index {
		if i == 0 {
			b = binary.AppendVarint(b, int64(idx))
			continue
		}
		b = binary.AppendUvarint(b, uint64(idx)-uint64(p.index[i-1])-1)
	}
	for _, v := range p.values {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

func (h *Histogram) appendBinary(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(h.lo))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(h.hi))
	b = binary.AppendUvarint(b, uint64(len(h.counts)))
	b = binary.AppendUvarint(b, h.underflow)
	b = binary.AppendUvarint(b, h.overflow)
	b = binary.AppendUvarint(b, h.nan)
	for _, c := range h.counts {
		b = binary.AppendUvarint(b, c)
	}
	return b
}

// Decode decodes a Set from its wire encoding. Input that is not a
// canonical encoding gives an error wrapping ErrCorrupt.
func Decode(b []byte) (*Set, error) {
	d := decoder{wire.NewDecoder(b, 0, ErrCorrupt)}
	s, err := d.set()
	if err != nil {
		return nil, fmt.Errorf("decode statistics: at byte %d of %d: %w", d.Offset(), len(b), err)
	}
	return s, nil
}

// UnmarshalBinary replaces s with the Set encoded in b; on error s is
// unchanged.
func (s *Set) UnmarshalBinary(b []byte) error {
	d, err := Decode(b)
	if err != nil {
		return err
	}
	*s = *d
	return nil
}

type decoder struct{ *wire.Decoder }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// name reads a string that must sort strictly after prev (when i > 0).
func (d *decoder) name(i int, prev string) (string, error) {
	s, err := d.String()
	if err != nil {
		return "", err
	}
	if i > 0 && s <= prev {
		return "", corrupt("name %q after %q: not in ascending order", s, prev)
	}
	return s, nil
}

func (d *decoder) set() (*Set, error) {
	if err := d.Magic(wireMagic, wireVersion); err != nil {
		return nil, err
	}
	s := NewSet()

	// Each tensor needs at least 2 bytes: its name length and its key count.
	nt, err := d.Count("tensors", 2)
	if err != nil {
		return nil, err
	}
	var t string
	for i := range nt {
		if t, err = d.name(i, t); err != nil {
			return nil, err
		}
		// Each PerSample needs at least 3 bytes: key length, dim, n.
		nk, err := d.Count("statistics", 3)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t, err)
		}
		m := make(map[string]*PerSample)
		var k string
		for j := range nk {
			if k, err = d.name(j, k); err != nil {
				return nil, err
			}
			p, err := d.perSample()
			if err != nil {
				return nil, fmt.Errorf("tensor %q: %s: %w", t, k, err)
			}
			m[k] = p
		}
		s.Stats[t] = m
	}

	nn, err := d.Count("non-finite counts", 2)
	if err != nil {
		return nil, err
	}
	for i := range nn {
		if t, err = d.name(i, t); err != nil {
			return nil, err
		}
		if s.NonFinite[t], err = d.Uvarint(); err != nil {
			return nil, err
		}
	}

	nh, err := d.Count("histogram tensors", 2)
	if err != nil {
		return nil, err
	}
	for i := range nh {
		if t, err = d.name(i, t); err != nil {
			return nil, err
		}
		// Each histogram needs at least 22 bytes: key length, two floats,
		// bins, underflow, overflow, nan and one count.
		nk, err := d.Count("histograms", 22)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t, err)
		}
		m := make(map[string]*Histogram)
		var k string
		for j := range nk {
			if k, err = d.name(j, k); err != nil {
				return nil, err
			}
			h, err := d.histogram()
			if err != nil {
				return nil, fmt.Errorf("tensor %q: %s: %w", t, k, err)
			}
			m[k] = h
		}
		s.Hists[t] = m
	}

	nf, err := d.Count("fold tensors", 2)
	if err != nil {
		return nil, err
	}
	for i := range nf {
		if t, err = d.name(i, t); err != nil {
			return nil, err
		}
		// Each fold needs at least 3 bytes: key length, op and count.
		nk, err := d.Count("folds", 3)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t, err)
		}
		m := make(map[string]*Fold)
		var k string
		for j := range nk {
			if k, err = d.name(j, k); err != nil {
				return nil, err
			}
			f, err := d.fold()
			if err != nil {
				return nil, fmt.Errorf("tensor %q: %s: %w", t, k, err)
			}
			m[k] = f
		}
		s.Folds[t] = m
	}
	if d.Rest() != 0 {
		return nil, corrupt("%d trailing bytes", d.Rest())
	}
	return s, nil
}

func (d *decoder) perSample() (*PerSample, error) {
	dim, err := d.Uvarint()
	if err != nil {
		return nil, err
	}
	if dim < 1 || dim > math.MaxInt/8 {
		return nil, corrupt("dim %d", dim)
	}
	n, err := d.Uvarint()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return NewPerSample(int(dim)), nil
	}
	// Each sample needs at least one index byte and dim×8 value bytes.
	if dim > uint64(d.Rest()/8) || n > uint64(d.Rest())/(dim*8+1) {
		return nil, corrupt("%d samples of %d values announced, %d bytes left", n, dim, d.Rest())
	}
	p := &PerSample{dim: int(dim), index: make([]int, n), values: make([]float64, n*dim), sorted: true}
	first, err := d.Varint()
	if err != nil {
		return nil, err
	}
	if first < math.MinInt || first > math.MaxInt {
		return nil, corrupt("bad first index")
	}
	p.index[0] = int(first)
	for i := 1; i < len(p.index); i++ {
		delta, err := d.Uvarint()
		if err != nil {
			return nil, err
		}
		prev := p.index[i-1]
		if delta >= uint64(math.MaxInt)-uint64(prev) {
			return nil, corrupt("index after %d overflows", prev)
		}
		p.index[i] = int(uint64(prev) + delta + 1)
	}
	if uint64(d.Rest()) < n*dim*8 {
		return nil, corrupt("truncated values: %d samples of %d values, %d bytes left", n, dim, d.Rest())
	}
	raw, err := d.Take(int(n * dim * 8))
	if err != nil {
		return nil, err
	}
	for i := range p.values {
		p.values[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return p, nil
}

func (d *decoder) histogram() (*Histogram, error) {
	lo, err := d.Float64()
	if err != nil {
		return nil, err
	}
	hi, err := d.Float64()
	if err != nil {
		return nil, err
	}
	// Each bin needs at least one byte.
	bins, err := d.Count("bins", 1)
	if err != nil {
		return nil, err
	}
	h, err := NewHistogram(lo, hi, bins)
	if err != nil {
		return nil, corrupt("%v", err)
	}
	if h.underflow, err = d.Uvarint(); err != nil {
		return nil, err
	}
	if h.overflow, err = d.Uvarint(); err != nil {
		return nil, err
	}
	if h.nan, err = d.Uvarint(); err != nil {
		return nil, err
	}
	for k := range h.counts {
		if h.counts[k], err = d.Uvarint(); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (d *decoder) fold() (*Fold, error) {
	code, err := d.Byte()
	if err != nil {
		return nil, err
	}
	if code == 0 || int(code) >= len(foldOps) {
		return nil, corrupt("fold op %d", code)
	}
	f := &Fold{op: foldOps[code]}
	if f.n, err = d.Uvarint(); err != nil {
		return nil, err
	}
	if f.op != FoldSum {
		if f.n == 0 {
			return f, nil
		}
		if f.ext, err = d.Float64(); err != nil {
			return nil, err
		}
		if math.IsNaN(f.ext) || math.IsInf(f.ext, 0) {
			return nil, corrupt("fold %s of %g", f.op, f.ext)
		}
		return f, nil
	}
	sign, err := d.Byte()
	if err != nil {
		return nil, err
	}
	n, err := d.Count("fold sum bytes", 1)
	if err != nil {
		return nil, err
	}
	mag, _ := d.Take(n)
	switch {
	case sign > 1:
		return nil, corrupt("fold sum sign %d", sign)
	case n > 0 && mag[0] == 0:
		return nil, corrupt("fold sum with a leading zero byte")
	case n == 0 && sign != 0:
		return nil, corrupt("fold sum of -0")
	case n > 0 && f.n == 0:
		return nil, corrupt("non-zero fold sum of no values")
	case 8*n-7 > sumMaxBits(f.n): // the top byte holds at least one bit
		return nil, corrupt("fold sum of %d bytes for %d values", n, f.n)
	}
	f.sum.acc.SetBytes(mag)
	if f.sum.acc.BitLen() > sumMaxBits(f.n) {
		return nil, corrupt("fold sum of %d bits for %d values", f.sum.acc.BitLen(), f.n)
	}
	if sign == 1 {
		f.sum.acc.Neg(&f.sum.acc)
	}
	return f, nil
}
