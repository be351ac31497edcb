package qmath

import (
	"fmt"
	"math"
	"slices"

	"github.com/fleetcal/fleetcal/reduce"
)

// Aggregate reduces per-sample values to one number (POT's aggregators).
// Every aggregator is a function of the multiset of values, not of their
// order, and gives bit-identical results on the same values; values is not
// modified.
//
//	mean:    (v[0] + v[1] + ... + v[n-1]) / n, the sum exact (reduce.ExactSum)
//	         and the quotient rounded once to the nearest float64: the same
//	         bits as the mean of a reduce.Fold of the values
//	max/min: the largest / smallest value
//	median:  the middle of the sorted values; for even n, the mean of the two
//	         middle ones, a/2 + b/2
//	mean_no_outliers, median_no_outliers: with lo = Quantile(v, p) and
//	         hi = Quantile(v, 1-p), p = outlierProb, keep the v[i] with
//	         lo <= v[i] <= hi (in index order), then take the mean or median
//	         of those. If none is kept (few samples, e.g. n = 2 and p = 0.25),
//	         the mean or median of all values is returned.
//
// outlierProb is used by the *_no_outliers aggregators only and must be in
// [0, 0.5) for them (ActivationRange passes NoOutliersProb, POT's 0.01).
// Empty input, a NaN or ±Inf value and an unknown aggregator are errors.
func Aggregate(aggregator string, values []float64, outlierProb float64) (float64, error) {
	if !known(aggregatorNames, aggregator) {
		return 0, fmt.Errorf("aggregate: %w", unknown("aggregator", aggregator, aggregatorNames))
	}
	if len(values) == 0 {
		return 0, fmt.Errorf("aggregate %s: %w", aggregator, ErrEmpty)
	}
	if i := nonFiniteIndex(values); i >= 0 {
		return 0, fmt.Errorf("aggregate %s: value %d is %g: %w", aggregator, i, values[i], ErrNonFinite)
	}
	switch aggregator {
	case AggMean:
		return mean(values), nil
	case AggMax:
		return slices.Max(values), nil
	case AggMin:
		return slices.Min(values), nil
	case AggMedian:
		return medianSorted(sorted(values)), nil
	}
	// mean_no_outliers, median_no_outliers
	if !(outlierProb >= 0 && outlierProb < 0.5) {
		return 0, fmt.Errorf("aggregate %s: outlier_prob %g: %w", aggregator, outlierProb, ErrOutlierProb)
	}
	s := sorted(values)
	lo, hi := quantileSorted(s, outlierProb), quantileSorted(s, 1-outlierProb)
	kept := make([]float64, 0, len(values))
	for _, v := range values {
		if v >= lo && v <= hi {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		kept = values
	}
	if aggregator == AggMeanNoOutliers {
		return mean(kept), nil
	}
	return medianSorted(sorted(kept)), nil
}

// mean is the exact mean of finite v, rounded once.
func mean(v []float64) float64 {
	var sum reduce.ExactSum
	for _, x := range v {
		_ = sum.Add(x) // finite: checked by Aggregate
	}
	return sum.Quo(uint64(len(v)))
}

func sorted(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

func medianSorted(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return s[n/2-1]/2 + s[n/2]/2
}

// quantileSorted is numpy's default ("linear") quantile of sorted s:
// h = (n-1)·q, i = floor(h), t = h - i, result s[i] + t·(s[i+1] - s[i]),
// written as s[i+1] - (1-t)·(s[i+1] - s[i]) when t >= 0.5 so that it is
// exact at both ends.
func quantileSorted(s []float64, q float64) float64 {
	h := float64(len(s)-1) * q
	i := int(math.Floor(h))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	if i < 0 {
		return s[0]
	}
	a, b, t := s[i], s[i+1], h-float64(i)
	if t >= 0.5 {
		return b - (b-a)*(1-t)
	}
	return a + (b-a)*t
}

// Quantile returns the q-quantile of values with numpy's default "linear"
// interpolation, the definition POT's quantile statistics use: with the
// values sorted, h = (n-1)·q and the result interpolates linearly between
// the values at floor(h) and floor(h)+1. Empty input, non-finite values and
// q outside [0, 1] are errors.
func Quantile(values []float64, q float64) (float64, error) {
	if len(values) == 0 {
		return 0, fmt.Errorf("quantile: %w", ErrEmpty)
	}
	if !(q >= 0 && q <= 1) {
		return 0, fmt.Errorf("quantile: %w: q = %g outside [0, 1]", ErrInvalidRange, q)
	}
	if i := nonFiniteIndex(values); i >= 0 {
		return 0, fmt.Errorf("quantile: value %d is %g: %w", i, values[i], ErrNonFinite)
	}
	return quantileSorted(sorted(values), q), nil
}

// ActivationRange turns the merged statistics of tensor into its (min, max),
// each bound aggregated over samples by its estimator's aggregator: the
// value of the Fold collected under e.StatSpec().Key() for min, max and
// mean, else Aggregate (with NoOutliersProb) of the per-sample values
// collected under that key. Both give the same bits on the same samples.
//
// In symmetric mode, POT decides the quantizer's sign from min and takes the
// scale from max alone:
//
//	spec := ActivationSpec(true, min >= 0)
//	scale, zp, err := Compute(0, max, spec)
//
// In asymmetric mode, Compute(min, max, ActivationSpec(false, false)).
func ActivationRange(minEst, maxEst Estimator, stats *reduce.Set, tensor string) (min, max float64, err error) {
	min, err = Bound(minEst, stats, tensor)
	if err != nil {
		return 0, 0, fmt.Errorf("activation range: min: %w", err)
	}
	max, err = Bound(maxEst, stats, tensor)
	if err != nil {
		return 0, 0, fmt.Errorf("activation range: max: %w", err)
	}
	return min, max, nil
}

// Bound is one bound of ActivationRange: e's statistic of tensor in stats,
// aggregated over samples. No statistic, or one of no samples, is an error
// wrapping ErrEmpty.
func Bound(e Estimator, stats *reduce.Set, tensor string) (float64, error) {
	spec := e.StatSpec()
	if spec.Fold != reduce.FoldNone {
		f := stats.Fold(tensor, spec.Key())
		if f == nil || f.Count() == 0 {
			return 0, fmt.Errorf("%s statistics: %w", e.Type, ErrEmpty)
		}
		v, err := f.Value()
		if err != nil {
			return 0, fmt.Errorf("%s statistics: %w", e.Type, err)
		}
		return v, nil
	}
	p := stats.Get(tensor, spec.Key())
	if p == nil || p.Len() == 0 {
		return 0, fmt.Errorf("%s statistics: %w", e.Type, ErrEmpty)
	}
	v, err := Aggregate(e.Aggregator, p.Column(0), NoOutliersProb)
	if err != nil {
		return 0, fmt.Errorf("%s statistics: %w", e.Type, err)
	}
	return v, nil
}
