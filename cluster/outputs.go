package cluster

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/fleetcal/fleetcal/internal/wire"
	"github.com/fleetcal/fleetcal/pipeline"
)

// The encoding of the model outputs a worker returns when the coordinator
// runs a metric. Integers are varints (uvarint unless said), numbers are
// little-endian IEEE 754 or two's complement:
//
//	outputs    = magic "FCOU" · version 0x01 · uvarint n · n × sample
//	sample     = varint index · annotation · uvarint m · m × (string name · tensor), names ascending
//	annotation = 0x00 (none) | 0x01 varint (integer label) | 0x02 string
//	           | 0x03 string (any other value: encoding/gob of annotationBox)
//	tensor     = uvarint dtype · uvarint rank · rank × uvarint dim · product(dims) × element
//	string     = uvarint length · bytes
//
// The decoder trusts no count before the bytes left can hold it. An
// annotation of another type than an integer or a string (a box, a list of
// boxes, a struct) travels as gob, which keeps its Go type: gob knows the
// built-in types and slices of them, JSON's generic values and slices of
// slices of numbers (registered here); a type of the user's own must be registered with gob.Register in
// the worker and the coordinator (both run the user's code, see package
// worker).
const (
	outputsMagic   = "FCOU"
	outputsVersion = 1
	maxRank        = 32
)

// sampleOutputs is one sample's outputs and annotation.
type sampleOutputs struct {
	skip       bool // an invalid sample the worker skipped: no outputs
	index      int
	outputs    map[string]pipeline.Tensor
	annotation any
}

// outputsEncoder appends samples; bytes finishes the encoding.
type outputsEncoder struct {
	body []byte
	n    int
}

func (e *outputsEncoder) add(index int, outputs map[string]pipeline.Tensor, annotation any) error {
	b := binary.AppendVarint(e.body, int64(index))
	switch a := annotation.(type) {
	case nil:
		b = append(b, 0)
	case string:
		b = append(b, 2)
		b = wire.AppendString(b, a)
	default:
		if v, ok := intAnnotation(annotation); ok {
			b = append(b, 1)
			b = binary.AppendVarint(b, v)
			break
		}
		g, err := gobAnnotation(annotation)
		if err != nil {
			return fmt.Errorf("sample %d: annotation of type %T cannot be sent to the coordinator: %v (register a type of your own with gob.Register, in the worker and in the coordinator)", index, annotation, err)
		}
		b = append(b, 3)
		b = wire.AppendString(b, string(g))
	}
	b = binary.AppendUvarint(b, uint64(len(outputs)))
	for _, name := range slices.Sorted(maps.Keys(outputs)) {
		t := outputs[name]
		if err := t.Validate(); err != nil {
			return fmt.Errorf("sample %d: output %q: %w", index, name, err)
		}
		b = wire.AppendString(b, name)
		b = binary.AppendUvarint(b, uint64(t.DType()))
		b = binary.AppendUvarint(b, uint64(len(t.Shape)))
		for _, d := range t.Shape {
			b = binary.AppendUvarint(b, uint64(d))
		}
		b = appendData(b, t.Data)
	}
	e.body = b
	e.n++
	return nil
}

func (e *outputsEncoder) bytes() []byte {
	b := make([]byte, 0, len(e.body)+16)
	b = append(b, outputsMagic...)
	b = append(b, outputsVersion)
	b = binary.AppendUvarint(b, uint64(e.n))
	return append(b, e.body...)
}

// annotationBox carries an annotation of any type through gob, which
// encodes the concrete type of an interface field.
type annotationBox struct{ V any }

// init registers with gob the generic values of JSON (annotations files)
// and lists of boxes, beyond the built-in types and their slices that gob
// knows.
func init() {
	for _, v := range []any{[]any(nil), map[string]any(nil), []map[string]any(nil),
		[][]float32(nil), [][]float64(nil), [][]int(nil), [][]int64(nil)} {
		gob.Register(v)
	}
}

