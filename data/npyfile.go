package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio/npy"

	"github.com/fleetcal/fleetcal/pipeline"
)

// npyHeader is the parsed header of a .npy file.
type npyHeader struct {
	order   byte // '<' or '>' ('|' for one-byte types)
	dtype   pipeline.DType
	size    int // bytes per element
	fortran bool
	shape   []int
	data    int // offset of the data
}

// npyTypes maps a numpy type code (kind and size) to a DType.
var npyTypes = map[string]pipeline.DType{
	"f4": pipeline.Float32, "f8": pipeline.Float64,
	"u1": pipeline.Uint8, "i1": pipeline.Int8,
	"i4": pipeline.Int32, "i8": pipeline.Int64,
}

// readNpy decodes a whole .npy file held in b. The header is parsed and
// checked here first (magic, version, dict syntax, supported dtype, data size
// equal to what the shape declares), so that nothing is allocated beyond the
// size of b and npyio, which decodes the data, only ever sees a well-formed
// canonical header. Arrays in Fortran order are returned in C order.
func readNpy(b []byte) (t pipeline.Tensor, err error) {
	h, err := parseNpyHeader(b)
	if err != nil {
		return pipeline.Tensor{}, err
	}
	defer func() {
		if r := recover(); r != nil {
			t, err = pipeline.Tensor{}, errorf(ErrBadFile, "npy: %v", r)
		}
	}()
	rr, err := npy.NewReader(io.MultiReader(bytes.NewReader(h.canonical()), bytes.NewReader(b[h.data:])))
	if err != nil {
		return pipeline.Tensor{}, errorf(ErrBadFile, "npy: %w", err)
	}
	if !equalInts(rr.Header.Descr.Shape, h.shape) {
		return pipeline.Tensor{}, errorf(ErrBadFile, "npy: header not understood")
	}
	var data any
	switch h.dtype {
	case pipeline.Float32:
		data, err = readAs[float32](rr)
	case pipeline.Float64:
		data, err = readAs[float64](rr)
	case pipeline.Uint8:
		data, err = readAs[uint8](rr)
	case pipeline.Int8:
		data, err = readAs[int8](rr)
	case pipeline.Int32:
		data, err = readAs[int32](rr)
	case pipeline.Int64:
		data, err = readAs[int64](rr)
	}
	if err != nil {
		return pipeline.Tensor{}, errorf(ErrBadFile, "npy: %w", err)
	}
	shape := make([]int64, len(h.shape))
	for i, d := range h.shape {
		shape[i] = int64(d)
	}
	if h.fortran && len(h.shape) > 1 {
		data = fromFortran(data, h.shape)
	}
	t = pipeline.Tensor{Shape: shape, Data: data}
	if err := t.Validate(); err != nil {
		return pipeline.Tensor{}, errorf(ErrBadFile, "npy: %w", err)
	}
	return t, nil
}

func readAs[T number](rr *npy.Reader) ([]T, error) {
	var v []T
	err := rr.Read(&v)
	return v, err
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// canonical is the header as npyio writes it (format 1.0 when it fits).
func (h npyHeader) canonical() []byte {
	fortran := "False"
	if h.fortran {
		fortran = "True"
	}
	var shape string
	switch len(h.shape) {
	case 0:
		shape = "()"
	case 1:
		shape = fmt.Sprintf("(%d,)", h.shape[0])
	default:
		s := make([]string, len(h.shape))
		for i, d := range h.shape {
			s[i] = strconv.Itoa(d)
		}
		shape = "(" + strings.Join(s, ", ") + ")"
	}
	code := ""
	for k, v := range npyTypes {
		if v == h.dtype {
			code = k
		}
	}
	dict := fmt.Sprintf("{'descr': '%c%s', 'fortran_order': %s, 'shape': %s, }", h.order, code, fortran, shape)
	pre := 10
	major := byte(1)
	if len(dict)+1 > math.MaxUint16-16 {
		pre, major = 12, 2
	}
	pad := (16 - (pre+len(dict)+1)%16) % 16
	dict += strings.Repeat(" ", pad) + "\n"
	out := append([]byte("\x93NUMPY"), major, 0)
	if major == 1 {
		out = binary.LittleEndian.AppendUint16(out, uint16(len(dict)))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(dict)))
	}
	return append(out, dict...)
}

