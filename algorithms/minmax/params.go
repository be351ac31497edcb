package minmax

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/fleetcal/fleetcal/algorithms/qmath"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// Params are POT's MinMaxQuantization parameters (DefaultQuantization
// shares them). Zero values mean POT's defaults.
type Params struct {
	// Preset is "performance" (symmetric weights and activations) or
	// "mixed" (symmetric weights, asymmetric activations).
	Preset string `json:"preset"`
	// StatSubsetSize is how many samples calibrate (default 300; all
	// samples when the data set is smaller).
	StatSubsetSize *int `json:"stat_subset_size"`
	// StatBatchSize is the batch size of the statistics pass (default 1).
	StatBatchSize int `json:"stat_batch_size"`
	// ShuffleData picks the subset at random (with Seed) instead of the
	// first StatSubsetSize samples.
	ShuffleData bool   `json:"shuffle_data"`
	Seed        uint64 `json:"seed"`
	// TargetDevice overrides compression.target_device.
	TargetDevice string `json:"target_device"`
	// ModelType "transformer" keeps elementwise ops in float, as POT does.
	ModelType   string                `json:"model_type"`
	Ignored     Ignored               `json:"ignored"`
	Activations *QuantConfig          `json:"activations"`
	Weights     *QuantConfig          `json:"weights"`
	RangeEst    *qmath.RangeEstimator `json:"range_estimator"`
	// HistogramEstimator replaces the max estimator by one read off a
	// histogram of |x| collected in a second pass (fleetcal extension).
	HistogramEstimator *HistogramEstimator `json:"histogram_estimator"`
	// SaturationFix is POT's saturation_fix: which layers get 7-bit weights
	// (qmath.WeightSpec(true)) so that ONNX Runtime's u8×s8 kernels on x86
	// CPUs without VNNI cannot saturate. One of SaturationFixes; default
	// DefaultSaturationFix.
	//   - "no": 8-bit weights everywhere;
	//   - "first_layer": 7-bit weights for the first weighted layers, the
	//     quantized Conv/Gemm/MatMul nodes with a constant weight that no
	//     other such quantized node precedes on any path from a graph input
	//     (per model of a cascade; a first layer left in float by the
	//     ignored scope passes the role on to the layers it feeds);
	//   - "all": 7-bit weights for every weighted layer.
	// weights.reduced_range is the older spelling: true is "all", false is
	// "no"; setting both to different things is an error.
	SaturationFix string `json:"saturation_fix"`
	// MinMACsPerElement turns on the cost rule (plan.go, costOf): a Conv,
	// MatMul or Gemm doing fewer multiply-adds per activation element it
	// reads or writes stays in float, and an elementwise op stays in float
	// unless every input is written by an INT8 layer. 0 (MinMaxQuantization's
	// default) turns it off; DefaultQuantization's default is
	// DefaultMinMACsPerElement. Higher keeps more layers in float.
	MinMACsPerElement *float64 `json:"min_macs_per_element"`
}

// Saturation fixes (POT's saturation_fix values).
const (
	SaturationFixNo         = "no"
	SaturationFixFirstLayer = "first_layer"
	SaturationFixAll        = "all"
)

// SaturationFixes are the valid saturation_fix values.
var SaturationFixes = []string{SaturationFixAll, SaturationFixFirstLayer, SaturationFixNo}

// DefaultSaturationFix is the saturation_fix used when neither it nor
// weights.reduced_range nor custom weight levels are set. See BENCHMARKS.md
// ("Saturation on CPUs without VNNI") for the measurements behind it.
const DefaultSaturationFix = SaturationFixAll

// HistogramEstimator estimates an activation's magnitude T from the
// histogram of |x| over [0, max |x|) in Bins bins, filled in a second pass
// whose edges the first (min/max) pass fixed:
//   - "percentile": T is the Percentile-th percentile of |x|;
//   - "entropy": T minimizes the KL divergence between the clipped and the
//     8-bit quantized distributions (TensorRT's entropy calibration).
//
// The range is then [-T, T] for signed activations ([0, T] for
// non-negative ones); in asymmetric mode it is the min/max range clipped to
// [-T, T].
type HistogramEstimator struct {
	Type       string  `json:"type"`
	Percentile float64 `json:"percentile"`
	Bins       int     `json:"bins"`
}

// HistogramEstimatorTypes are the valid histogram estimator types.
var HistogramEstimatorTypes = []string{"entropy", "percentile"}

