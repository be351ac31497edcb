package qmath

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestWeightRange(t *testing.T) {
	// shape [2 3], row-major: row 0 = {1, -2, 3}, row 1 = {-4, 5, 0}.
	w := []float32{1, -2, 3, -4, 5, 0}
	shape := []int64{2, 3}
	tests := []struct {
		axis       int
		mins, maxs []float64
	}{
		{-1, []float64{-4}, []float64{5}},             // whole tensor
		{0, []float64{-2, -4}, []float64{3, 5}},       // per row
		{1, []float64{-4, -2, 0}, []float64{1, 5, 3}}, // per column: {1,-4}, {-2,5}, {3,0}
	}
	for _, tt := range tests {
		mins, maxs := WeightRange(w, shape, tt.axis)
		if !slices.Equal(mins, tt.mins) || !slices.Equal(maxs, tt.maxs) {
			t.Errorf("axis %d: (%v, %v), want (%v, %v)", tt.axis, mins, maxs, tt.mins, tt.maxs)
		}
	}
	// A NaN poisons its channel only.
	mins, maxs := WeightRange([]float32{1, float32(math.NaN()), 2, 3}, []int64{2, 2}, 0)
	if !math.IsNaN(mins[0]) || !math.IsNaN(maxs[0]) || mins[1] != 2 || maxs[1] != 3 {
		t.Errorf("NaN channel: (%v, %v), want ([NaN 2], [NaN 3])", mins, maxs)
	}
	// Channels without elements get [0, 0].
	mins, maxs = WeightRange(nil, []int64{3, 0}, 0)
	if !slices.Equal(mins, []float64{0, 0, 0}) || !slices.Equal(maxs, []float64{0, 0, 0}) {
		t.Errorf("empty channels: (%v, %v), want zeros", mins, maxs)
	}
}

