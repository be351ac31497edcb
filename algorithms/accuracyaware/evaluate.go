package accuracyaware

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/fleetcal/fleetcal/metric"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// evaluator measures models with one metric: the config's, or output
// fidelity against the FP32 model's outputs (annotation-free). Every
// measurement is one Engine.Predict call, so a cluster engine spreads it
// over its workers.
type evaluator struct {
	env pipeline.AlgorithmEnv
	n   int
	// cfg is the config's metric; nil in annotation-free mode.
	cfg pipeline.Metric
	// output is the output output_fidelity compares ("" for the first).
	output string
	// refs holds the FP32 output of every sample, by sample index.
	refs []pipeline.Tensor

	name         string // the metric value optimized
	higherBetter bool
	calls        int // Predict calls
}

// annotationFree reports whether the evaluator compares with FP32 outputs.
func (e *evaluator) annotationFree() bool { return e.cfg == nil }

// baseline measures the FP32 model on every sample: the metric and its
// per-sample values, or, annotation-free, the reference outputs (the FP32
// model agrees with itself: 1 everywhere).
func (e *evaluator) baseline(ctx context.Context, fp *model.CompressedModel) (float64, []float64, error) {
	const stage = "FP32 evaluation"
	if e.annotationFree() {
		rec := metric.NewRecorder(e.output)
		if _, err := e.predict(ctx, fp, nil, rec, false, stage); err != nil {
			return 0, nil, err
		}
		e.refs = rec.Outputs()
		if len(e.refs) != e.n {
			return 0, nil, fmt.Errorf("%s: recorded %d outputs for %d samples", stage, len(e.refs), e.n)
		}
		e.name, e.higherBetter = metric.FidelityName, true
		ones := make([]float64, e.n)
		for i := range ones {
			ones[i] = 1
		}
		return 1, ones, nil
	}
	res, err := e.predict(ctx, fp, nil, e.cfg, true, stage)
	if err != nil {
		return 0, nil, err
	}
	if len(res.Metrics) == 0 {
		return 0, nil, fmt.Errorf("%s: the metric (%T) returned no value", stage, e.cfg)
	}
	// The first value by name is optimized; its direction comes from the
	// metric's attributes when they give one.
	e.name = slices.Sorted(maps.Keys(res.Metrics))[0]
	e.higherBetter = e.cfg.HigherBetter()
	switch e.cfg.Attributes()[e.name].Direction {
	case "higher-better":
		e.higherBetter = true
	case "higher-worse":
		e.higherBetter = false
	}
	return e.value(res, nil, stage)
}

// eval measures m on the samples idx (sorted; nil for all).
func (e *evaluator) eval(ctx context.Context, m *model.CompressedModel, idx []int, stage string) (float64, []float64, error) {
	met := e.cfg
	if e.annotationFree() {
		refs := e.refs
		if idx != nil {
			refs = make([]pipeline.Tensor, len(idx))
			for k, i := range idx {
				refs[k] = e.refs[i]
			}
		}
		met = metric.NewFidelity(e.output, refs)
	}
	res, err := e.predict(ctx, m, idx, met, true, stage)
	if err != nil {
		return 0, nil, err
	}
	return e.value(res, idx, stage)
}

func (e *evaluator) predict(ctx context.Context, m *model.CompressedModel, idx []int, met pipeline.Metric, perSample bool, stage string) (pipeline.PredictResult, error) {
	if err := e.env.Engine.SetModel(m); err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("%s: %w", stage, err)
	}
	opts := pipeline.PredictOptions{
		Sampler:         pipeline.NewBatchSampler(e.n, 1, idx),
		Metric:          met,
		MetricPerSample: perSample,
	}
	if e.env.Progress != nil && idx == nil {
		opts.Progress = func(done, total int) { e.env.Progress("accuracy-aware "+stage, done, total) }
	}
	e.calls++
	res, err := e.env.Engine.Predict(ctx, opts)
	if err != nil {
		return res, fmt.Errorf("%s: %w", stage, err)
	}
	return res, nil
}

// value picks the optimized metric out of res, refusing NaN and Inf.
func (e *evaluator) value(res pipeline.PredictResult, idx []int, stage string) (float64, []float64, error) {
	v, ok := res.Metrics[e.name]
	if !ok {
		return 0, nil, fmt.Errorf("%s: the metric returned no %q (it returned %v)", stage, e.name, slices.Sorted(maps.Keys(res.Metrics)))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, nil, fmt.Errorf("%s: metric %q is %v", stage, e.name, v)
	}
	want := e.n
	if idx != nil {
		want = len(idx)
	}
	if len(res.PerSample) != want {
		return 0, nil, fmt.Errorf("%s: the engine returned %d per-sample values for %d samples", stage, len(res.PerSample), want)
	}
	ps := make([]float64, want)
	for k, s := range res.PerSample {
		x, ok := s.Values[e.name]
		if !ok {
			x = math.NaN()
		}
		ps[k] = x
	}
	return v, ps, nil
}

// drop is how much worse v is than fp: in metric units, or relative to
// |fp|. Positive is worse.
func drop(fp, v float64, higherBetter, relative bool) float64 {
	d := fp - v
	if !higherBetter {
		d = v - fp
	}
	if relative {
		d /= math.Abs(fp)
	}
	return d
}

// dropTolerance absorbs float rounding in drop ≤ maximal_drop, so that
// 1.0 - 0.99 counts as a drop of 0.01.
const dropTolerance = 1e-9

func within(d, maximal float64) bool { return d <= maximal+dropTolerance }

// rankingSubset picks size samples (sorted indices): the ceil(ratio×size)
// whose per-sample metric degrades most from fp to q (ties: lower index
// first; NaN counts as the worst), and the rest spread evenly, by index,
// over the other samples.
func rankingSubset(fp, q []float64, higherBetter bool, size int, ratio float64) []int {
	n := len(fp)
	size = min(size, n)
	d := make([]float64, n)
	for i := range d {
		d[i] = drop(fp[i], q[i], higherBetter, false)
		if math.IsNaN(d[i]) {
			d[i] = math.Inf(1)
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(d[b], d[a]) })
	hard := min(size, int(math.Ceil(ratio*float64(size))))
	pick := slices.Clone(order[:hard])
	rest := slices.Sorted(slices.Values(order[hard:]))
	if m := size - hard; m > 0 {
		for k := range m {
			pick = append(pick, rest[k*len(rest)/m])
		}
	}
	slices.Sort(pick)
	return pick
}
