package qmath

import (
	"errors"
	"math"
	"testing"
)

var (
	actAsym     = ActivationSpec(false, false)
	actSymU     = ActivationSpec(true, true)
	actSymS     = ActivationSpec(true, false)
	weight      = WeightSpec(false)
	weightRed   = WeightSpec(true)
	int8SymFull = Spec{Bits: 8, Symmetric: true, Signed: true, LevelLow: -128, LevelHigh: 127}
)

func TestSpecs(t *testing.T) {
	tests := []struct {
		name       string
		s          Spec
		want       Spec
		levels     int
		zp         int32 // symmetric zero point
		storageInt bool
	}{
		// POT: asymmetric activations are uint8 [0, 255].
		{"activation asymmetric", actAsym, Spec{Bits: 8, LevelHigh: 255}, 256, 0, false},
		// POT unsigned symmetric quantizer: [0, 255], zp 0.
		{"activation symmetric unsigned", actSymU, Spec{Bits: 8, Symmetric: true, LevelHigh: 255}, 256, 0, false},
		// round_half_even((0+255)/2) = round(127.5) = 128.
		{"activation symmetric signed", actSymS, Spec{Bits: 8, Symmetric: true, Signed: true, LevelHigh: 255}, 256, 128, false},
		// narrow int8: 127 - (-127) + 1 = 255 levels, zp round(0) = 0.
		{"weight", weight, Spec{Bits: 8, Symmetric: true, Signed: true, LevelLow: -127, LevelHigh: 127}, 255, 0, true},
		// 7 bits: 63 - (-64) + 1 = 128 levels, zp round(-0.5) = -0 = 0.
		{"weight reduced", weightRed, Spec{Bits: 7, Symmetric: true, Signed: true, LevelLow: -64, LevelHigh: 63, ReducedRange: true}, 128, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.s != tt.want {
				t.Errorf("spec = %+v, want %+v", tt.s, tt.want)
			}
			if got := tt.s.Levels(); got != tt.levels {
				t.Errorf("Levels() = %d, want %d", got, tt.levels)
			}
			if got := tt.s.symmetricZeroPoint(); tt.s.Symmetric && got != tt.zp {
				t.Errorf("symmetric zero point = %d, want %d", got, tt.zp)
			}
			if got := tt.s.StorageSigned(); got != tt.storageInt {
				t.Errorf("StorageSigned() = %v, want %v", got, tt.storageInt)
			}
			if err := tt.s.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	for _, s := range []Spec{
		{Bits: 1, LevelHigh: 1},                                              // too few bits
		{Bits: 8, LevelLow: 1, LevelHigh: 255},                               // 0 not a level
		{Bits: 8, LevelLow: -128, LevelHigh: 128},                            // 257 levels > 2^8
		{Bits: 8, Symmetric: true, Signed: true, LevelHigh: 1},               // zp round(0.5) = 0: nothing below it
		{Bits: 8, Symmetric: true, Signed: true, LevelLow: -1, LevelHigh: 0}, // no positive level
	} {
		if err := s.Validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidSpec", s, err)
		}
		if _, _, err := Compute(-1, 1, s); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("Compute(-1, 1, %+v) = %v, want ErrInvalidSpec", s, err)
		}
	}
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name     string
		min, max float64
		s        Spec
		scale    float32
		zp       int32
	}{
		// m = max(|-63.5|, 10) = 63.5; scale = 63.5/(255-128) = 0.5; zp 128.
		{"symmetric signed uint8", -63.5, 10, actSymS, 0.5, 128},
		// same grid as int8 zp 0: scale = 63.5/min(127-0, 0+128) = 0.5.
		{"symmetric signed int8", -63.5, 10, int8SymFull, 0.5, 0},
		// m = 127.5; scale = 127.5/(255-0) = 0.5; zp 0.
		{"symmetric unsigned", 0, 127.5, actSymU, 0.5, 0},
		// m = max(|-2|, 127) = 127; scale = 127/127 = 1.
		{"symmetric weight", -2, 127, weight, 1, 0},
		// reduced range: m = 31.5; scale = 31.5/min(63, 64) = 0.5.
		{"reduced range", -31.5, 3, weightRed, 0.5, 0},
		// scale = (245 - -10)/255 = 1; zp = round(0 - (-10)/1) = 10.
		{"asymmetric", -10, 245, actAsym, 1, 10},
		// scale = 4/255 (float64 then float32); zp = round(1/(4/255)) = round(63.75) = 64.
		{"asymmetric inexact", -1, 3, actAsym, float32(4.0 / 255), 64},
		// [2, 257] widens to [0, 257]: scale = 257/255, zp = round(0) = 0.
		{"asymmetric positive", 2, 257, actAsym, float32(257.0 / 255), 0},
		// negative-only [-255, -3] widens to [-255, 0]: scale 1, zp = round(255) = 255.
		{"negative-only asymmetric", -255, -3, actAsym, 1, 255},
		// negative-only symmetric: m = 63.5, scale 0.5, zp 128.
		{"negative-only symmetric", -63.5, -1, actSymS, 0.5, 128},
		// negative-only weight: m = 254, scale = 254/127 = 2.
		{"negative-only weight", -254, -4, weight, 2, 0},
		// constant c = 255: range [0, 255], scale 1, zp 0.
		{"constant positive", 255, 255, actAsym, 1, 0},
		// constant c = -127 (weight): m = 127, scale 1.
		{"constant negative weight", -127, -127, weight, 1, 0},
		// constant c = -127.5 (asymmetric): range [-127.5, 0], scale 0.5, zp = round(255) = 255.
		{"constant negative asymmetric", -127.5, -127.5, actAsym, 0.5, 255},
		// zero range: ONNX Runtime's scale 1 and the zero point of 0.
		{"zero range asymmetric", 0, 0, actAsym, 1, 0},
		{"zero range symmetric signed", 0, 0, actSymS, 1, 128},
		{"zero range symmetric unsigned", 0, 0, actSymU, 1, 0},
		{"zero range weight", 0, 0, weight, 1, 0},
		{"zero range reduced", 0, 0, weightRed, 1, 0},
		// 2e-45/255 < 2^-126 (smallest normal float32): treated as a zero range.
		{"subnormal range", -1e-45, 1e-45, actAsym, 1, 0},
		// zero point half to even: scale = 510/255 = 2; zp = 5/2 = 2.5 → 2.
		{"zp half to even down", -5, 505, actAsym, 2, 2},
		// scale = 510/255 = 2; zp = 7/2 = 3.5 → 4.
		{"zp half to even up", -7, 503, actAsym, 2, 4},
		// scale = 510/255 = 2; zp = 1/2 = 0.5 → 0.
		{"zp half to even zero", -1, 509, actAsym, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scale, zp, err := Compute(tt.min, tt.max, tt.s)
			if err != nil {
				t.Fatalf("Compute(%g, %g, %+v): %v", tt.min, tt.max, tt.s, err)
			}
			if scale != tt.scale || zp != tt.zp {
				t.Errorf("Compute(%g, %g, %+v) = (%g, %d), want (%g, %d)", tt.min, tt.max, tt.s, scale, zp, tt.scale, tt.zp)
			}
			if q := Quantize(0, scale, zp, tt.s); q != zp || Dequantize(q, scale, zp) != 0 {
				t.Errorf("0 quantizes to %d (dequantized %g), want zp %d and 0", q, Dequantize(q, scale, zp), zp)
			}
		})
	}
}