// parseNpyHeader checks the magic, version and header of a .npy file and
// that the data after it has exactly the size the header declares.
func parseNpyHeader(b []byte) (npyHeader, error) {
	bad := func(format string, args ...any) (npyHeader, error) {
		return npyHeader{}, errorf(ErrBadFile, "npy: %s", fmt.Sprintf(format, args...))
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return bad("not a .npy file (bad magic)")
	}
	var hlen, start int
	switch b[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2:
		if len(b) < 12 {
			return bad("truncated header")
		}
		hlen, start = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return bad("format version %d.%d not supported (want 1.0 or 2.0)", b[6], b[7])
	}
	if hlen > len(b)-start {
		return bad("header declares %d bytes, file has %d", hlen, len(b)-start)
	}
	h := npyHeader{data: start + hlen}
	dict, err := parsePyDict(b[start : start+hlen])
	if err != nil {
		return bad("header: %v", err)
	}
	for k := range dict {
		switch k {
		case "descr", "fortran_order", "shape":
		default:
			return bad("header: unknown key %q", k)
		}
	}
	descr, ok := dict["descr"].(string)
	if !ok {
		return bad("header: no 'descr' string (structured dtypes are not supported)")
	}
	if len(descr) > 0 && strings.ContainsRune("<>|=", rune(descr[0])) {
		h.order, descr = descr[0], descr[1:]
	} else {
		h.order = '|'
	}
	if h.dtype, ok = npyTypes[descr]; !ok {
		return bad("dtype %q not supported (want float32, float64, uint8, int8, int32 or int64)", dict["descr"])
	}
	h.size = int(descr[1] - '0')
	switch {
	case h.size == 1:
		h.order = '|'
	case h.order == '|' || h.order == '=':
		h.order = '<'
	}
	if h.fortran, ok = dict["fortran_order"].(bool); !ok {
		return bad("header: no 'fortran_order' boolean")
	}
	if h.shape, ok = dict["shape"].([]int); !ok {
		return bad("header: no 'shape' tuple")
	}
	n := h.size
	for _, d := range h.shape {
		if d != 0 && n > math.MaxInt32/d { // no one calibrates with a 2 GiB sample
			return bad("shape %v too large", h.shape)
		}
		n *= d
	}
	if have := len(b) - h.data; have != n {
		return bad("shape %v of %s needs %d bytes of data, file has %d", h.shape, h.dtype, n, have)
	}
	return h, nil
}

// parsePyDict parses the Python dict literal of a .npy header: string keys;
// string, True/False and tuple-of-int values.
func parsePyDict(b []byte) (map[string]any, error) {
	p := pyParser{b: b}
	p.ws()
	if !p.eat('{') {
		return nil, p.errorf("want '{'")
	}
	out := map[string]any{}
	for {
		p.ws()
		if p.eat('}') {
			break
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, p.errorf("key %q twice", k)
		}
		p.ws()
		if !p.eat(':') {
			return nil, p.errorf("want ':'")
		}
		p.ws()
		if out[k], err = p.value(); err != nil {
			return nil, err
		}
		p.ws()
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return nil, p.errorf("want ',' or '}'")
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, p.errorf("trailing bytes")
	}
	return out, nil
}

type pyParser struct {
	b []byte
	i int
}

func (p *pyParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *pyParser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *pyParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *pyParser) str() (string, error) {
	if p.i >= len(p.b) || (p.b[p.i] != '\'' && p.b[p.i] != '"') {
		return "", p.errorf("want a string")
	}
	q := p.b[p.i]
	end := bytes.IndexByte(p.b[p.i+1:], q)
	if end < 0 {
		return "", p.errorf("unterminated string")
	}
	s := string(p.b[p.i+1 : p.i+1+end])
	p.i += end + 2
	return s, nil
}

func (p *pyParser) value() (any, error) {
	switch {
	case p.i >= len(p.b):
		return nil, p.errorf("want a value")
	case p.b[p.i] == '\'' || p.b[p.i] == '"':
		return p.str()
	case bytes.HasPrefix(p.b[p.i:], []byte("True")):
		p.i += 4
		return true, nil
	case bytes.HasPrefix(p.b[p.i:], []byte("False")):
		p.i += 5
		return false, nil
	case p.b[p.i] == '(':
		p.i++
		dims := []int{}
		for {
			p.ws()
			if p.eat(')') {
				return dims, nil
			}
			j := p.i
			for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
				p.i++
			}
			if j == p.i || p.i-j > 12 {
				return nil, p.errorf("want a dimension")
			}
			d, _ := strconv.Atoi(string(p.b[j:p.i]))
			dims = append(dims, d)
			p.ws()
			if p.eat(')') {
				return dims, nil
			}
			if !p.eat(',') {
				return nil, p.errorf("want ',' or ')' in shape")
			}
		}
	}
	return nil, p.errorf("unsupported value")
}

// fromFortran reorders column-major data of the given shape to row-major.
func fromFortran(data any, shape []int) any {
	switch d := data.(type) {
	case []float32:
		return transposeF(d, shape)
	case []float64:
		return transposeF(d, shape)
	case []uint8:
		return transposeF(d, shape)
	case []int8:
		return transposeF(d, shape)
	case []int32:
		return transposeF(d, shape)
	case []int64:
		return transposeF(d, shape)
	}
	return data
}

func transposeF[T any](in []T, shape []int) []T {
	out := make([]T, len(in))
	// C-order strides.
	strides := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= shape[i]
	}
	idx := make([]int, len(shape)) // multi-index, first axis fastest (Fortran)
	off := 0                       // C offset of idx
	for _, v := range in {
		out[off] = v
		for ax := range shape {
			idx[ax]++
			off += strides[ax]
			if idx[ax] < shape[ax] {
				break
			}
			off -= idx[ax] * strides[ax]
			idx[ax] = 0
		}
	}
	return out
}
