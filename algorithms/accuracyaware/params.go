package accuracyaware

import (
	"fmt"
	"math"
	"strings"

	"github.com/fleetcal/fleetcal/algorithms/defaultq"
	"github.com/fleetcal/fleetcal/algorithms/minmax"
)

// Params are POT's AccuracyAwareQuantization parameters. The embedded
// DefaultQuantization parameters (preset, stat_subset_size, ignored,
// use_fast_bias, ...) configure the base algorithm. Nil pointers mean POT's
// defaults.
type Params struct {
	defaultq.Params
	// MaximalDrop is the largest metric drop accepted, in [0, 1] (default
	// 0.01): absolute in metric units, or relative to the FP32 value.
	MaximalDrop *float64 `json:"maximal_drop"`
	// DropType is "absolute" (default) or "relative".
	DropType string `json:"drop_type"`
	// BaseAlgorithm is the quantizer the search starts from:
	// "DefaultQuantization" (default) or "MinMaxQuantization".
	BaseAlgorithm string `json:"base_algorithm"`
	// RankingSubsetSize is how many samples rank the layers (default 300,
	// at most the data set).
	RankingSubsetSize *int `json:"ranking_subset_size"`
	// MaxIterNum bounds the search steps, each one layer tried in float
	// (default: the number of quantized layers).
	MaxIterNum *int `json:"max_iter_num"`
	// MetricSubsetRatio is the share of the ranking subset taken from the
	// samples the quantized model degrades most, in (0, 1] (default 0.5);
	// the rest is spread evenly over the other samples. See doc.go.
	MetricSubsetRatio *float64 `json:"metric_subset_ratio"`
	// UsePrevIfDropIncrease undoes a step that makes the drop larger
	// (default true).
	UsePrevIfDropIncrease *bool `json:"use_prev_if_drop_increase"`
	// AnnotationFree compares with the FP32 model's outputs (metric
	// output_fidelity) instead of the config's metric and annotations.
	AnnotationFree bool `json:"annotation_free"`
	// TuneHyperparams is not supported; only false is accepted.
	TuneHyperparams bool `json:"tune_hyperparams"`
	// ConvertToMixedPreset retries with the mixed preset when the
	// performance preset misses the drop, before reverting layers.
	ConvertToMixedPreset bool `json:"convert_to_mixed_preset"`
}

// Drop types and base algorithms.
var (
	DropTypes      = []string{"absolute", "relative"}
	BaseAlgorithms = []string{defaultq.Name, minmax.Name}
)

// Defaults of POT.
const (
	DefaultMaximalDrop       = 0.01
	DefaultRankingSubsetSize = 300
	DefaultMetricSubsetRatio = 0.5
)

// resolved is Params with defaults applied and checked.
type resolved struct {
	maximalDrop    float64
	relative       bool
	base           string
	rankingSize    int
	maxIter        int // -1: the number of quantized layers
	subsetRatio    float64
	usePrev        bool
	biasCorrection bool
	toMixed        bool
	presetIsPerf   bool
}

func (p *Params) resolve() (resolved, error) {
	r := resolved{maximalDrop: DefaultMaximalDrop, base: defaultq.Name, rankingSize: DefaultRankingSubsetSize,
		maxIter: -1, subsetRatio: DefaultMetricSubsetRatio, usePrev: true}
	if p.MaximalDrop != nil {
		if d := *p.MaximalDrop; !(d >= 0 && d <= 1) {
			return r, fmt.Errorf("maximal_drop: %g is outside [0, 1]", d)
		}
		r.maximalDrop = *p.MaximalDrop
	}
	switch p.DropType {
	case "", "absolute":
	case "relative":
		r.relative = true
	default:
		return r, fmt.Errorf("drop_type: unknown drop type %q; valid: %s", p.DropType, strings.Join(DropTypes, ", "))
	}
	if p.BaseAlgorithm != "" {
		r.base = p.BaseAlgorithm
	}
	if r.base != defaultq.Name && r.base != minmax.Name {
		return r, fmt.Errorf("base_algorithm: base algorithm %q is not a quantizer; valid: %s", r.base, strings.Join(BaseAlgorithms, ", "))
	}
	r.biasCorrection = r.base == defaultq.Name
	if r.base == minmax.Name && p.UseFastBias != nil && *p.UseFastBias {
		return r, fmt.Errorf("use_fast_bias: applies to base_algorithm %s, not %s", defaultq.Name, minmax.Name)
	}
	if p.RankingSubsetSize != nil {
		if *p.RankingSubsetSize < 1 {
			return r, fmt.Errorf("ranking_subset_size: %d, want at least 1", *p.RankingSubsetSize)
		}
		r.rankingSize = *p.RankingSubsetSize
	}
	if p.MaxIterNum != nil {
		if *p.MaxIterNum < 0 {
			return r, fmt.Errorf("max_iter_num: %d, want at least 0", *p.MaxIterNum)
		}
		r.maxIter = *p.MaxIterNum
	}
	if p.MetricSubsetRatio != nil {
		if v := *p.MetricSubsetRatio; !(v > 0 && v <= 1) || math.IsNaN(v) {
			return r, fmt.Errorf("metric_subset_ratio: %g is outside (0, 1]", v)
		}
		r.subsetRatio = *p.MetricSubsetRatio
	}
	if p.UsePrevIfDropIncrease != nil {
		r.usePrev = *p.UsePrevIfDropIncrease
	}
	if p.TuneHyperparams {
		return r, fmt.Errorf("tune_hyperparams: true is not supported: fleetcal's search only reverts layers to float; set it to false")
	}
	r.presetIsPerf = p.Preset == "" || p.Preset == "performance"
	r.toMixed = p.ConvertToMixedPreset && r.presetIsPerf
	return r, nil
}
