package model

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// Element types of ONNX tensors, as in TensorProto.DataType.
const (
	TypeFloat   = int32(onnxpb.TensorProto_FLOAT)
	TypeInt64   = int32(onnxpb.TensorProto_INT64)
	TypeDouble  = int32(onnxpb.TensorProto_DOUBLE)
	TypeFloat16 = int32(onnxpb.TensorProto_FLOAT16)
)

// ElemTypeName is the ONNX name of a TensorProto data type ("FLOAT", "INT64").
func ElemTypeName(t int32) string {
	if s, ok := onnxpb.TensorProto_DataType_name[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE(%d)", t)
}

// elemSize is the byte size of fixed-size element types, 0 for the others
// (strings) and for unknown types.
func elemSize(t int32) int64 {
	switch onnxpb.TensorProto_DataType(t) {
	case onnxpb.TensorProto_UINT8, onnxpb.TensorProto_INT8, onnxpb.TensorProto_BOOL:
		return 1
	case onnxpb.TensorProto_UINT16, onnxpb.TensorProto_INT16, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		return 2
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT32, onnxpb.TensorProto_UINT32:
		return 4
	case onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_INT64, onnxpb.TensorProto_UINT64, onnxpb.TensorProto_COMPLEX64:
		return 8
	case onnxpb.TensorProto_COMPLEX128:
		return 16
	}
	return 0
}

// numElements is the product of dims, an error if a dim is negative or the
// product overflows.
func numElements(dims []int64) (int64, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in %v", d, dims)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("dimensions %v overflow", dims)
		}
		n *= d
	}
	return n, nil
}

func isExternal(t *onnxpb.TensorProto) bool {
	return t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL
}

// tensorCount checks t's type and external-ness and returns its element count.
func tensorCount(t *onnxpb.TensorProto, want int32) (int, error) {
	if t == nil {
		return 0, fmt.Errorf("%w: nil tensor", ErrTensor)
	}
	if t.GetDataType() != want {
		return 0, fmt.Errorf("tensor %q: %w: data type %s, want %s", t.GetName(), ErrTensor, ElemTypeName(t.GetDataType()), ElemTypeName(want))
	}
	if isExternal(t) {
		return 0, fmt.Errorf("tensor %q: %w: data is still external (load the model with LoadFile)", t.GetName(), ErrTensor)
	}
	if t.Segment != nil {
		return 0, fmt.Errorf("tensor %q: %w: segmented tensors are not supported", t.GetName(), ErrTensor)
	}
	n, err := numElements(t.GetDims())
	if err != nil {
		return 0, fmt.Errorf("tensor %q: %w: %v", t.GetName(), ErrTensor, err)
	}
	if n > math.MaxInt32*8 {
		return 0, fmt.Errorf("tensor %q: %w: %d elements is too many", t.GetName(), ErrTensor, n)
	}
	return int(n), nil
}

// TensorFloat32 returns the values of a FLOAT tensor, from raw_data (little
// endian) or float_data. The tensor must hold exactly prod(dims) values.
func TensorFloat32(t *onnxpb.TensorProto) ([]float32, error) {
	n, err := tensorCount(t, TypeFloat)
	if err != nil {
		return nil, err
	}
	if t.RawData != nil {
		if len(t.RawData) != 4*n {
			return nil, fmt.Errorf("tensor %q: %w: raw_data has %d bytes, shape %v needs %d", t.GetName(), ErrTensor, len(t.RawData), t.GetDims(), 4*n)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[4*i:]))
		}
		return out, nil
	}
	if len(t.FloatData) != n {
		return nil, fmt.Errorf("tensor %q: %w: float_data has %d values, shape %v needs %d", t.GetName(), ErrTensor, len(t.FloatData), t.GetDims(), n)
	}
	return append([]float32(nil), t.FloatData...), nil
}

// TensorInt64 returns the values of an INT64 tensor, from raw_data (little
// endian) or int64_data.
func TensorInt64(t *onnxpb.TensorProto) ([]int64, error) {
	n, err := tensorCount(t, TypeInt64)
	if err != nil {
		return nil, err
	}
	if t.RawData != nil {
		if len(t.RawData) != 8*n {
			return nil, fmt.Errorf("tensor %q: %w: raw_data has %d bytes, shape %v needs %d", t.GetName(), ErrTensor, len(t.RawData), t.GetDims(), 8*n)
		}
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(t.RawData[8*i:]))
		}
		return out, nil
	}
	if len(t.Int64Data) != n {
		return nil, fmt.Errorf("tensor %q: %w: int64_data has %d values, shape %v needs %d", t.GetName(), ErrTensor, len(t.Int64Data), t.GetDims(), n)
	}
	return append([]int64(nil), t.Int64Data...), nil
}

// NewTensorFloat32 returns a FLOAT tensor holding data in raw_data. It panics
// if len(data) is not the product of dims (a programmer error).
func NewTensorFloat32(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	mustCount(dims, len(data))
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return newTensor(name, TypeFloat, dims, raw)
}

// NewTensorInt64 returns an INT64 tensor holding data in raw_data. It panics
// if len(data) is not the product of dims.
func NewTensorInt64(name string, dims []int64, data []int64) *onnxpb.TensorProto {
	mustCount(dims, len(data))
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return newTensor(name, TypeInt64, dims, raw)
}

// newTensorFloat64 returns a DOUBLE tensor.
func newTensorFloat64(name string, dims []int64, data []float64) *onnxpb.TensorProto {
	mustCount(dims, len(data))
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
	}
	return newTensor(name, TypeDouble, dims, raw)
}

func mustCount(dims []int64, n int) {
	want, err := numElements(dims)
	if err != nil || want != int64(n) {
		panic(fmt.Sprintf("model: %d values for shape %v", n, dims))
	}
}

func newTensor(name string, typ int32, dims []int64, raw []byte) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{
		Name:     proto.String(name),
		DataType: proto.Int32(typ),
		Dims:     append([]int64{}, dims...),
		RawData:  raw,
	}
}
