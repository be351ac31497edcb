package qmath

import (
	"errors"
	"math"
	"math/rand"
	"slices"
	"testing"
	"testing/quick"

	"github.com/fleetcal/fleetcal/reduce"
)

func TestAggregate(t *testing.T) {
	odd := []float64{3, 1, 4, 1, 5}  // sorted: 1 1 3 4 5
	even := []float64{3, 1, 4, 1}    // sorted: 1 1 3 4
	spread := []float64{0, 10, 2, 1} // sorted: 0 1 2 10
	tests := []struct {
		agg    string
		values []float64
		p      float64
		want   float64
	}{
		{"mean", odd, 0, 2.8},               // (3+1+4+1+5)/5 = 14/5
		{"mean", []float64{-7}, 0, -7},      // one value
		{"max", odd, 0, 5},                  // largest
		{"min", odd, 0, 1},                  // smallest
		{"median", odd, 0, 3},               // middle of 1 1 [3] 4 5
		{"median", even, 0, 2},              // (1+3)/2 of 1 [1 3] 4
		{"median", []float64{1, 2}, 0, 1.5}, // (1+2)/2
		{"mean_no_outliers", odd, 0, 2.8},   // p = 0: bounds are min and max, nothing dropped
		{"median_no_outliers", odd, 0, 3},   // p = 0: plain median
		// p = 0.25, n = 5: lo at h = 4·0.25 = 1 → 1, hi at h = 4·0.75 = 3 → 4;
		// 5 is dropped: mean (3+1+4+1)/4 = 2.25, median of 1 1 3 4 = 2.
		{"mean_no_outliers", odd, 0.25, 2.25},
		{"median_no_outliers", odd, 0.25, 2},
		// p = 0.25, n = 4: lo at h = 0.75 → 0 + 0.75·(1-0) = 0.75, hi at h = 2.25 → 2 + 0.25·(10-2) = 4;
		// kept 1, 2: mean 1.5, median 1.5.
		{"mean_no_outliers", spread, 0.25, 1.5},
		{"median_no_outliers", spread, 0.25, 1.5},
		// p = 0.25, n = 2: lo = 0.25·4 = 1, hi = 3 keep nothing: fall back to all, mean 2.
		{"mean_no_outliers", []float64{0, 4}, 0.25, 2},
		{"median_no_outliers", []float64{0, 4}, 0.25, 2},
		// p = 0.01 on 0..100: lo at h = 1 → 1, hi at h = 99 → 99; keep 1..99: mean 50.
		{"mean_no_outliers", seq(101), 0.01, 50},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.values)
		got, err := Aggregate(tt.agg, tt.values, tt.p)
		if err != nil {
			t.Errorf("Aggregate(%s, %v, %g): %v", tt.agg, tt.values, tt.p, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Aggregate(%s, %v, %g) = %v, want %v", tt.agg, tt.values, tt.p, got, tt.want)
		}
		if !slices.Equal(in, tt.values) {
			t.Errorf("Aggregate(%s) modified its input: %v → %v", tt.agg, in, tt.values)
		}
	}
}

func seq(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i)
	}
	return v
}

// TestAggregateMeanExact: the mean's sum is exact, so the order of the
// values does not matter. Summed left to right in float64, 1e16 + 1 rounds
// to 1e16 (ulp 2) and the first order would give 0/3.
func TestAggregateMeanExact(t *testing.T) {
	a, _ := Aggregate("mean", []float64{1e16, 1, -1e16}, 0)
	b, _ := Aggregate("mean", []float64{1e16, -1e16, 1}, 0)
	if a != 1.0/3 || b != 1.0/3 {
		t.Errorf("means = %v, %v; want 1/3 twice", a, b)
	}
	// (0.1 + 0.2 + 0.3) / 3 of the float64 values: Python's
	// float(sum(map(Fraction, (0.1, 0.2, 0.3))) / 3) is 0.2; the float64
	// sum left to right gives 0.20000000000000004.
	if c, _ := Aggregate("mean", []float64{0.1, 0.2, 0.3}, 0); c != 0.2 {
		t.Errorf("mean(0.1, 0.2, 0.3) = %v, want 0.2", c)
	}
}