func TestComputeErrors(t *testing.T) {
	tests := []struct {
		name     string
		min, max float64
		want     error
	}{
		{"NaN min", math.NaN(), 1, ErrNonFinite},
		{"NaN max", -1, math.NaN(), ErrNonFinite},
		{"+Inf", 0, math.Inf(1), ErrNonFinite},
		{"-Inf", math.Inf(-1), 0, ErrNonFinite},
		{"min > max", 2, 1, ErrInvalidRange},
		// 1e300/255 is far beyond float32's 3.4e38.
		{"scale overflows float32", 0, 1e300, ErrInvalidRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Compute(tt.min, tt.max, actAsym)
			if !errors.Is(err, tt.want) {
				t.Errorf("Compute(%g, %g) error = %v, want %v", tt.min, tt.max, err, tt.want)
			}
		})
	}
}

func TestComputePerChannel(t *testing.T) {
	// channel 0: m = 63.5 → 63.5/127 = 0.5; channel 1: zero range → 1;
	// channel 2: m = 254 → 254/127 = 2.
	scales, zps, err := ComputePerChannel([]float64{-1, 0, -254}, []float64{63.5, 0, 2}, weight)
	if err != nil {
		t.Fatal(err)
	}
	wantScales, wantZps := []float32{0.5, 1, 2}, []int32{0, 0, 0}
	for c := range wantScales {
		if scales[c] != wantScales[c] || zps[c] != wantZps[c] {
			t.Errorf("channel %d = (%g, %d), want (%g, %d)", c, scales[c], zps[c], wantScales[c], wantZps[c])
		}
	}
	_, _, err = ComputePerChannel([]float64{0, math.NaN()}, []float64{1, 1}, weight)
	if !errors.Is(err, ErrNonFinite) || err.Error() != "channel 1: range [NaN, 1]: non-finite value" {
		t.Errorf("NaN channel error = %v", err)
	}
	if _, _, err := ComputePerChannel([]float64{0}, nil, weight); !errors.Is(err, ErrShape) {
		t.Errorf("length mismatch error = %v, want ErrShape", err)
	}
}

func TestQuantizeDequantize(t *testing.T) {
	tests := []struct {
		x     float32
		scale float32
		zp    int32
		s     Spec
		want  int32
	}{
		{2.5, 1, 0, weight, 2},       // 2.5 → half to even 2
		{3.5, 1, 0, weight, 4},       // 3.5 → 4
		{-2.5, 1, 0, weight, -2},     // -2.5 → -2
		{300, 1, 0, weight, 127},     // clamped to LevelHigh
		{-300, 1, 0, weight, -127},   // clamped to narrow LevelLow, not -128
		{-300, 1, 0, weightRed, -64}, // reduced range low
		{300, 1, 0, weightRed, 63},   // reduced range high
		{-1, 0.5, 128, actSymS, 126}, // -1/0.5 + 128
		{-1, 0.5, 0, actSymU, 0},     // negative input of an unsigned quantizer clips to 0
		{float32(math.NaN()), 1, 7, actAsym, 7},
	}
	for _, tt := range tests {
		if got := Quantize(tt.x, tt.scale, tt.zp, tt.s); got != tt.want {
			t.Errorf("Quantize(%g, %g, %d, %+v) = %d, want %d", tt.x, tt.scale, tt.zp, tt.s, got, tt.want)
		}
	}
	// (126 - 128) · 0.5 = -1.
	if got := Dequantize(126, 0.5, 128); got != -1 {
		t.Errorf("Dequantize(126, 0.5, 128) = %g, want -1", got)
	}
}
