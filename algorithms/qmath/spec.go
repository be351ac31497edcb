package qmath

import (
	"fmt"
	"math"
)

// smallestNormal32 is the smallest positive normal float32 (numpy's
// finfo(float32).tiny). A scale below it is treated as a zero range.
const smallestNormal32 = 0x1p-126

// Spec is the integer grid of one quantized tensor: the levels a value may
// take and how the zero point is chosen.
//
//   - Bits is the number of bits the levels need (8, or 7 for reduced range).
//   - Symmetric fixes the zero point from the levels alone (POT's symmetric
//     mode); otherwise it is computed from the range (asymmetric mode).
//   - Signed, for a symmetric Spec, says that the real range is [-m, m];
//     otherwise it is [0, m] (POT's unsigned quantizer for non-negative
//     activations, e.g. after ReLU). It is ignored by asymmetric Specs, whose
//     range is [min, max].
//   - LevelLow and LevelHigh bound the quantized values, in the storage type:
//     int8 when LevelLow < 0, uint8 otherwise (see StorageSigned).
//   - ReducedRange marks the 7-bit weight grid (see WeightSpec).
type Spec struct {
	Bits                int
	Symmetric           bool
	Signed              bool
	LevelLow, LevelHigh int32
	ReducedRange        bool
}

// ActivationSpec returns the Spec of an activation tensor, always stored as
// uint8 so that every activation in a graph has the same ONNX element type:
//
//   - asymmetric: levels [0, 255], zero point computed from the range;
//   - symmetric, nonNegative: levels [0, 255], zero point 0, range [0, m]
//     (POT's unsigned symmetric quantizer);
//   - symmetric, signed: levels [0, 255], zero point 128, range
//     [-128·m/127, m]. This is the grid of int8 with zero point 0, shifted by
//     128: ONNX Runtime's x86 integer kernels multiply uint8 activations by
//     int8 weights (vpmaddubsw, vpdpbusd), so it runs without conversion.
//
// nonNegative is ignored in asymmetric mode, where a range [0, max] already
// yields zero point 0.
func ActivationSpec(symmetric bool, nonNegative bool) Spec {
	s := Spec{Bits: 8, LevelLow: 0, LevelHigh: 255}
	if symmetric {
		s.Symmetric = true
		s.Signed = !nonNegative
	}
	return s
}

// WeightSpec returns the Spec of a weight tensor: int8, symmetric, zero point
// 0, narrow range [-127, 127] so that the grid is the same on both sides of
// zero. With reducedRange the grid is 7 bits, [-64, 63], with scale m/63: on
// AVX2 without VNNI, vpmaddubsw adds two uint8×int8 products into a
// saturating int16, and 255·64·2 = 32640 stays below 32767 where
// 255·127·2 = 64770 does not.
func WeightSpec(reducedRange bool) Spec {
	if reducedRange {
		return Spec{Bits: 7, Symmetric: true, Signed: true, LevelLow: -64, LevelHigh: 63, ReducedRange: true}
	}
	return Spec{Bits: 8, Symmetric: true, Signed: true, LevelLow: -127, LevelHigh: 127}
}

// Levels is the number of quantization levels, LevelHigh - LevelLow + 1.
func (s Spec) Levels() int { return int(s.LevelHigh) - int(s.LevelLow) + 1 }

// StorageSigned reports whether quantized values are stored as int8
// (LevelLow < 0) rather than uint8.
func (s Spec) StorageSigned() bool { return s.LevelLow < 0 }

// Validate checks that the levels hold zero, fit in Bits, and leave at least
// one level on each side of a symmetric signed zero point.
func (s Spec) Validate() error {
	switch {
	case s.Bits < 2 || s.Bits > 16:
		return fmt.Errorf("%w: %d bits, want 2 to 16", ErrInvalidSpec, s.Bits)
	case s.LevelLow > 0 || s.LevelHigh <= 0:
		return fmt.Errorf("%w: levels [%d, %d] do not hold 0 and a positive level", ErrInvalidSpec, s.LevelLow, s.LevelHigh)
	case s.Levels() > 1<<s.Bits:
		return fmt.Errorf("%w: levels [%d, %d] need more than %d bits", ErrInvalidSpec, s.LevelLow, s.LevelHigh, s.Bits)
	case s.Symmetric && s.symmetricDenominator() < 1:
		return fmt.Errorf("%w: symmetric levels [%d, %d] leave no level on one side of the zero point", ErrInvalidSpec, s.LevelLow, s.LevelHigh)
	}
	return nil
}

// symmetricZeroPoint is the zero point of a symmetric Spec: LevelLow for an
// unsigned one, else the middle level rounded half to even, as ONNX Runtime
// does: 0 for [-128, 127], [-127, 127] and [-64, 63]; 128 for [0, 255].
func (s Spec) symmetricZeroPoint() int32 {
	if !s.Signed {
		return s.LevelLow
	}
	return int32(math.RoundToEven((float64(s.LevelLow) + float64(s.LevelHigh)) / 2))
}