func TestAggregateErrors(t *testing.T) {
	tests := []struct {
		name   string
		agg    string
		values []float64
		p      float64
		want   error
		msg    string
	}{
		{"empty", "mean", nil, 0, ErrEmpty, "aggregate mean: no values"},
		{"NaN", "median", []float64{1, math.NaN()}, 0, ErrNonFinite, "aggregate median: value 1 is NaN: non-finite value"},
		{"Inf", "max", []float64{math.Inf(1)}, 0, ErrNonFinite, "aggregate max: value 0 is +Inf: non-finite value"},
		{"unknown", "hl_estimator", []float64{1}, 0, ErrUnknownName,
			`aggregate: unknown name: aggregator "hl_estimator" (valid: max, mean, mean_no_outliers, median, median_no_outliers, min)`},
		{"outlier prob", "mean_no_outliers", []float64{1}, 0.5, ErrOutlierProb,
			"aggregate mean_no_outliers: outlier_prob 0.5: outlier probability outside [0, 0.5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Aggregate(tt.agg, tt.values, tt.p)
			if !errors.Is(err, tt.want) || err.Error() != tt.msg {
				t.Errorf("error = %q, want %q", err, tt.msg)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	v := []float64{10, 0, 30, 20} // sorted 0 10 20 30, n-1 = 3
	tests := []struct{ q, want float64 }{
		{0, 0},       // h = 0
		{1, 30},      // h = 3
		{0.5, 15},    // h = 1.5: 10 + 0.5·10
		{0.25, 7.5},  // h = 0.75: 0 + 0.75·10 (t >= 0.5 branch: 10 - 0.25·10)
		{0.75, 22.5}, // h = 2.25: 20 + 0.25·10
	}
	for _, tt := range tests {
		got, err := Quantile(v, tt.q)
		if err != nil || got != tt.want {
			t.Errorf("Quantile(%v, %g) = %v, %v; want %v", v, tt.q, got, err, tt.want)
		}
	}
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if _, err := Quantile(v, q); !errors.Is(err, ErrInvalidRange) {
			t.Errorf("Quantile(q = %g) error = %v, want ErrInvalidRange", q, err)
		}
	}
	if _, err := Quantile(nil, 0.5); !errors.Is(err, ErrEmpty) {
		t.Errorf("Quantile(nil) error = %v, want ErrEmpty", err)
	}
}

func perSample(t *testing.T, byIndex map[int]float64, order []int) *reduce.PerSample {
	t.Helper()
	p := reduce.NewPerSample(1)
	for _, i := range order {
		if err := p.Add(i, []float64{byIndex[i]}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestActivationRange(t *testing.T) {
	minEst, maxEst, err := RangeEstimator{Max: &Estimator{Aggregator: "median"}}.Resolve(false)
	if err != nil {
		t.Fatal(err)
	}
	minKey, maxKey := minEst.StatSpec().Key(), maxEst.StatSpec().Key()
	if minKey != "sum(min)" || maxKey != "max" {
		t.Fatalf("keys %q, %q; want sum(min) (mean: a fold) and max (median: per sample)", minKey, maxKey)
	}
	stats := reduce.NewSet()
	for _, v := range []float64{-3, -2, -1} {
		_ = stats.AddFold("x", minKey, reduce.FoldSum, v)
	}
	// Samples added out of order: Column(0) yields index order 0, 1, 2.
	maxs := perSample(t, map[int]float64{0: 2, 1: 6, 2: 1}, []int{1, 2, 0})
	stats.Stats["x"] = map[string]*reduce.PerSample{maxKey: maxs}
	lo, hi, err := ActivationRange(minEst, maxEst, stats, "x")
	if err != nil {
		t.Fatal(err)
	}
	// min: mean(-3, -2, -1) = -2; max: median(2, 6, 1) = 2.
	if lo != -2 || hi != 2 {
		t.Errorf("ActivationRange = (%v, %v), want (-2, 2)", lo, hi)
	}

	// mean_no_outliers trims at NoOutliersProb = 0.01 (POT's alpha), whatever
	// outlier_prob says: on 101 samples the bounds are the values at h = 1 and
	// h = 99 of the sorted samples.
	_, maxEst2, _ := RangeEstimator{Max: &Estimator{Aggregator: "mean_no_outliers"}}.Resolve(false)
	vals := map[int]float64{}
	order := make([]int, 101)
	for i := range 101 {
		vals[i], order[i] = float64(i), 100-i
	}
	vals[100] = 1e6 // an outlier sample: dropped, mean of 1..99 = 50
	stats.Stats["x"][maxEst2.StatSpec().Key()] = perSample(t, vals, order)
	_, hi, err = ActivationRange(minEst, maxEst2, stats, "x")
	if err != nil || hi != 50 {
		t.Errorf("mean_no_outliers max = %v, %v; want 50", hi, err)
	}

	if _, _, err := ActivationRange(minEst, maxEst, stats, "y"); !errors.Is(err, ErrEmpty) ||
		err.Error() != "activation range: min: min statistics: no values" {
		t.Errorf("missing min statistics error = %v", err)
	}
	stats.Folds["z"] = map[string]*reduce.Fold{minKey: reduce.NewFold(reduce.FoldSum)}
	stats.Stats["z"] = map[string]*reduce.PerSample{maxKey: reduce.NewPerSample(1)}
	if _, _, err := ActivationRange(minEst, maxEst, stats, "z"); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty min fold error = %v, want ErrEmpty", err)
	}
	stats.Folds["z"][minKey] = stats.Folds["x"][minKey]
	if _, _, err := ActivationRange(minEst, maxEst, stats, "z"); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty max statistics error = %v, want ErrEmpty", err)
	}
}

// TestBoundFoldEqualsPerSample: for every aggregator a Fold can hold, the
// bound from the Fold has the bits of Aggregate over the per-sample
// values, whatever their order and however they were split into shards.
func TestBoundFoldEqualsPerSample(t *testing.T) {
	f := func(vals []float32, seed int64) bool {
		if len(vals) == 0 {
			return true
		}
		r := rand.New(rand.NewSource(seed))
		for _, agg := range []string{AggMean, AggMax, AggMin} {
			_, e, err := RangeEstimator{Max: &Estimator{Aggregator: agg}}.Resolve(false)
			if err != nil {
				t.Fatal(err)
			}
			spec := e.StatSpec()
			var vs []float64
			shards := []*reduce.Set{reduce.NewSet(), reduce.NewSet(), reduce.NewSet()}
			for _, i := range r.Perm(len(vals)) {
				v := float64(vals[i])
				if math.IsNaN(v) || math.IsInf(v, 0) {
					continue
				}
				vs = append(vs, v)
				_ = shards[r.Intn(3)].AddFold("x", spec.Key(), spec.Fold, v)
			}
			if len(vs) == 0 {
				return true
			}
			merged := reduce.NewSet()
			for _, i := range r.Perm(3) {
				if err := merged.Merge(shards[i]); err != nil {
					t.Fatal(err)
				}
			}
			got, err1 := Bound(e, merged, "x")
			want, err2 := Aggregate(agg, vs, NoOutliersProb)
			if err1 != nil || err2 != nil || math.Float64bits(got) != math.Float64bits(want) {
				t.Logf("%s of %v: fold %v (%v), Aggregate %v (%v)", agg, vs, got, err1, want, err2)
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 300, Rand: rand.New(rand.NewSource(3))}); err != nil {
		t.Error(err)
	}
}
