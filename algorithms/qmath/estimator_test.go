package qmath

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

func est(typ, agg string, p float64) Estimator {
	return Estimator{Type: typ, Aggregator: agg, OutlierProb: p}
}

// public drops the recorded bound so results compare with literals.
func public(e Estimator) Estimator { e.side = sideUnset; return e }

func TestResolvePresets(t *testing.T) {
	tests := []struct {
		name      string
		r         RangeEstimator
		symmetric bool
		min, max  Estimator
		minStat   pipeline.StatSpec
		maxStat   pipeline.StatSpec
	}{
		// POT DEFAULT_ACTIVATIONS_RANGE_ESTIMATOR_CONFIG, pertensor.
		{"default asymmetric", RangeEstimator{Preset: "default"}, false,
			est("min", "mean", 0), est("max", "mean", 0),
			pipeline.StatSpec{Kind: pipeline.StatMin, Fold: reduce.FoldSum}, pipeline.StatSpec{Kind: pipeline.StatMax, Fold: reduce.FoldSum}},
		{"default symmetric", RangeEstimator{}, true,
			est("min", "min", 0), est("abs_max", "mean", 0),
			pipeline.StatSpec{Kind: pipeline.StatMin, Fold: reduce.FoldMin}, pipeline.StatSpec{Kind: pipeline.StatAbsMax, Fold: reduce.FoldSum}},
		// POT QUANTILE_ACTIVATIONS_RANGE_ESTIMATOR_CONFIG, pertensor: Q = 1e-4 and 1 - 1e-4.
		{"quantile asymmetric", RangeEstimator{Preset: "quantile"}, false,
			est("quantile", "mean", 1e-4), est("quantile", "mean", 1e-4),
			pipeline.StatSpec{Kind: pipeline.StatQuantile, Q: 1e-4, Fold: reduce.FoldSum}, pipeline.StatSpec{Kind: pipeline.StatQuantile, Q: 1 - 1e-4, Fold: reduce.FoldSum}},
		{"quantile symmetric", RangeEstimator{Preset: "quantile"}, true,
			est("min", "min", 0), est("abs_quantile", "mean", 1e-4),
			pipeline.StatSpec{Kind: pipeline.StatMin, Fold: reduce.FoldMin}, pipeline.StatSpec{Kind: pipeline.StatAbsQuantile, Q: 1 - 1e-4, Fold: reduce.FoldSum}},
		// Overrides replace the non-empty fields only.
		{"override aggregator", RangeEstimator{Preset: "quantile", Max: &Estimator{Aggregator: "max"}}, false,
			est("quantile", "mean", 1e-4), est("quantile", "max", 1e-4),
			pipeline.StatSpec{Kind: pipeline.StatQuantile, Q: 1e-4, Fold: reduce.FoldSum}, pipeline.StatSpec{Kind: pipeline.StatQuantile, Q: 1 - 1e-4, Fold: reduce.FoldMax}},
		{"override outlier_prob", RangeEstimator{Preset: "quantile", Min: &Estimator{OutlierProb: 0.01}}, false,
			est("quantile", "mean", 0.01), est("quantile", "mean", 1e-4),
			pipeline.StatSpec{Kind: pipeline.StatQuantile, Q: 0.01, Fold: reduce.FoldSum}, pipeline.StatSpec{Kind: pipeline.StatQuantile, Q: 1 - 1e-4, Fold: reduce.FoldSum}},
		// A quantile type on the default preset gets DefaultOutlierProb.
		{"override type", RangeEstimator{Max: &Estimator{Type: "abs_quantile", Aggregator: "median_no_outliers"}}, false,
			est("min", "mean", 0), est("abs_quantile", "median_no_outliers", 1e-4),
			pipeline.StatSpec{Kind: pipeline.StatMin, Fold: reduce.FoldSum}, pipeline.StatSpec{Kind: pipeline.StatAbsQuantile, Q: 1 - 1e-4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			min, max, err := tt.r.Resolve(tt.symmetric)
			if err != nil {
				t.Fatal(err)
			}
			if public(min) != tt.min || public(max) != tt.max {
				t.Errorf("Resolve(%v) = (%+v, %+v), want (%+v, %+v)", tt.symmetric, min, max, tt.min, tt.max)
			}
			if got := min.StatSpec(); got != tt.minStat {
				t.Errorf("min StatSpec = %+v, want %+v", got, tt.minStat)
			}
			if got := max.StatSpec(); got != tt.maxStat {
				t.Errorf("max StatSpec = %+v, want %+v", got, tt.maxStat)
			}
			for _, s := range []pipeline.StatSpec{min.StatSpec(), max.StatSpec()} {
				if err := s.Validate(); err != nil {
					t.Errorf("StatSpec %+v: %v", s, err)
				}
			}
		})
	}
}

