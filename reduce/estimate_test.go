package reduce

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// histOf returns a histogram over [lo, hi) in bins bins holding values.
func histOf(t testing.TB, lo, hi float64, bins int, values ...float64) *Histogram {
	t.Helper()
	h := mustHist(t, lo, hi, bins)
	for _, v := range values {
		h.Add(v)
	}
	return h
}

func TestPercentile(t *testing.T) {
	// Edges of [0, 10) in 10 bins are 0, 1, ..., 10; counts [2 2 0 ...]; N = 4.
	a := histOf(t, 0, 10, 10, 0.5, 0.5, 1.5, 1.5)
	// Edges of [0, 4) in 4 bins are 0, 1, 2, 3, 4; counts [1 0 2 0],
	// underflow 1 (-1), overflow 1 (9); N = 5.
	b := histOf(t, 0, 4, 4, -1, 0.5, 2.5, 2.5, 9)
	// 99999 values in bin [0, 1) and one in bin [9, 10): N = 100000.
	c := mustHist(t, 0, 10, 10)
	for range 99999 {
		c.Add(0.25)
	}
	c.Add(9.25)
	tests := []struct {
		name string
		h    *Histogram
		p    float64
		want float64
	}{
		// r = p/100·N; v = Edge(k) + (r - C)/count(k)·width, by hand:
		{"a p0: lower edge of first non-empty bin", a, 0, 0},
		{"a p25: r=1, bin 0, 0+1/2", a, 25, 0.5},
		{"a p50: r=2, bin 0 full", a, 50, 1},
		{"a p75: r=3, bin 1, 1+(3-2)/2", a, 75, 1.5},
		{"a p100: r=4, bin 1 full", a, 100, 2},
		{"b p0: underflow at lo", b, 0, 0},
		{"b p20: r=1, the underflow value, at lo", b, 20, 0},
		{"b p30: r=1.5, bin 0, 0+(1.5-1)/1", b, 30, 0.5},
		{"b p60: r=3, bin 2, 2+(3-2)/2", b, 60, 2.5},
		{"b p90: r=4.5, overflow, at hi", b, 90, 4},
		{"b p100: r=5, overflow, at hi", b, 100, 4},
		{"c p99.999: r=99999, bin 0 full", c, 99.999, 1},
		{"c p99.9995: r=99999.5, bin 9, 9+0.5/1", c, 99.9995, 9.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Percentile(tc.h, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			// r = p/100·N is rounded in float64; allow that rounding.
			if math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("Percentile(counts %v u %d o %d, %g) = %.17g, want %g",
					tc.h.Counts(), tc.h.Underflow(), tc.h.Overflow(), tc.p, got, tc.want)
			}
		})
	}
}

func TestPercentileErrors(t *testing.T) {
	h := histOf(t, 0, 1, 4, 0.5)
	for _, p := range []float64{-0.001, 100.001, math.NaN(), math.Inf(1)} {
		if _, err := Percentile(h, p); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Percentile(h, %g): err = %v, want ErrOutOfRange", p, err)
		}
	}
	for name, h := range map[string]*Histogram{
		"no values":  mustHist(t, 0, 1, 4),
		"only a NaN": histOf(t, 0, 1, 4, math.NaN()),
	} {
		if _, err := Percentile(h, 50); !errors.Is(err, ErrEmpty) {
			t.Errorf("Percentile of a histogram with %s: err = %v, want ErrEmpty", name, err)
		}
	}
}

func TestEntropyDivergenceByHand(t *testing.T) {
	// Counts [6 1 1 1] over [0, 4), 2 levels: the KL(P||Q) of each candidate
	// i, by hand from the definition in EntropyThreshold's comment:
	//   i=2: P = [6, 3]/9 (bins 2, 3 folded into bin 1), Q = [6, 1]/7
	//   i=3: P = [6, 1, 2]/9, Q = [6, 1, 1]/8 (level 1 = bins 1-2, sum 2, 2 non-zero)
	//   i=4: P = [6, 1, 1, 1]/9, Q = [3.5, 3.5, 1, 1]/9 (levels of 2 bins)
	want := map[int]float64{
		2: 6.0/9*math.Log((6.0/9)/(6.0/7)) + 3.0/9*math.Log((3.0/9)/(1.0/7)),
		3: 6.0/9*math.Log((6.0/9)/(6.0/8)) + 1.0/9*math.Log((1.0/9)/(1.0/8)) + 2.0/9*math.Log((2.0/9)/(1.0/8)),
		4: 6.0/9*math.Log(6/3.5) + 1.0/9*math.Log(1/3.5),
	}
	counts := []uint64{6, 1, 1, 1}
	logs := []float64{math.Log(6), 0, 0, 0}
	for i := 2; i <= 4; i++ {
		var tail uint64
		for _, c := range counts[i:] {
			tail += c
		}
		got := divergence(counts[:i], logs, 0, tail, 2)
		if math.Abs(got-want[i]) > 1e-12 {
			t.Errorf("candidate %d: KL = %.17g, want %.17g", i, got, want[i])
		}
	}
	// The minimum is i=3 (0.0362 < 0.1149 < 0.2201): threshold Edge(3) = 3.
	h := histOf(t, 0, 4, 4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.5, 2.5, 3.5)
	if got, err := EntropyThreshold(h, 2); err != nil || got != 3 {
		t.Fatalf("EntropyThreshold(%v, 2) = %v, %v; want 3", h.Counts(), got, err)
	}
	// Q equal to P at i = Bins(): nothing to gain by clipping, threshold = Hi.
	// Counts [2 2 0 1]: KL(i=4) = 0 while i=2, 3 are positive.
	h = histOf(t, 0, 4, 4, 0.5, 0.5, 1.5, 1.5, 3.5)
	if got, err := EntropyThreshold(h, 2); err != nil || got != 4 {
		t.Fatalf("EntropyThreshold(%v, 2) = %v, %v; want 4", h.Counts(), got, err)
	}
}

