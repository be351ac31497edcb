package qmath

import (
	"fmt"
	"math"
	"strings"

	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// Statistic types of an Estimator (POT's range_estimator "type"): the
// statistic computed on each sample's activation.
const (
	TypeMin         = "min"          // minimum value
	TypeMax         = "max"          // maximum value
	TypeAbsMax      = "abs_max"      // maximum of |values|
	TypeQuantile    = "quantile"     // outlier_prob-quantile (min side) or (1-outlier_prob)-quantile (max side)
	TypeAbsQuantile = "abs_quantile" // (1-outlier_prob)-quantile of |values|
)

// Aggregators of an Estimator (POT's range_estimator "aggregator"): how the
// per-sample statistics become one number. See Aggregate.
const (
	AggMean             = "mean"
	AggMax              = "max"
	AggMin              = "min"
	AggMedian           = "median"
	AggMeanNoOutliers   = "mean_no_outliers"
	AggMedianNoOutliers = "median_no_outliers"
)

// Range estimator presets (POT's range_estimator "preset").
const (
	PresetDefault  = "default"
	PresetQuantile = "quantile"
)

// DefaultOutlierProb is POT's outlier_prob for the quantile statistics.
const DefaultOutlierProb = 1e-4

// NoOutliersProb is the tail probability the *_no_outliers aggregators trim
// on each side in ActivationRange. POT fixes it at 0.01 for these
// aggregators; an Estimator's outlier_prob configures its quantile statistic
// only.
const NoOutliersProb = 0.01

var (
	typeNames       = []string{TypeAbsMax, TypeAbsQuantile, TypeMax, TypeMin, TypeQuantile}
	aggregatorNames = []string{AggMax, AggMean, AggMeanNoOutliers, AggMedian, AggMedianNoOutliers, AggMin}
	presetNames     = []string{PresetDefault, PresetQuantile}
)

// Types returns the statistic type names, sorted.
func Types() []string { return append([]string(nil), typeNames...) }

// Aggregators returns the aggregator names, sorted.
func Aggregators() []string { return append([]string(nil), aggregatorNames...) }

// Presets returns the range estimator preset names, sorted.
func Presets() []string { return append([]string(nil), presetNames...) }

func known(names []string, n string) bool {
	for _, v := range names {
		if v == n {
			return true
		}
	}
	return false
}

func unknown(what, n string, names []string) error {
	return fmt.Errorf("%w: %s %q (valid: %s)", ErrUnknownName, what, n, strings.Join(names, ", "))
}

type side uint8

const (
	sideUnset side = iota
	sideMin
	sideMax
)

// Estimator is one bound of POT's range_estimator: the per-sample statistic
// (Type), how samples are aggregated (Aggregator) and the tail probability of
// the quantile statistics (OutlierProb). Estimators come from
// RangeEstimator.Resolve, which records which bound each one estimates.
type Estimator struct {
	Type        string  `json:"type"`
	Aggregator  string  `json:"aggregator"`
	OutlierProb float64 `json:"outlier_prob"`

	side side
}

// RangeEstimator is POT's range_estimator configuration for activations: a
// preset ("default" when empty) and optional overrides of its min and max
// estimators, field by field.
type RangeEstimator struct {
	Preset string     `json:"preset"`
	Min    *Estimator `json:"min"`
	Max    *Estimator `json:"max"`
}

// Resolve returns the min and max estimators of per-tensor activations in
// symmetric or asymmetric mode, from POT's presets:
//
//	preset    mode        min                         max
//	default   asymmetric  min, mean                   max, mean
//	default   symmetric   min, min                    abs_max, mean
//	quantile  asymmetric  quantile(1e-4), mean        quantile(1e-4), mean
//	quantile  symmetric   min, min                    abs_quantile(1e-4), mean
//
// In symmetric mode the min estimator only tells whether the activation is
// non-negative (unsigned quantizer); the scale comes from the max estimator
// alone. Then the non-empty fields of r.Min and r.Max replace the preset's
// (a zero OutlierProb keeps the preset's), and a quantile type without an
// outlier probability gets DefaultOutlierProb. Unknown names are errors that
// list the valid ones.
func (r RangeEstimator) Resolve(symmetric bool) (min, max Estimator, err error) {
	preset := r.Preset
	if preset == "" {
		preset = PresetDefault
	}
	switch {
	case preset == PresetDefault && symmetric:
		min = Estimator{Type: TypeMin, Aggregator: AggMin}
		max = Estimator{Type: TypeAbsMax, Aggregator: AggMean}
	case preset == PresetDefault:
		min = Estimator{Type: TypeMin, Aggregator: AggMean}
		max = Estimator{Type: TypeMax, Aggregator: AggMean}
	case preset == PresetQuantile && symmetric:
		min = Estimator{Type: TypeMin, Aggregator: AggMin}
		max = Estimator{Type: TypeAbsQuantile, Aggregator: AggMean, OutlierProb: DefaultOutlierProb}
	case preset == PresetQuantile:
		min = Estimator{Type: TypeQuantile, Aggregator: AggMean, OutlierProb: DefaultOutlierProb}
		max = Estimator{Type: TypeQuantile, Aggregator: AggMean, OutlierProb: DefaultOutlierProb}
	default:
		return Estimator{}, Estimator{}, fmt.Errorf("range_estimator: %w", unknown("preset", r.Preset, presetNames))
	}
	min, max = min.overlay(r.Min), max.overlay(r.Max)
	min.side, max.side = sideMin, sideMax
	if err := min.check(); err != nil {
		return Estimator{}, Estimator{}, fmt.Errorf("range_estimator: min: %w", err)
	}
	if err := max.check(); err != nil {
		return Estimator{}, Estimator{}, fmt.Errorf("range_estimator: max: %w", err)
	}
	return min, max, nil
}

// overlay returns e with the non-zero fields of o, if any; a quantile type
// left without an outlier probability gets DefaultOutlierProb.
func (e Estimator) overlay(o *Estimator) Estimator {
	if o != nil {
		if o.Type != "" {
			e.Type = o.Type
		}
		if o.Aggregator != "" {
			e.Aggregator = o.Aggregator
		}
		if o.OutlierProb != 0 {
			e.OutlierProb = o.OutlierProb
		}
	}
	if (e.Type == TypeQuantile || e.Type == TypeAbsQuantile) && e.OutlierProb == 0 {
		e.OutlierProb = DefaultOutlierProb
	}
	return e
}

func (e Estimator) check() error {
	if !known(typeNames, e.Type) {
		return unknown("type", e.Type, typeNames)
	}
	if !known(aggregatorNames, e.Aggregator) {
		return unknown("aggregator", e.Aggregator, aggregatorNames)
	}
	if !(e.OutlierProb >= 0 && e.OutlierProb < 0.5) {
		return fmt.Errorf("outlier_prob %g: %w", e.OutlierProb, ErrOutlierProb)
	}
	return nil
}

// StatSpec is the per-sample statistic the engine must collect for e:
//
//	min → min, max → max, abs_max → abs_max,
//	quantile → quantile with Q = outlier_prob (min bound) or 1 - outlier_prob (max bound),
//	abs_quantile → abs_quantile with Q = 1 - outlier_prob,
//
// folded over samples where the aggregator allows it, so that its memory
// does not grow with the number of samples: aggregator mean → Fold sum
// (exact), max → Fold max, min → Fold min. The median and the
// *_no_outliers aggregators need every value: no Fold, one value per
// sample.
//
// It panics on an Estimator that did not come from RangeEstimator.Resolve
// when the answer depends on it (a quantile type), or on an unknown type:
// both are programmer errors, since Resolve validates and records the bound.
func (e Estimator) StatSpec() pipeline.StatSpec {
	s := e.unfolded()
	switch e.Aggregator {
	case AggMean:
		s.Fold = reduce.FoldSum
	case AggMax:
		s.Fold = reduce.FoldMax
	case AggMin:
		s.Fold = reduce.FoldMin
	}
	return s
}

func (e Estimator) unfolded() pipeline.StatSpec {
	switch e.Type {
	case TypeMin:
		return pipeline.StatSpec{Kind: pipeline.StatMin}
	case TypeMax:
		return pipeline.StatSpec{Kind: pipeline.StatMax}
	case TypeAbsMax:
		return pipeline.StatSpec{Kind: pipeline.StatAbsMax}
	case TypeAbsQuantile:
		return pipeline.StatSpec{Kind: pipeline.StatAbsQuantile, Q: 1 - e.OutlierProb}
	case TypeQuantile:
		switch e.side {
		case sideMin:
			return pipeline.StatSpec{Kind: pipeline.StatQuantile, Q: e.OutlierProb}
		case sideMax:
			return pipeline.StatSpec{Kind: pipeline.StatQuantile, Q: 1 - e.OutlierProb}
		}
		panic("qmath: StatSpec of a quantile Estimator not obtained from RangeEstimator.Resolve")
	}
	panic(fmt.Sprintf("qmath: StatSpec of unknown estimator type %q", e.Type))
}

// nonFiniteIndex returns the position of the first NaN or ±Inf in v, or -1.
func nonFiniteIndex(v []float64) int {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return i
		}
	}
	return -1
}