func gobAnnotation(a any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&annotationBox{V: a}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func intAnnotation(a any) (int64, bool) {
	switch v := a.(type) {
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	}
	return 0, false
}

func appendData(b []byte, data any) []byte {
	switch d := data.(type) {
	case []float32:
		for _, v := range d {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	case []float64:
		for _, v := range d {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	case []uint8:
		b = append(b, d...)
	case []int8:
		for _, v := range d {
			b = append(b, byte(v))
		}
	case []int32:
		for _, v := range d {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
	case []int64:
		for _, v := range d {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	}
	return b
}

// errOutputs marks bytes that are not an outputs encoding.
var errOutputs = errors.New("corrupt outputs encoding")

// outDecoder reads an outputs encoding; its errors wrap errOutputs.
type outDecoder struct{ *wire.Decoder }

var dtypeSize = map[pipeline.DType]int{
	pipeline.Float32: 4, pipeline.Float64: 8, pipeline.Uint8: 1, pipeline.Int8: 1, pipeline.Int32: 4, pipeline.Int64: 8,
}

func (d outDecoder) tensor() (pipeline.Tensor, error) {
	dt, err := d.Uvarint()
	if err != nil {
		return pipeline.Tensor{}, err
	}
	size, ok := dtypeSize[pipeline.DType(dt)]
	if dt > math.MaxInt32 || !ok {
		return pipeline.Tensor{}, d.Errorf("unknown dtype %d", dt)
	}
	rank, err := d.Count("dimension", 1)
	if err != nil {
		return pipeline.Tensor{}, err
	}
	if rank > maxRank {
		return pipeline.Tensor{}, d.Errorf("rank %d", rank)
	}
	shape := make([]int64, rank)
	elems := uint64(1)
	limit := uint64(d.Rest())
	for i := range shape {
		v, err := d.Uvarint()
		if err != nil {
			return pipeline.Tensor{}, err
		}
		if v > limit {
			return pipeline.Tensor{}, d.Errorf("dimension %d exceeds the bytes left", v)
		}
		shape[i] = int64(v)
		if elems *= v; elems > limit {
			elems = limit + 1 // saturate: checked below
		}
	}
	if elems > uint64(d.Rest()/size) {
		return pipeline.Tensor{}, d.Errorf("shape %v needs %d bytes, %d left", shape, elems*uint64(size), d.Rest())
	}
	n := int(elems)
	raw, err := d.Take(n * size)
	if err != nil {
		return pipeline.Tensor{}, err
	}
	t := pipeline.Tensor{Shape: shape}
	switch pipeline.DType(dt) {
	case pipeline.Float32:
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		t.Data = v
	case pipeline.Float64:
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		t.Data = v
	case pipeline.Uint8:
		t.Data = slices.Clone(raw)
	case pipeline.Int8:
		v := make([]int8, n)
		for i := range v {
			v[i] = int8(raw[i])
		}
		t.Data = v
	case pipeline.Int32:
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		t.Data = v
	case pipeline.Int64:
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		t.Data = v
	}
	return t, nil
}

// decodeOutputs decodes an outputs encoding.
func decodeOutputs(b []byte) ([]sampleOutputs, error) {
	d := outDecoder{wire.NewDecoder(b, 0, errOutputs)}
	out, err := d.samples()
	if err != nil {
		return nil, fmt.Errorf("%w (at byte %d of %d)", err, d.Offset(), d.Len())
	}
	return out, nil
}

func (d outDecoder) samples() ([]sampleOutputs, error) {
	if err := d.Magic(outputsMagic, outputsVersion); err != nil {
		return nil, err
	}
	n, err := d.Count("sample", 3)
	if err != nil {
		return nil, err
	}
	out := make([]sampleOutputs, 0, n)
	for range n {
		idx, err := d.Varint()
		if err != nil {
			return nil, err
		}
		if idx < 0 || idx > math.MaxInt32 {
			return nil, d.Errorf("sample index %d", idx)
		}
		s := sampleOutputs{index: int(idx)}
		tag, err := d.Byte()
		if err != nil {
			return nil, err
		}
		switch tag {
		case 0:
		case 1:
			v, err := d.Varint()
			if err != nil {
				return nil, err
			}
			if v != int64(int(v)) {
				return nil, d.Errorf("label %d overflows int", v)
			}
			s.annotation = int(v)
		case 2:
			if s.annotation, err = d.String(); err != nil {
				return nil, err
			}
		case 3:
			g, err := d.String()
			if err != nil {
				return nil, err
			}
			var box annotationBox
			if err := gob.NewDecoder(strings.NewReader(g)).Decode(&box); err != nil {
				return nil, d.Errorf("sample %d: annotation: %v (a type of your own must be registered with gob.Register in the coordinator too)", idx, err)
			}
			s.annotation = box.V
		default:
			return nil, d.Errorf("annotation tag %d", tag)
		}
		m, err := d.Count("output", 3)
		if err != nil {
			return nil, err
		}
		s.outputs = make(map[string]pipeline.Tensor, m)
		prev := ""
		for k := range m {
			name, err := d.String()
			if err != nil {
				return nil, err
			}
			if k > 0 && name <= prev {
				return nil, d.Errorf("output %q out of order", name)
			}
			prev = name
			if s.outputs[name], err = d.tensor(); err != nil {
				return nil, fmt.Errorf("sample %d: output %q: %w", idx, name, err)
			}
		}
		out = append(out, s)
	}
	if d.Rest() != 0 {
		return nil, d.Errorf("%d trailing bytes", d.Rest())
	}
	return out, nil
}