func TestResolveFromJSON(t *testing.T) {
	var r RangeEstimator
	// POT's config spelling.
	cfg := `{"preset": "quantile", "max": {"aggregator": "median", "outlier_prob": 0.001}}`
	if err := json.Unmarshal([]byte(cfg), &r); err != nil {
		t.Fatal(err)
	}
	_, max, err := r.Resolve(false)
	if err != nil {
		t.Fatal(err)
	}
	// Q = 1 - 0.001 = 0.999; key formatted with %g.
	if got := max.StatSpec().Key(); got != "quantile@0.999" || max.Aggregator != "median" {
		t.Errorf("max = %+v, key %q; want median, quantile@0.999", max, got)
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name string
		r    RangeEstimator
		want error
		msg  string
	}{
		{"unknown preset", RangeEstimator{Preset: "fast"}, ErrUnknownName,
			`range_estimator: unknown name: preset "fast" (valid: default, quantile)`},
		{"unknown type", RangeEstimator{Min: &Estimator{Type: "mean"}}, ErrUnknownName,
			`range_estimator: min: unknown name: type "mean" (valid: abs_max, abs_quantile, max, min, quantile)`},
		{"unknown aggregator", RangeEstimator{Max: &Estimator{Aggregator: "hl_estimator"}}, ErrUnknownName,
			`range_estimator: max: unknown name: aggregator "hl_estimator" (valid: max, mean, mean_no_outliers, median, median_no_outliers, min)`},
		{"outlier_prob too large", RangeEstimator{Preset: "quantile", Max: &Estimator{OutlierProb: 0.5}}, ErrOutlierProb,
			`range_estimator: max: outlier_prob 0.5: outlier probability outside [0, 0.5)`},
		{"negative outlier_prob", RangeEstimator{Min: &Estimator{OutlierProb: -0.1}}, ErrOutlierProb,
			`range_estimator: min: outlier_prob -0.1: outlier probability outside [0, 0.5)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.r.Resolve(false)
			if !errors.Is(err, tt.want) || err.Error() != tt.msg {
				t.Errorf("Resolve error = %q, want %q (%v)", err, tt.msg, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	for _, names := range [][]string{Types(), Aggregators(), Presets()} {
		if !slices.IsSorted(names) {
			t.Errorf("names %v not sorted", names)
		}
	}
	// Callers get copies.
	a := Types()
	a[0] = "x"
	if Types()[0] == "x" {
		t.Error("Types() returned the package's slice")
	}
}

func TestStatSpecUnresolvedQuantilePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("StatSpec of an unresolved quantile Estimator did not panic")
		}
	}()
	_ = est("quantile", "mean", 1e-4).StatSpec()
}

func TestStatSpecUnresolvedSimple(t *testing.T) {
	// Types whose statistic does not depend on the bound work unresolved.
	if got := est("abs_quantile", "mean", 0.25).StatSpec(); got != (pipeline.StatSpec{Kind: pipeline.StatAbsQuantile, Q: 0.75, Fold: reduce.FoldSum}) {
		t.Errorf("abs_quantile StatSpec = %+v, want Q 0.75", got)
	}
}