func TestEntropyThresholdGaussianWithOutliers(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	const max = 50.0
	h := mustHist(t, 0, max, 2048)
	vs := make([]float32, 200000)
	for i := range vs {
		vs[i] = float32(math.Abs(r.NormFloat64()))
	}
	h.AddFloat32s(vs)
	for range 5 {
		h.Add(max - 1) // far outliers, 49 standard deviations out
	}
	got, err := EntropyThreshold(h, 128)
	if err != nil {
		t.Fatal(err)
	}
	// The bulk of |N(0, 1)| is below 4; the smallest candidate is
	// 128 bins × 50/2048 = 3.125. The threshold must clip the outliers.
	if got < 3.125 || got > 6 {
		t.Fatalf("threshold of |N(0,1)| with outliers at %g = %g, want in [3.125, 6]", max-1, got)
	}
	t.Logf("threshold %g (max %g)", got, max)
}

func TestEntropyThresholdUniform(t *testing.T) {
	// Equal counts: at i = Bins() Q equals P, KL = 0, threshold = Hi exactly.
	h := mustHist(t, 0, 1, 2048)
	for k := range 2048 {
		for range 10 {
			h.Add(h.Edge(k))
		}
	}
	if got, err := EntropyThreshold(h, 128); err != nil || got != 1 {
		t.Fatalf("threshold of equal counts = %v, %v; want 1 (the max)", got, err)
	}
	// Random uniform values: the threshold stays near the max.
	r := rand.New(rand.NewPCG(14, 15))
	h = mustHist(t, 0, 1, 2048)
	vs := make([]float32, 200000)
	for i := range vs {
		vs[i] = r.Float32()
	}
	h.AddFloat32s(vs)
	got, err := EntropyThreshold(h, 128)
	if err != nil {
		t.Fatal(err)
	}
	if got < 0.9 {
		t.Fatalf("threshold of uniform [0, 1) = %g, want near 1", got)
	}
	t.Logf("threshold %g", got)
}

func TestEntropyThresholdErrors(t *testing.T) {
	h := histOf(t, 0, 1, 16, 0.5)
	for _, n := range []int{0, -1, 17} {
		if _, err := EntropyThreshold(h, n); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("EntropyThreshold(16 bins, %d): err = %v, want ErrOutOfRange", n, err)
		}
	}
	if _, err := EntropyThreshold(mustHist(t, 0, 1, 16), 4); !errors.Is(err, ErrEmpty) {
		t.Errorf("EntropyThreshold(empty): err = %v, want ErrEmpty", err)
	}
	// All values beyond every candidate but the last: still a finite answer.
	h = histOf(t, 0, 1, 16, 2, 2, 2)
	if got, err := EntropyThreshold(h, 4); err != nil || got != 1 {
		t.Errorf("EntropyThreshold(only overflow) = %v, %v; want 1 (Hi)", got, err)
	}
}

func TestEntropyThresholdDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 17))
	vs := make([]float32, 50000)
	for i := range vs {
		vs[i] = float32(math.Abs(r.NormFloat64() * r.ExpFloat64()))
	}
	whole := mustHist(t, 0, 20, 2048)
	whole.AddFloat32s(vs)
	a, b := mustHist(t, 0, 20, 2048), mustHist(t, 0, 20, 2048)
	a.AddFloat32s(vs[25000:])
	b.AddFloat32s(vs[:25000])
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	x, err1 := EntropyThreshold(whole, 128)
	y, err2 := EntropyThreshold(a, 128)
	if err1 != nil || err2 != nil || math.Float64bits(x) != math.Float64bits(y) {
		t.Fatalf("threshold observed at once %v (%v), from two shards %v (%v)", x, err1, y, err2)
	}
}