func TestQuantizeWeights(t *testing.T) {
	tests := []struct {
		name   string
		w      []float32
		shape  []int64
		axis   int
		s      Spec
		q      []int8
		scales []float32
	}{
		{
			// row 0: m = 127 → scale 1; 2.5 → 2, 3.5 → 4 (half to even).
			// row 1: m = 254 → scale 2; 254/2 = 127, -5/2 = -2.5 → -2, 1/2 = 0.5 → 0.
			name: "per channel axis 0", w: []float32{-127, 2.5, 3.5, 254, -5, 1}, shape: []int64{2, 3}, axis: 0, s: weight,
			q: []int8{-127, 2, 4, 127, -2, 0}, scales: []float32{1, 2},
		},
		{
			// columns {-127, 254}: m 254 → 2; {2.5, -5}: m 5 → 5/127; {3.5, 1}: m 3.5 → 3.5/127.
			// -127/2 = -63.5 → -64; 254/2 = 127; 2.5, -5 at ±m/2 and ∓m → 63.5 → 64 and -127;
			// 3.5 → 127, 1/(3.5/127) = 36.29 → 36.
			name: "per channel axis 1", w: []float32{-127, 2.5, 3.5, 254, -5, 1}, shape: []int64{2, 3}, axis: 1, s: weight,
			q: []int8{-64, 64, 127, 127, -127, 36}, scales: []float32{2, float32(5.0 / 127), float32(3.5 / 127)},
		},
		{
			// per tensor: m = 254 → scale 2; -127/2 = -63.5 → -64; 2.5/2 = 1.25 → 1; 3.5/2 = 1.75 → 2.
			name: "per tensor", w: []float32{-127, 2.5, 3.5, 254, -5, 1}, shape: []int64{2, 3}, axis: -1, s: weight,
			q: []int8{-64, 1, 2, 127, -2, 0}, scales: []float32{2},
		},
		{
			// reduced range: m = 31.5 → 31.5/63 = 0.5; -31.5 → -63, 1.25/0.5 = 2.5 → 2, 0.75/0.5 = 1.5 → 2.
			name: "reduced range", w: []float32{-31.5, 1.25, 0.75, 31.5}, shape: []int64{4}, axis: -1, s: weightRed,
			q: []int8{-63, 2, 2, 63}, scales: []float32{0.5},
		},
		{
			// channel 0 all zero → scale 1, q 0; channel 1: constant -12.7 → scale 12.7/127, q -127.
			name: "zero and constant channels", w: []float32{0, 0, -12.7, -12.7}, shape: []int64{2, 2}, axis: 0, s: weight,
			q: []int8{0, 0, -127, -127}, scales: []float32{1, float32(float64(float32(12.7)) / 127)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, scales, zps, err := QuantizeWeights(tt.w, tt.shape, tt.axis, tt.s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(q, tt.q) || !slices.Equal(scales, tt.scales) {
				t.Errorf("QuantizeWeights(%v) = (%v, %v), want (%v, %v)", tt.w, q, scales, tt.q, tt.scales)
			}
			for c, zp := range zps {
				if zp != 0 {
					t.Errorf("zero point %d = %d, want 0", c, zp)
				}
			}
		})
	}
}

func TestQuantizeWeightsErrors(t *testing.T) {
	w := []float32{1, 2, 3, 4}
	tests := []struct {
		name  string
		w     []float32
		shape []int64
		axis  int
		s     Spec
		want  error
	}{
		{"shape too small", w, []int64{3}, -1, weight, ErrShape},
		{"negative dim", w, []int64{-4}, -1, weight, ErrShape},
		{"axis out of range", w, []int64{2, 2}, 2, weight, ErrShape},
		{"axis below -1", w, []int64{2, 2}, -2, weight, ErrShape},
		{"asymmetric spec", w, []int64{4}, -1, actAsym, ErrInvalidSpec},
		{"uint8 spec", w, []int64{4}, -1, actSymS, ErrInvalidSpec},
		{"NaN", []float32{1, float32(math.NaN()), 3, 4}, []int64{2, 2}, 0, weight, ErrNonFinite},
		{"Inf", []float32{1, 2, 3, float32(math.Inf(1))}, []int64{2, 2}, 0, weight, ErrNonFinite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := QuantizeWeights(tt.w, tt.shape, tt.axis, tt.s); !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestQuantizeWeightsRoundTrip: every weight dequantizes to within half a
// step of itself (plus float32 rounding of the division and product).
func TestQuantizeWeightsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shape := []int64{8, 3, 3, 3}
	w := make([]float32, 8*27)
	for i := range w {
		c := i / 27
		w[i] = float32(r.NormFloat64() * math.Pow(10, float64(c-4))) // channels span 1e-4 .. 1e3
	}
	for _, s := range []Spec{weight, weightRed} {
		for _, axis := range []int{-1, 0, 1} {
			q, scales, zps, err := QuantizeWeights(w, shape, axis, s)
			if err != nil {
				t.Fatal(err)
			}
			channels, inner := channelLayout(shape, axis)
			for i, x := range w {
				c := channelOf(i, channels, inner)
				got := Dequantize(int32(q[i]), scales[c], zps[c])
				if d := math.Abs(float64(got) - float64(x)); d > float64(scales[c])*(0.5+1e-5) {
					t.Fatalf("spec %+v axis %d: w[%d] = %g → q %d → %g, error %g > scale/2 = %g", s, axis, i, x, q[i], got, d, scales[c]/2)
				}
			}
		}
	}
}

func TestQuantizeBias(t *testing.T) {
	tests := []struct {
		name         string
		b            []float32
		inputScale   float32
		weightScales []float32
		q            []int32
		scales       []float32
	}{
		// scales 0.5·0.25 = 0.125, 0.5·2 = 1; 1/0.125 = 8, 2.5/1 = 2.5 → 2.
		{"per channel", []float32{1, 2.5}, 0.5, []float32{0.25, 2}, []int32{8, 2}, []float32{0.125, 1}},
		// scale 0.5·0.5 = 0.25; ±0.375/0.25 = ±1.5 → ±2; 0.625/0.25 = 2.5 → 2.
		{"per tensor", []float32{0.375, -0.375, 0.625}, 0.5, []float32{0.5}, []int32{2, -2, 2}, []float32{0.25}},
		// 1e10 and -1e10 exceed int32: clamped to 2147483647 and -2147483648.
		{"clamped", []float32{1e10, -1e10}, 1, []float32{1}, []int32{math.MaxInt32, math.MinInt32}, []float32{1}},
		// 16777217 is not a float32; the bias is 16777216 (2^24), scale 2^-4 → 2^28, exact in float64.
		{"large quotient", []float32{16777216}, 0.25, []float32{0.25}, []int32{1 << 28}, []float32{0.0625}},
		{"empty", nil, 1, []float32{1}, []int32{}, []float32{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, scales, err := QuantizeBias(tt.b, tt.inputScale, tt.weightScales)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(q, tt.q) || !slices.Equal(scales, tt.scales) {
				t.Errorf("QuantizeBias(%v, %g, %v) = (%v, %v), want (%v, %v)", tt.b, tt.inputScale, tt.weightScales, q, scales, tt.q, tt.scales)
			}
		})
	}
}

func TestQuantizeBiasErrors(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name         string
		b            []float32
		inputScale   float32
		weightScales []float32
		want         error
	}{
		{"input scale 0", []float32{1}, 0, []float32{1}, ErrZeroScale},
		{"input scale NaN", []float32{1}, nan, []float32{1}, ErrZeroScale},
		{"weight scale 0", []float32{1, 2}, 1, []float32{1, 0}, ErrZeroScale},
		{"negative weight scale", []float32{1}, 1, []float32{-1}, ErrZeroScale},
		{"product underflows", []float32{1}, 1e-30, []float32{1e-30}, ErrZeroScale}, // 1e-60 is 0 in float32
		{"NaN bias", []float32{nan}, 1, []float32{1}, ErrNonFinite},
		{"length mismatch", []float32{1, 2, 3}, 1, []float32{1, 1}, ErrShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := QuantizeBias(tt.b, tt.inputScale, tt.weightScales); !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
}
