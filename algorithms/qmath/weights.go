package qmath

import (
	"fmt"
	"math"
)

// channelLayout returns the number of channels along axis (1 for axis -1)
// and the number of consecutive elements that share a channel index in a
// row-major tensor of shape.
func channelLayout(shape []int64, axis int) (channels, inner int) {
	if axis == -1 {
		return 1, 0
	}
	inner = 1
	for _, d := range shape[axis+1:] {
		inner *= int(d)
	}
	return int(shape[axis]), inner
}

// channelOf is the channel of element i.
func channelOf(i, channels, inner int) int {
	if channels == 1 || inner == 0 {
		return 0
	}
	return (i / inner) % channels
}

// checkShape verifies that shape describes n elements and that axis is -1
// or one of its dimensions.
func checkShape(n int, shape []int64, axis int) error {
	if axis < -1 || axis >= len(shape) {
		return fmt.Errorf("%w: axis %d of a %d-d shape %v", ErrShape, axis, len(shape), shape)
	}
	size := int64(1)
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("%w: negative dimension in %v", ErrShape, shape)
		}
		if d != 0 && size > math.MaxInt64/d {
			return fmt.Errorf("%w: shape %v too large", ErrShape, shape)
		}
		size *= d
	}
	if size != int64(n) {
		return fmt.Errorf("%w: shape %v holds %d elements, have %d", ErrShape, shape, size, n)
	}
	return nil
}

// WeightRange returns the exact min and max of w per index of axis
// (one pair for axis -1). w is row-major with the given shape. A channel
// holding a NaN gets NaN bounds (so Compute rejects it); a channel with no
// elements gets [0, 0]. WeightRange panics if shape does not describe w or
// axis is out of range: QuantizeWeights checks both and returns an error.
func WeightRange(w []float32, shape []int64, axis int) (mins, maxs []float64) {
	if err := checkShape(len(w), shape, axis); err != nil {
		panic("qmath: WeightRange: " + err.Error())
	}
	channels, inner := channelLayout(shape, axis)
	mins = make([]float64, channels)
	maxs = make([]float64, channels)
	seen := make([]bool, channels)
	nan := make([]bool, channels)
	for i, v := range w {
		c := channelOf(i, channels, inner)
		x := float64(v)
		switch {
		case math.IsNaN(x):
			nan[c] = true
		case !seen[c]:
			mins[c], maxs[c], seen[c] = x, x, true
		default:
			mins[c] = math.Min(mins[c], x)
			maxs[c] = math.Max(maxs[c], x)
		}
	}
	for c := range nan {
		if nan[c] {
			mins[c], maxs[c] = math.NaN(), math.NaN()
		}
	}
	return mins, maxs
}

// QuantizeWeights quantizes w (row-major, shape) per index of axis, or per
// tensor when axis is -1, with the exact range of each channel (see
// WeightRange and Compute) and ONNX QuantizeLinear's rounding (see
// Quantize). s must be symmetric, signed and stored as int8 (WeightSpec);
// every zero point is then the same, as ONNX Runtime's per-channel
// QLinearConv requires. An all-zero channel gets scale 1.
//
// For every x in a channel, |Dequantize(q) - x| <= scale/2 up to float32
// rounding, since m/scale is exactly the outermost level.
func QuantizeWeights(w []float32, shape []int64, axis int, s Spec) (q []int8, scales []float32, zps []int32, err error) {
	if err := checkShape(len(w), shape, axis); err != nil {
		return nil, nil, nil, fmt.Errorf("quantize weights: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, nil, nil, fmt.Errorf("quantize weights: %w", err)
	}
	if !s.Symmetric || !s.Signed || !s.StorageSigned() || s.LevelLow < math.MinInt8 || s.LevelHigh > math.MaxInt8 {
		return nil, nil, nil, fmt.Errorf("quantize weights: %w: want a symmetric signed int8 spec, have %+v", ErrInvalidSpec, s)
	}
	mins, maxs := WeightRange(w, shape, axis)
	scales, zps, err = ComputePerChannel(mins, maxs, s)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("quantize weights: %w", err)
	}
	channels, inner := channelLayout(shape, axis)
	q = make([]int8, len(w))
	for i, v := range w {
		c := channelOf(i, channels, inner)
		q[i] = int8(Quantize(v, scales[c], zps[c], s))
	}
	return q, scales, zps, nil
}

// QuantizeBias quantizes a bias to int32 with zero point 0, as ONNX Runtime
// does for QDQ Conv, Gemm and MatMul:
//
//	biasScale[c] = inputScale · weightScales[c]     (float32 product)
//	q[c] = clamp(roundHalfEven(b[c] / biasScale[c]), MinInt32, MaxInt32)
//
// with the division in float64 (a bias quotient may exceed float32's 24-bit
// mantissa). weightScales holds one scale (per-tensor weights) or one per
// element of b (per-channel weights); the returned bias scales have the same
// length as weightScales, mirroring the weight's DequantizeLinear. A zero,
// negative, non-finite or underflowing scale and a non-finite bias are
// errors.
func QuantizeBias(b []float32, inputScale float32, weightScales []float32) ([]int32, []float32, error) {
	if len(weightScales) != 1 && len(weightScales) != len(b) {
		return nil, nil, fmt.Errorf("quantize bias: %w: %d weight scales for %d bias values", ErrShape, len(weightScales), len(b))
	}
	if !(inputScale > 0) || math.IsInf(float64(inputScale), 0) {
		return nil, nil, fmt.Errorf("quantize bias: input scale %g: %w", inputScale, ErrZeroScale)
	}
	biasScales := make([]float32, len(weightScales))
	for c, ws := range weightScales {
		bs := inputScale * ws
		if !(ws > 0) || !(bs > 0) || math.IsInf(float64(bs), 0) {
			return nil, nil, fmt.Errorf("quantize bias: channel %d: scale %g × weight scale %g = %g: %w", c, inputScale, ws, bs, ErrZeroScale)
		}
		biasScales[c] = bs
	}
	q := make([]int32, len(b))
	for c, v := range b {
		if !finite(float64(v)) {
			return nil, nil, fmt.Errorf("quantize bias: channel %d: value %g: %w", c, v, ErrNonFinite)
		}
		bs := biasScales[0]
		if len(biasScales) > 1 {
			bs = biasScales[c]
		}
		r := math.RoundToEven(float64(v) / float64(bs))
		switch {
		case r < math.MinInt32:
			q[c] = math.MinInt32
		case r > math.MaxInt32:
			q[c] = math.MaxInt32
		default:
			q[c] = int32(r)
		}
	}
	return q, biasScales, nil
}
