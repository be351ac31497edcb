package accuracyaware

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync/atomic"

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
	// all lists the samples every full evaluation visits, ascending: every
	// index but those the engine skipped as invalid in the FP32 pass.
	all []int
	// refs holds the FP32 output of each sample of all, in that order.
	refs []pipeline.Tensor

	name         string // the metric value optimized
	higherBetter bool
	calls        atomic.Int64 // Predict calls
}

// inFlight is how many evaluations may run at once: the engine's
// ConcurrentPredicts when it has that capability and each evaluation can
// have a metric of its own (annotation-free, or a MetricCloner), else 1.
func (e *evaluator) inFlight() int {
	ce, ok := e.env.Engine.(pipeline.ConcurrentEngine)
	if !ok {
		return 1
	}
	if _, cl := e.cfg.(pipeline.MetricCloner); !cl && !e.annotationFree() {
		return 1
	}
	return max(ce.ConcurrentPredicts(), 1)
}

// annotationFree reports whether the evaluator compares with FP32 outputs.
func (e *evaluator) annotationFree() bool { return e.cfg == nil }

// baseline measures the FP32 model on every sample: the metric and its
// per-sample values, or, annotation-free, the reference outputs (the FP32
// model agrees with itself: 1 everywhere). It fixes the samples of later
// full evaluations: those the engine did not skip.
func (e *evaluator) baseline(ctx context.Context, fp *model.CompressedModel) (float64, []float64, error) {
	const stage = "FP32 evaluation"
	e.all = make([]int, e.n)
	for i := range e.all {
		e.all[i] = i
	}
	if e.annotationFree() {
		rec := metric.NewRecorder(e.output)
		res, err := e.predict(ctx, fp, e.all, rec, false, stage)
		if err != nil {
			return 0, nil, err
		}
		e.skip(res.Skipped)
		e.refs = rec.Outputs()
		if len(e.refs) != len(e.all) {
			return 0, nil, fmt.Errorf("%s: recorded %d outputs for %d samples", stage, len(e.refs), len(e.all))
		}
		e.name, e.higherBetter = metric.FidelityName, true
		ones := make([]float64, len(e.all))
		for i := range ones {
			ones[i] = 1
		}
		return 1, ones, nil
	}
	res, err := e.predict(ctx, fp, e.all, e.cfg, true, stage)
	if err != nil {
		return 0, nil, err
	}
	e.skip(res.Skipped)
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
	return e.value(res, e.all, stage)
}

// skip removes the samples the engine skipped from all.
func (e *evaluator) skip(skipped []int) {
	if len(skipped) == 0 {
		return
	}
	e.all = slices.DeleteFunc(e.all, func(i int) bool {
		_, found := slices.BinarySearch(skipped, i)
		return found
	})
	e.env.Log.Warn("accuracy-aware: samples skipped as invalid are left out of every evaluation", "count", len(skipped), "first", skipped[0])
}

// eval measures m on the samples idx (sorted, a subset of all; nil for
// all). The per-sample values follow idx.
func (e *evaluator) eval(ctx context.Context, m *model.CompressedModel, idx []int, stage string) (float64, []float64, error) {
	return e.evalAt(ctx, m, idx, stage, false)
}

// evalConcurrent is eval for calls running at the same time (inFlight > 1):
// the Predict carries m and a metric of its own, the engine's model is
// left as it is.
func (e *evaluator) evalConcurrent(ctx context.Context, m *model.CompressedModel, idx []int, stage string) (float64, []float64, error) {
	return e.evalAt(ctx, m, idx, stage, true)
}

func (e *evaluator) evalAt(ctx context.Context, m *model.CompressedModel, idx []int, stage string, carry bool) (float64, []float64, error) {
	if idx == nil {
		idx = e.all
	}
	met := e.cfg
	if carry && !e.annotationFree() {
		met = e.cfg.(pipeline.MetricCloner).Clone()
	}
	if e.annotationFree() {
		refs := make([]pipeline.Tensor, len(idx))
		for k, i := range idx {
			pos, ok := slices.BinarySearch(e.all, i)
			if !ok {
				return 0, nil, fmt.Errorf("%s: sample %d has no FP32 reference output", stage, i)
			}
			refs[k] = e.refs[pos]
		}
		met = metric.NewFidelity(e.output, refs)
	}
	var res pipeline.PredictResult
	var err error
	if carry {
		res, err = e.run(ctx, pipeline.PredictOptions{Model: m}, idx, met, true, stage)
	} else {
		res, err = e.predict(ctx, m, idx, met, true, stage)
	}
	if err != nil {
		return 0, nil, err
	}
	return e.value(res, idx, stage)
}

// predict makes m the engine's model and measures it.
func (e *evaluator) predict(ctx context.Context, m *model.CompressedModel, idx []int, met pipeline.Metric, perSample bool, stage string) (pipeline.PredictResult, error) {
	if err := e.env.Engine.SetModel(ctx, m); err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("%s: %w", stage, err)
	}
	return e.run(ctx, pipeline.PredictOptions{}, idx, met, perSample, stage)
}

// run is one Predict over idx with met, from opts.
func (e *evaluator) run(ctx context.Context, opts pipeline.PredictOptions, idx []int, met pipeline.Metric, perSample bool, stage string) (pipeline.PredictResult, error) {
	opts.Sampler = pipeline.NewBatchSampler(e.n, 1, idx)
	opts.Metric = met
	opts.MetricPerSample = perSample
	if e.env.Progress != nil && len(idx) == len(e.all) {
		opts.Progress = func(done, total int) { e.env.Progress("accuracy-aware "+stage, done, total) }
	}
	e.calls.Add(1)
	res, err := e.env.Engine.Predict(ctx, opts)
	if err != nil {
		return res, fmt.Errorf("%s: %w", stage, err)
	}
	return res, nil
}

// value picks the optimized metric out of res, refusing NaN and Inf; idx
// are the samples visited.
func (e *evaluator) value(res pipeline.PredictResult, idx []int, stage string) (float64, []float64, error) {
	v, ok := res.Metrics[e.name]
	if !ok {
		return 0, nil, fmt.Errorf("%s: the metric returned no %q (it returned %v)", stage, e.name, slices.Sorted(maps.Keys(res.Metrics)))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, nil, fmt.Errorf("%s: metric %q is %v", stage, e.name, v)
	}
	if len(res.PerSample) != len(idx) {
		return 0, nil, fmt.Errorf("%s: the engine returned %d per-sample values for %d samples", stage, len(res.PerSample), len(idx))
	}
	ps := make([]float64, len(idx))
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

// rankingSubset picks size positions of fp and q (sorted): the ceil(ratio×size)
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
