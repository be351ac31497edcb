package qmath

import (
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

var quickSpecs = []Spec{actAsym, actSymU, actSymS, int8SymFull, weight, weightRed}

// rangeCase is a random range, a Spec and points inside the range. Bounds are
// float32 values (activations are float32) of log-uniform magnitude from
// 1e-30 to 1e30, sometimes zero, of either sign.
type rangeCase struct {
	Min, Max float32
	Spec     Spec
	Xs       []float32
}

func randBound(r *rand.Rand) float32 {
	if r.Intn(8) == 0 {
		return 0
	}
	m := float32(math.Pow(10, r.Float64()*60-30))
	if r.Intn(2) == 0 {
		return -m
	}
	return m
}

// Generate implements quick.Generator.
func (rangeCase) Generate(r *rand.Rand, _ int) reflect.Value {
	c := rangeCase{Min: randBound(r), Max: randBound(r), Spec: quickSpecs[r.Intn(len(quickSpecs))]}
	if c.Min > c.Max {
		c.Min, c.Max = c.Max, c.Min
	}
	if c.Spec.Symmetric && !c.Spec.Signed && c.Min < 0 {
		// An unsigned quantizer is chosen only for non-negative activations.
		c.Min, c.Max = 0, float32(math.Max(-float64(c.Min), float64(c.Max)))
	}
	c.Xs = []float32{c.Min, c.Max}
	for range 14 {
		x := float64(c.Min) + r.Float64()*(float64(c.Max)-float64(c.Min))
		c.Xs = append(c.Xs, float32(x))
	}
	return reflect.ValueOf(c)
}

// TestQuickRoundTrip: for any range, every x inside it dequantizes to within
// half a step of itself (plus float32 rounding: x/scale and (q-zp)·scale are
// float32 operations on values below 256 steps, so 1e-4 of a step is ample),
// and 0 is exactly representable.
func TestQuickRoundTrip(t *testing.T) {
	f := func(c rangeCase) bool {
		scale, zp, err := Compute(float64(c.Min), float64(c.Max), c.Spec)
		if err != nil {
			t.Logf("%+v: %v", c, err)
			return false
		}
		if !(scale > 0) || zp < c.Spec.LevelLow || zp > c.Spec.LevelHigh {
			t.Logf("%+v: scale %g, zero point %d", c, scale, zp)
			return false
		}
		if q := Quantize(0, scale, zp, c.Spec); q != zp || Dequantize(q, scale, zp) != 0 {
			t.Logf("%+v: 0 → %d → %g", c, q, Dequantize(q, scale, zp))
			return false
		}
		for _, x := range c.Xs {
			q := Quantize(x, scale, zp, c.Spec)
			got := Dequantize(q, scale, zp)
			if d := math.Abs(float64(got) - float64(x)); d > float64(scale)*(0.5+1e-4) {
				t.Logf("%+v: x %g → q %d → %g: error %g > scale/2 = %g", c, x, q, got, d, scale/2)
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 3000, Rand: rand.New(rand.NewSource(1))}); err != nil {
		t.Error(err)
	}
}

// TestQuickAggregateDeterministic: every aggregator gives a bit-identical
// result on the same input, and ignores the order of the values (the means'
// sums are exact).
func TestQuickAggregateDeterministic(t *testing.T) {
	f := func(v []float64, seed int64) bool {
		for i := range v {
			if math.IsNaN(v[i]) || math.IsInf(v[i], 0) {
				v[i] = 0
			}
		}
		if len(v) == 0 {
			return true
		}
		shuffled := append([]float64(nil), v...)
		rand.New(rand.NewSource(seed)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, agg := range Aggregators() {
			a, err1 := Aggregate(agg, v, 0.1)
			b, err2 := Aggregate(agg, append([]float64(nil), v...), 0.1)
			if err1 != nil || err2 != nil || math.Float64bits(a) != math.Float64bits(b) {
				t.Logf("%s: %v, %v / %v, %v", agg, a, err1, b, err2)
				return false
			}
			c, _ := Aggregate(agg, shuffled, 0.1)
			if math.Float64bits(c) != math.Float64bits(a) {
				t.Logf("%s: order changed %v to %v", agg, a, c)
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 300, Rand: rand.New(rand.NewSource(2))}); err != nil {
		t.Error(err)
	}
}

func ExampleCompute() {
	// An asymmetric activation seen in [-1, 3]: uint8, scale 4/255,
	// zero point round(1 / (4/255)) = round(63.75) = 64.
	scale, zp, _ := Compute(-1, 3, ActivationSpec(false, false))
	fmt.Println(scale, zp)
	// A symmetric signed activation with abs max 63.5: zero point 128, 63.5/127.
	scale, zp, _ = Compute(0, 63.5, ActivationSpec(true, false))
	fmt.Println(scale, zp)
	// Output:
	// 0.015686275 64
	// 0.5 128
}