func (h *HistogramEstimator) resolve() (*HistogramEstimator, error) {
	if h == nil {
		return nil, nil
	}
	r := *h
	if !contains(HistogramEstimatorTypes, r.Type) {
		return nil, fmt.Errorf("histogram_estimator.type: unknown type %q; valid: %s", h.Type, strings.Join(HistogramEstimatorTypes, ", "))
	}
	if r.Bins == 0 {
		r.Bins = 2048
	}
	if r.Bins < 128 || r.Bins > 1<<16 {
		return nil, fmt.Errorf("histogram_estimator.bins: %d, want 128 to 65536", r.Bins)
	}
	if r.Type == "percentile" {
		if r.Percentile == 0 {
			r.Percentile = 99.999
		}
		if !(r.Percentile > 0 && r.Percentile <= 100) {
			return nil, fmt.Errorf("histogram_estimator.percentile: %g, want (0, 100]", r.Percentile)
		}
	} else if r.Percentile != 0 {
		return nil, fmt.Errorf("histogram_estimator.percentile: only for type \"percentile\"")
	}
	return &r, nil
}

// QuantConfig is POT's per-kind ("weights" / "activations") quantizer
// config.
type QuantConfig struct {
	Bits           int                   `json:"bits"`
	Mode           string                `json:"mode"`
	Granularity    string                `json:"granularity"`
	LevelLow       *int32                `json:"level_low"`
	LevelHigh      *int32                `json:"level_high"`
	RangeEstimator *qmath.RangeEstimator `json:"range_estimator"`
	// ReducedRange (weights only) quantizes weights to 7 bits so AVX2
	// integer kernels cannot saturate (fleetcal extension): true is
	// saturation_fix "all", false is "no" (see Params.SaturationFix).
	ReducedRange *bool `json:"reduced_range"`
}

// Ignored is POT's ignored section: nodes by name, operations by type.
type Ignored struct {
	Scope      []string        `json:"scope"`
	Operations []IgnoredOpType `json:"operations"`
}

// check refuses an operation type no ONNX operator has (a typo would
// silently ignore nothing), naming it and the closest known type.
func (ig Ignored) check() error {
	for i, o := range ig.Operations {
		if model.IsKnownOpType(o.Type) {
			continue
		}
		hint := ""
		if s := model.SuggestOpType(o.Type); s != "" {
			hint = fmt.Sprintf("; did you mean %q?", s)
		}
		return fmt.Errorf("ignored.operations[%d]: unknown operator type %q (ONNX operator types, case-sensitive, e.g. \"Conv\", \"MatMul\")%s", i, o.Type, hint)
	}
	return nil
}

// IgnoredOpType is {"type": "Add"} (POT's form) or the plain string "Add".
type IgnoredOpType struct {
	Type string `json:"type"`
}

// UnmarshalJSON accepts both forms strictly.
func (o *IgnoredOpType) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		o.Type = s
		return nil
	}
	var v struct {
		Type string `json:"type"`
	}
	if err := pipeline.DecodeStrict(b, &v, "ignored.operations[]"); err != nil {
		return err
	}
	o.Type = v.Type
	return nil
}

// Presets, modes and granularities POT defines for CPU.
var (
	Presets       = []string{"mixed", "performance"}
	Modes         = []string{"asymmetric", "symmetric"}
	Granularities = []string{"perchannel", "pertensor"}
	ModelTypes    = []string{"transformer"}
)

// DefaultStatSubsetSize is POT's default number of calibration samples.
const DefaultStatSubsetSize = 300

// resolved is Params with defaults applied and checked.
type resolved struct {
	subsetSize, batchSize int
	actSymmetric          bool
	perChannelWeights     bool
	// saturationFix is one of SaturationFixes, defaults applied.
	saturationFix  string
	minEst, maxEst qmath.Estimator
	transformer    bool
	hist           *HistogramEstimator
	// minMACs is min_macs_per_element (0: cost rule off).
	minMACs float64
	// weightLevels and actLevels override the 8-bit levels when set.
	weightLevels, actLevels *[2]int32
}

