package defaultq

import (
	"context"
	"fmt"

	"github.com/fleetcal/fleetcal/algorithms/fastbias"
	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// Name is the algorithm's POT name.
const Name = "DefaultQuantization"

func init() {
	pipeline.RegisterAlgorithmParams(Name, New)
}

// Params are MinMaxQuantization's plus use_fast_bias (default true).
type Params struct {
	minmax.Params
	UseFastBias *bool `json:"use_fast_bias"`
	// FastBiasMode is FastBiasCorrection's mode ("fast" or "sequential").
	FastBiasMode string `json:"fast_bias_mode"`
	// LatencyAware turns on latency-aware placement (default false): layers
	// that do not run faster in INT8 on this machine's CPU are left in float.
	// Timing decides, so the output is not reproducible byte for byte.
	LatencyAware bool `json:"latency_aware"`
	// MinLayerSpeedup is how much faster (FP32 time / INT8 time, per layer)
	// a layer must be in INT8 to stay INT8 under latency_aware (default 1):
	// above 1 leaves more layers in float, keeping accuracy for a little
	// speed.
	MinLayerSpeedup *float64 `json:"min_layer_speedup"`
}

// Algorithm is DefaultQuantization.
type Algorithm struct {
	mm  *minmax.Algorithm
	fb  *fastbias.Algorithm
	env pipeline.AlgorithmEnv
	// latencyAware and minSpeedup are latency_aware and min_layer_speedup.
	latencyAware bool
	minSpeedup   float64
	lat          *LatencyReport
}

// New builds the chain.
func New(p Params, env pipeline.AlgorithmEnv) (*Algorithm, error) {
	if p.MinLayerSpeedup != nil {
		if !p.LatencyAware {
			return nil, fmt.Errorf("%s: min_layer_speedup needs latency_aware: true", Name)
		}
		if !(*p.MinLayerSpeedup > 0) {
			return nil, fmt.Errorf("%s: min_layer_speedup must be positive, got %g", Name, *p.MinLayerSpeedup)
		}
	}
	if p.MinMACsPerElement == nil {
		d := float64(minmax.DefaultMinMACsPerElement)
		p.MinMACsPerElement = &d
	}
	mm, err := minmax.New(p.Params, env)
	if err != nil {
		return nil, err
	}
	a := &Algorithm{mm: mm, env: env, latencyAware: p.LatencyAware, minSpeedup: 1}
	if p.MinLayerSpeedup != nil {
		a.minSpeedup = *p.MinLayerSpeedup
	}
	if a.fb, err = NewBiasCorrection(p, env); err != nil {
		return nil, err
	}
	if !a.fb.OwnPasses() {
		// The input means of the layers it quantizes come from
		// MinMaxQuantization's pass.
		mm.AddLayerStats(fastbias.LayoutFor)
	}
	return a, nil
}

// NewBiasCorrection is DefaultQuantization's bias correction, as in POT:
// FastBiasCorrection (fast_bias_mode) when use_fast_bias is true (the
// default), BiasCorrection when it is false.
func NewBiasCorrection(p Params, env pipeline.AlgorithmEnv) (*fastbias.Algorithm, error) {
	if p.UseFastBias == nil || *p.UseFastBias {
		return fastbias.New(fastbias.Params{
			StatSubsetSize: p.StatSubsetSize, StatBatchSize: p.StatBatchSize,
			ShuffleData: p.ShuffleData, Seed: p.Seed, Mode: p.FastBiasMode}, env)
	}
	if p.FastBiasMode != "" {
		return nil, fmt.Errorf("%s: fast_bias_mode applies to use_fast_bias: true", Name)
	}
	return fastbias.NewBiasCorrection(fastbias.BiasCorrectionParams{
		StatSubsetSize: p.StatSubsetSize, StatBatchSize: p.StatBatchSize, ShuffleData: p.ShuffleData, Seed: p.Seed}, env)
}

// Name is "DefaultQuantization".
func (a *Algorithm) Name() string { return Name }

// Run quantizes m, then corrects biases.
func (a *Algorithm) Run(ctx context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	q, err := a.mm.Run(ctx, m)
	if err != nil {
		return nil, err
	}
	if a.fb != nil {
		if q, err = a.fb.RunWithStats(ctx, q, a.mm.Stats()); err != nil {
			return nil, err
		}
	}
	if !a.latencyAware {
		return q, nil
	}
	return a.place(ctx, q)
}

// Report combines the reports of the chain.
func (a *Algorithm) Report() any {
	r := ChainReport(a.mm.LastReport(), a.fb)
	r.Latency = a.lat
	return r
}
