package pipeline

import (
	"fmt"
	"strings"
)

// DType is the element type of a Tensor. Its values follow ONNX's
// TensorProto.DataType numbering so they can be compared with a model's inputs.
type DType int32

// The element types fleetcal reads from data and feeds to models.
const (
	Float32 DType = 1
	Uint8   DType = 2
	Int8    DType = 3
	Int32   DType = 6
	Int64   DType = 7
	Float64 DType = 11
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Tensor is a dense, row-major array. Data is one of []float32, []uint8,
// []int8, []int32, []int64 or []float64, with product(Shape) elements.
type Tensor struct {
	Shape []int64
	Data  any
}

// DType reports the element type of t's data, or 0 for an unsupported slice.
func (t Tensor) DType() DType {
	switch t.Data.(type) {
	case []float32:
		return Float32
	case []uint8:
		return Uint8
	case []int8:
		return Int8
	case []int32:
		return Int32
	case []int64:
		return Int64
	case []float64:
		return Float64
	}
	return 0
}

// Len is the number of elements held in Data.
func (t Tensor) Len() int {
	switch d := t.Data.(type) {
	case []float32:
		return len(d)
	case []uint8:
		return len(d)
	case []int8:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []float64:
		return len(d)
	}
	return 0
}

// NumElements is the product of Shape (1 for a scalar).
func NumElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Validate checks that t has a supported type and as many elements as its shape says.
func (t Tensor) Validate() error {
	if t.DType() == 0 {
		return fmt.Errorf("%w: unsupported element type %T", ErrBadTensor, t.Data)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("%w: negative dimension in shape %v", ErrBadTensor, t.Shape)
		}
	}
	if n := NumElements(t.Shape); int64(t.Len()) != n {
		return fmt.Errorf("%w: shape %v wants %d elements, have %d", ErrBadTensor, t.Shape, n, t.Len())
	}
	return nil
}

// Float32s returns the data as float32, converting integer types.
func (t Tensor) Float32s() []float32 {
	switch d := t.Data.(type) {
	case []float32:
		return d
	case []uint8:
		return convert(d)
	case []int8:
		return convert(d)
	case []int32:
		return convert(d)
	case []int64:
		return convert(d)
	case []float64:
		return convert(d)
	}
	return nil
}

func convert[T uint8 | int8 | int32 | int64 | float64](in []T) []float32 {
	out := make([]float32, len(in))
	for i, v := range in {
		out[i] = float32(v)
	}
	return out
}

// ShapeString formats a shape as "[1 3 224 224]", with -1 for dynamic dimensions.
func ShapeString(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// TensorInfo describes a model input or output: its name, element type and
// shape, with -1 for a dynamic dimension.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int64
}