func (p *Params) resolve() (resolved, error) {
	var r resolved
	preset := p.Preset
	if preset == "" {
		preset = "performance"
	}
	if !contains(Presets, preset) {
		return r, fmt.Errorf("preset: unknown preset %q; valid: %s", p.Preset, strings.Join(Presets, ", "))
	}
	r.actSymmetric = preset == "performance"
	r.perChannelWeights = true
	r.subsetSize = DefaultStatSubsetSize
	if p.StatSubsetSize != nil {
		if *p.StatSubsetSize < 1 {
			return r, fmt.Errorf("stat_subset_size: %d, want at least 1", *p.StatSubsetSize)
		}
		r.subsetSize = *p.StatSubsetSize
	}
	r.batchSize = max(p.StatBatchSize, 1)
	if p.StatBatchSize < 0 {
		return r, fmt.Errorf("stat_batch_size: %d, want at least 1", p.StatBatchSize)
	}
	if p.ModelType != "" && !contains(ModelTypes, p.ModelType) {
		return r, fmt.Errorf("model_type: unknown model type %q; valid: %s", p.ModelType, strings.Join(ModelTypes, ", "))
	}
	r.transformer = p.ModelType == "transformer"
	if err := p.Ignored.check(); err != nil {
		return r, err
	}
	if m := p.MinMACsPerElement; m != nil {
		if !(*m >= 0) || math.IsInf(*m, 0) {
			return r, fmt.Errorf("min_macs_per_element: %g, want a finite number, at least 0 (0 turns the cost rule off)", *m)
		}
		r.minMACs = *m
	}
	rangeEst := p.RangeEst
	if a := p.Activations; a != nil {
		if err := a.check("activations"); err != nil {
			return r, err
		}
		if a.Mode != "" {
			r.actSymmetric = a.Mode == "symmetric"
		}
		if a.Granularity == "perchannel" {
			return r, fmt.Errorf("activations.granularity: only \"pertensor\" is supported for activations")
		}
		if a.RangeEstimator != nil {
			rangeEst = a.RangeEstimator
		}
	}
	if w := p.Weights; w != nil {
		if err := w.check("weights"); err != nil {
			return r, err
		}
		if w.Mode == "asymmetric" {
			return r, fmt.Errorf("weights.mode: ONNX Runtime's integer kernels need symmetric weights; use \"symmetric\"")
		}
		if w.Granularity != "" {
			r.perChannelWeights = w.Granularity == "perchannel"
		}
		if w.RangeEstimator != nil {
			return r, fmt.Errorf("weights.range_estimator: weights always use their exact min/max")
		}
	}
	var err error
	// Weights are int8; activations are stored as uint8 (see qmath.ActivationSpec).
	if r.weightLevels, err = p.Weights.levels("weights", -128, 127); err != nil {
		return r, err
	}
	if r.actLevels, err = p.Activations.levels("activations", 0, 255); err != nil {
		return r, err
	}
	if r.saturationFix, err = p.resolveSaturationFix(r.weightLevels != nil); err != nil {
		return r, err
	}
	if r.hist, err = p.HistogramEstimator.resolve(); err != nil {
		return r, err
	}
	if rangeEst == nil {
		rangeEst = &qmath.RangeEstimator{}
	}
	r.minEst, r.maxEst, err = rangeEst.Resolve(r.actSymmetric)
	if err != nil {
		return r, fmt.Errorf("range_estimator: %w", err)
	}
	return r, nil
}

// resolveSaturationFix applies saturation_fix's default and reconciles it
// with weights.reduced_range (true is "all", false is "no") and custom
// weight levels (which apply to every layer, so they mean "no"). An
// explicit value that contradicts either is an error.
func (p *Params) resolveSaturationFix(customLevels bool) (string, error) {
	fix := p.SaturationFix
	if fix != "" && !contains(SaturationFixes, fix) {
		return "", fmt.Errorf("saturation_fix: unknown value %q; valid: %s", fix, strings.Join(SaturationFixes, ", "))
	}
	if w := p.Weights; w != nil && w.ReducedRange != nil {
		implied := SaturationFixNo
		if *w.ReducedRange {
			implied = SaturationFixAll
		}
		if fix != "" && fix != implied {
			return "", fmt.Errorf("weights.reduced_range: %t contradicts saturation_fix %q (reduced_range true is saturation_fix \"all\", false is \"no\"); set only saturation_fix", *w.ReducedRange, fix)
		}
		fix = implied
	}
	if customLevels {
		if fix != "" && fix != SaturationFixNo {
			return "", fmt.Errorf("weights.level_low/level_high: custom weight levels apply to every layer and contradict saturation_fix %q; set saturation_fix \"no\" with them", fix)
		}
		fix = SaturationFixNo
	}
	if fix == "" {
		fix = DefaultSaturationFix
	}
	return fix, nil
}

func (q *QuantConfig) check(where string) error {
	if q.Bits != 0 && q.Bits != 8 {
		return fmt.Errorf("%s.bits: %d; fleetcal writes 8-bit QDQ models", where, q.Bits)
	}
	if q.Mode != "" && !contains(Modes, q.Mode) {
		return fmt.Errorf("%s.mode: unknown mode %q; valid: %s", where, q.Mode, strings.Join(Modes, ", "))
	}
	if q.Granularity != "" && !contains(Granularities, q.Granularity) {
		return fmt.Errorf("%s.granularity: unknown granularity %q; valid: %s", where, q.Granularity, strings.Join(Granularities, ", "))
	}
	if (q.LevelLow == nil) != (q.LevelHigh == nil) {
		return fmt.Errorf("%s: set both level_low and level_high, or neither", where)
	}
	return nil
}

// levels checks custom levels against the storage type's range.
func (q *QuantConfig) levels(where string, lo, hi int32) (*[2]int32, error) {
	if q == nil || q.LevelLow == nil {
		return nil, nil
	}
	l, h := *q.LevelLow, *q.LevelHigh
	if l < lo || h > hi || l >= h || l > 0 || h <= 0 {
		return nil, fmt.Errorf("%s: levels [%d, %d] must hold 0 and lie within [%d, %d]", where, l, h, lo, hi)
	}
	return &[2]int32{l, h}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
