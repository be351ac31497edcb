package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Decoder reads an encoding front to back. Every error it returns wraps
// the sentinel error it was made with, so that callers can test for
// their own "corrupt input" error with errors.Is.
type Decoder struct {
	b   []byte
	off int
	bad error
}

// NewDecoder reads b from offset off; its errors wrap bad.
func NewDecoder(b []byte, off int, bad error) *Decoder {
	return &Decoder{b: b, off: off, bad: bad}
}

// Errorf returns an error wrapping the decoder's sentinel.
func (d *Decoder) Errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", d.bad, fmt.Sprintf(format, args...))
}

// Offset is the number of bytes read so far (from the start of the
// buffer).
func (d *Decoder) Offset() int { return d.off }

// Len is the size of the whole buffer.
func (d *Decoder) Len() int { return len(d.b) }

// Rest is the number of bytes left.
func (d *Decoder) Rest() int { return len(d.b) - d.off }

// Magic checks that the buffer starts with magic followed by the
// version byte, and reads past them.
func (d *Decoder) Magic(magic string, version byte) error {
	if len(d.b) < len(magic)+1 || string(d.b[:len(magic)]) != magic {
		return d.Errorf("bad magic")
	}
	if v := d.b[len(magic)]; v != version {
		return d.Errorf("version %d, want %d", v, version)
	}
	d.off = len(magic) + 1
	return nil
}

// Byte reads one byte.
func (d *Decoder) Byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, d.Errorf("truncated")
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

// Take returns the next n bytes (not copied).
func (d *Decoder) Take(n int) ([]byte, error) {
	if n < 0 || n > d.Rest() {
		return nil, d.Errorf("%d bytes wanted, %d left", n, d.Rest())
	}
	s := d.b[d.off : d.off+n]
	d.off += n
	return s, nil
}

// Uvarint reads an unsigned varint that must be in shortest form.
func (d *Decoder) Uvarint() (uint64, error) {
	if d.off < len(d.b) && d.b[d.off] < 0x80 {
		x := uint64(d.b[d.off])
		d.off++
		return x, nil
	}
	return d.uvarintSlow()
}

func (d *Decoder) uvarintSlow() (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.b) {
			return 0, d.Errorf("truncated varint")
		}
		c := d.b[d.off]
		d.off++
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, d.Errorf("varint overflows 64 bits")
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, d.Errorf("varint not in shortest form")
			}
			return x, nil
		}
	}
	return 0, d.Errorf("varint overflows 64 bits")
}

// Varint reads a zig-zag signed varint (binary.AppendVarint's encoding)
// that must be in shortest form.
func (d *Decoder) Varint() (int64, error) {
	ux, err := d.Uvarint()
	if err != nil {
		return 0, err
	}
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, nil
}

// Count reads a uvarint announcing n items of at least size bytes each
// and checks that the bytes left can hold them.
func (d *Decoder) Count(what string, size int) (int, error) {
	n, err := d.Uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(d.Rest()/size) {
		return 0, d.Errorf("%s: %d announced, %d bytes left", what, n, d.Rest())
	}
	return int(n), nil
}

// String reads a length-prefixed string (AppendString's encoding).
func (d *Decoder) String() (string, error) {
	n, err := d.Count("string length", 1)
	if err != nil {
		return "", err
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s, nil
}

// Float64 reads a little-endian IEEE 754 double.
func (d *Decoder) Float64() (float64, error) {
	if d.Rest() < 8 {
		return 0, d.Errorf("truncated float")
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
	d.off += 8
	return v, nil
}

// AppendString appends s with its length as a uvarint.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendFloat64 appends v as a little-endian IEEE 754 double.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}