// symmetricDenominator is the number of levels from the zero point to the
// level that represents m: LevelHigh - LevelLow when unsigned, else the
// shorter side, so that both -m and m are on the grid.
func (s Spec) symmetricDenominator() int32 {
	zp := s.symmetricZeroPoint()
	if !s.Signed {
		return s.LevelHigh - zp
	}
	return min(s.LevelHigh-zp, zp-s.LevelLow)
}

func (s Spec) clamp(v float64) int32 {
	switch {
	case v < float64(s.LevelLow):
		return s.LevelLow
	case v > float64(s.LevelHigh):
		return s.LevelHigh
	}
	return int32(v)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Compute returns the scale and zero point that map the real range
// [min, max] onto s's levels, following ONNX Runtime's compute_scale_zp and
// POT's range rules:
//
//	lo, hi = min(min, 0), max(max, 0)        // 0 is always in the range
//	symmetric:  m = max(|lo|, |hi|)
//	            zp = symmetric zero point (0, or 128 for signed uint8, see ActivationSpec)
//	            scale = m / (LevelHigh - zp)             unsigned: range [0, m]
//	            scale = m / min(LevelHigh-zp, zp-LevelLow)  signed: -m and m on the grid
//	asymmetric: scale = (hi - lo) / (LevelHigh - LevelLow)
//	            zp = clamp(roundHalfEven(LevelLow - lo/scale))
//
// The scale is computed in float64 and rounded once to float32. A constant
// tensor c works (its range is [min(0, c), max(0, c)]).
//
// A zero range (or one whose scale is below the smallest normal float32)
// gives scale 1 and the zero point of 0 (the symmetric zero point, else 0),
// the choice ONNX Runtime's own quantizer makes: 0 dequantizes to exactly 0,
// and a bias scale inputScale·1 stays a normal number, where a tiny scale
// would make it underflow to 0.
//
// NaN or ±Inf bounds, min > max, an invalid Spec and a scale beyond the
// float32 range are errors.
func Compute(min, max float64, s Spec) (scale float32, zeroPoint int32, err error) {
	if err := s.Validate(); err != nil {
		return 0, 0, err
	}
	if !finite(min) || !finite(max) {
		return 0, 0, fmt.Errorf("range [%g, %g]: %w", min, max, ErrNonFinite)
	}
	if min > max {
		return 0, 0, fmt.Errorf("%w: min %g > max %g", ErrInvalidRange, min, max)
	}
	lo, hi := math.Min(min, 0), math.Max(max, 0)
	var sc float64
	if s.Symmetric {
		zeroPoint = s.symmetricZeroPoint()
		sc = math.Max(-lo, hi) / float64(s.symmetricDenominator())
	} else {
		sc = (hi - lo) / float64(s.LevelHigh-s.LevelLow)
	}
	if sc > math.MaxFloat32 {
		return 0, 0, fmt.Errorf("%w: range [%g, %g] needs scale %g beyond float32", ErrInvalidRange, min, max, sc)
	}
	if sc < smallestNormal32 {
		if s.Symmetric {
			return 1, zeroPoint, nil
		}
		return 1, s.clamp(0), nil
	}
	if !s.Symmetric {
		zeroPoint = s.clamp(math.RoundToEven(float64(s.LevelLow) - lo/sc))
	}
	return float32(sc), zeroPoint, nil
}

// ComputePerChannel applies Compute to each (mins[c], maxs[c]). Errors name
// the channel.
func ComputePerChannel(mins, maxs []float64, s Spec) ([]float32, []int32, error) {
	if len(mins) != len(maxs) {
		return nil, nil, fmt.Errorf("%w: %d mins and %d maxs", ErrShape, len(mins), len(maxs))
	}
	scales := make([]float32, len(mins))
	zps := make([]int32, len(mins))
	for c := range mins {
		sc, zp, err := Compute(mins[c], maxs[c], s)
		if err != nil {
			return nil, nil, fmt.Errorf("channel %d: %w", c, err)
		}
		scales[c], zps[c] = sc, zp
	}
	return scales, zps, nil
}

// Quantize is ONNX QuantizeLinear on one value, restricted to s's levels:
// clamp(roundHalfEven(x / scale) + zeroPoint, LevelLow, LevelHigh), the
// division in float32 as ONNX Runtime does it. A NaN x gives the zero point.
func Quantize(x, scale float32, zeroPoint int32, s Spec) int32 {
	v := math.RoundToEven(float64(x / scale))
	if math.IsNaN(v) {
		return zeroPoint
	}
	return s.clamp(v + float64(zeroPoint))
}

// Dequantize is ONNX DequantizeLinear on one value: (q - zeroPoint) · scale
// in float32.
func Dequantize(q int32, scale float32, zeroPoint int32) float32 {
	return float32(q-zeroPoint) * scale
}
