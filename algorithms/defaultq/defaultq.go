package defaultq

import (
	"context"

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
}

// Algorithm is DefaultQuantization.
type Algorithm struct {
	mm *minmax.Algorithm
	fb *fastbias.Algorithm
}

// New builds the chain.
func New(p Params, env pipeline.AlgorithmEnv) (*Algorithm, error) {
	mm, err := minmax.New(p.Params, env)
	if err != nil {
		return nil, err
	}
	a := &Algorithm{mm: mm}
	if p.UseFastBias == nil || *p.UseFastBias {
		a.fb, err = fastbias.New(fastbias.Params{
			StatSubsetSize: p.StatSubsetSize, StatBatchSize: p.StatBatchSize,
			ShuffleData: p.ShuffleData, Seed: p.Seed, Mode: p.FastBiasMode}, env)
		if err != nil {
			return nil, err
		}
		if !a.fb.Sequential() {
			// The input means come from MinMaxQuantization's pass.
			mm.AddStats(fastbias.Layout)
		}
	}
	return a, nil
}

// Name is "DefaultQuantization".
func (a *Algorithm) Name() string { return Name }

// Run quantizes m, then corrects biases.
func (a *Algorithm) Run(ctx context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	q, err := a.mm.Run(ctx, m)
	if err != nil {
		return nil, err
	}
	if a.fb == nil {
		return q, nil
	}
	return a.fb.RunWithStats(ctx, q, a.mm.Stats())
}

// Report combines the reports of the chain.
func (a *Algorithm) Report() any {
	r := map[string]any{minmax.Name: a.mm.Report()}
	if a.fb != nil {
		r[fastbias.Name] = a.fb.Report()
	}
	return r
}
