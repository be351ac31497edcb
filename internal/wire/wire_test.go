package wire

import (
	"encoding/binary"
	"errors"
	"testing"
)

var errBad = errors.New("bad input")

func TestDecoderRejects(t *testing.T) {
	for name, c := range map[string]struct {
		b    []byte
		read func(d *Decoder) error
	}{
		"uvarint not shortest": {[]byte{0x81, 0x00}, func(d *Decoder) error { _, err := d.Uvarint(); return err }},
		"uvarint truncated":    {[]byte{0x81}, func(d *Decoder) error { _, err := d.Uvarint(); return err }},
		"uvarint overflow":     {[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, func(d *Decoder) error { _, err := d.Uvarint(); return err }},
		"varint not shortest":  {[]byte{0x82, 0x00}, func(d *Decoder) error { _, err := d.Varint(); return err }},
		"count over the rest":  {[]byte{0x05, 1, 2}, func(d *Decoder) error { _, err := d.Count("x", 1); return err }},
		"string over the rest": {[]byte{0x03, 'a'}, func(d *Decoder) error { _, err := d.String(); return err }},
		"float truncated":      {[]byte{1, 2, 3}, func(d *Decoder) error { _, err := d.Float64(); return err }},
		"take negative":        {[]byte{1}, func(d *Decoder) error { _, err := d.Take(-1); return err }},
		"byte at the end":      {nil, func(d *Decoder) error { _, err := d.Byte(); return err }},
		"bad magic":            {[]byte("ABCX\x01"), func(d *Decoder) error { return d.Magic("ABCD", 1) }},
		"bad version":          {[]byte("ABCD\x02"), func(d *Decoder) error { return d.Magic("ABCD", 1) }},
	} {
		err := c.read(NewDecoder(c.b, 0, errBad))
		if !errors.Is(err, errBad) {
			t.Errorf("%s: err = %v, want one wrapping %v", name, err, errBad)
		}
	}
}

func TestDecoderRoundTrip(t *testing.T) {
	var b []byte
	b = append(b, "ABCD\x01"...)
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -7)
	b = AppendString(b, "tensor")
	b = AppendFloat64(b, -0.5)
	d := NewDecoder(b, 0, errBad)
	if err := d.Magic("ABCD", 1); err != nil {
		t.Fatal(err)
	}
	u, err1 := d.Uvarint()
	v, err2 := d.Varint()
	s, err3 := d.String()
	f, err4 := d.Float64()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	if u != 300 || v != -7 || s != "tensor" || f != -0.5 || d.Rest() != 0 {
		t.Errorf("got %d %d %q %g, %d bytes left", u, v, s, f, d.Rest())
	}
}
