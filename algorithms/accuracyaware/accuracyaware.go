package accuracyaware

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/fleetcal/fleetcal/algorithms/defaultq"
	"github.com/fleetcal/fleetcal/algorithms/fastbias"
	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/metric"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// Name is the algorithm's POT name.
const Name = "AccuracyAwareQuantization"

func init() {
	pipeline.RegisterAlgorithmParams(Name, New)
}

// Algorithm is AccuracyAwareQuantization: the base quantizer, then layers
// reverted to float, most sensitive first, until the metric drop is at
// most maximal_drop.
type Algorithm struct {
	p      Params
	r      resolved
	env    pipeline.AlgorithmEnv
	report Report
}

// New builds the algorithm from decoded params; the base algorithm's
// parameters are checked here too.
func New(p Params, env pipeline.AlgorithmEnv) (*Algorithm, error) {
	r, err := p.resolve()
	if err != nil {
		return nil, err
	}
	if env.Engine == nil {
		return nil, fmt.Errorf("%s needs an engine", Name)
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	a := &Algorithm{p: p, r: r, env: env}
	if _, err := a.newBase(p.Preset); err != nil {
		return nil, err
	}
	return a, nil
}

// Name is "AccuracyAwareQuantization".
func (a *Algorithm) Name() string { return Name }

// Report is what AccuracyAwareQuantization tells report.json. Metric
// values are the optimized metric's over every sample; drops are in metric
// units, or relative to FP32 with drop_type "relative".
type Report struct {
	BaseAlgorithm string `json:"base_algorithm"`
	Preset        string `json:"preset"`
	// Metric names the metric value optimized; AnnotationFree tells that it
	// is output_fidelity against the FP32 model's outputs, not the config's
	// metric on annotations.
	Metric         string  `json:"metric"`
	AnnotationFree bool    `json:"annotation_free"`
	HigherBetter   bool    `json:"higher_better"`
	DropType       string  `json:"drop_type"`
	MaximalDrop    float64 `json:"maximal_drop"`
	Samples        int     `json:"samples"`

	FP32        float64 `json:"fp32_metric"`
	InitialINT8 float64 `json:"initial_int8_metric"`
	InitialDrop float64 `json:"initial_drop"`
	// Mixed is the try with the mixed preset (convert_to_mixed_preset).
	Mixed *Try `json:"mixed_preset,omitempty"`
	// Uncorrected is the base model without FastBiasCorrection, where the
	// search starts; BiasCorrected is the search's result with it.
	Uncorrected   *Try    `json:"without_bias_correction,omitempty"`
	BiasCorrected *Try    `json:"with_bias_correction,omitempty"`
	Final         float64 `json:"final_metric"`
	// FinalDrop ≤ MaximalDrop when Achieved.
	FinalDrop float64 `json:"final_drop"`
	Achieved  bool    `json:"drop_achieved"`

	RankingSamples int         `json:"ranking_samples,omitempty"`
	Ranking        []RankEntry `json:"ranking,omitempty"`
	Iterations     []Step      `json:"iterations,omitempty"`
	// Reverted lists the layers left in float, in the order reverted.
	Reverted        []string `json:"reverted_layers"`
	QuantizedLayers int      `json:"quantized_layers"`
	// Evaluations counts the Predict calls that measured the metric.
	Evaluations int `json:"evaluations"`
	// Base is the base algorithm's report for the final model.
	Base *defaultq.Report `json:"base,omitempty"`
}

// Try is one more model measured on every sample.
type Try struct {
	Metric float64 `json:"metric"`
	Drop   float64 `json:"drop"`
	// Used tells whether the result is, or continued from, this model: the
	// mixed preset when its drop is not larger than the performance
	// preset's; the bias-corrected model when within maximal_drop or
	// better than the uncorrected one.
	Used bool `json:"used,omitempty"`
}

// RankEntry is a layer's sensitivity: how much the metric on the ranking
// subset recovers (in the better direction) when only that layer is left
// in float.
type RankEntry struct {
	Node        string  `json:"node"`
	Sensitivity float64 `json:"sensitivity"`
}

// Step is one iteration of the search: Node was tried in float along with
// the layers reverted before; Kept is false when the step was undone.
type Step struct {
	Node   string  `json:"node"`
	Metric float64 `json:"metric"`
	Drop   float64 `json:"drop"`
	Kept   bool    `json:"kept"`
}

// Report returns the details of the last Run.
func (a *Algorithm) Report() any { return a.report }

// base is the base quantizer: MinMaxQuantization, then, for
// DefaultQuantization, its bias correction (FastBiasCorrection, or
// BiasCorrection with use_fast_bias false).
type base struct {
	mm     *minmax.Algorithm
	fb     *fastbias.Algorithm
	preset string
}

func (a *Algorithm) newBase(preset string) (*base, error) {
	mp := a.p.Params.Params
	mp.Preset = preset
	mm, err := minmax.New(mp, a.env)
	if err != nil {
		return nil, err
	}
	if preset == "" {
		preset = "performance"
	}
	b := &base{mm: mm, preset: preset}
	if a.r.biasCorrection {
		dp := a.p.Params
		dp.Params = mp
		if b.fb, err = defaultq.NewBiasCorrection(dp, a.env); err != nil {
			return nil, err
		}
		if !b.fb.OwnPasses() {
			// The input means come from MinMaxQuantization's pass, which
			// Requantize reuses too.
			mm.AddStats(fastbias.Layout)
		}
	}
	return b, nil
}

// run quantizes the float model (collecting statistics once).
func (b *base) run(ctx context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	q, err := b.mm.Run(ctx, m)
	if err != nil {
		return nil, err
	}
	return b.correct(ctx, q)
}

func (b *base) correct(ctx context.Context, q *model.CompressedModel) (*model.CompressedModel, error) {
	if b.fb == nil {
		return q, nil
	}
	return b.fb.RunWithStats(ctx, q, b.mm.Stats())
}

// report is the base algorithm's report of its last model, corrected
// or not by FastBiasCorrection.
func (b *base) report(corrected bool) *defaultq.Report {
	fb := b.fb
	if !corrected {
		fb = nil
	}
	r := defaultq.ChainReport(b.mm.LastReport(), fb)
	return &r
}

// Run quantizes m and reverts layers to float until the metric drop is at
// most maximal_drop, or the search ends (then it warns; see revert for
// the model returned).
func (a *Algorithm) Run(ctx context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	n := a.env.DataLen
	if n == 0 {
		return nil, fmt.Errorf("the data set is empty: %s needs samples to evaluate", Name)
	}
	ev := &evaluator{env: a.env, n: n, cfg: a.env.Metric}
	if f, ok := a.env.Metric.(*metric.Fidelity); ok && !f.HasReferences() {
		ev.cfg, ev.output = nil, f.Output // engine.metric output_fidelity: annotation-free
	}
	switch {
	case a.p.AnnotationFree && ev.cfg != nil:
		a.env.Log.Info("annotation_free is set: comparing with the FP32 outputs (output_fidelity), not with the config's metric")
		ev.cfg = nil
	case ev.cfg == nil && !a.p.AnnotationFree:
		a.env.Log.Info("no metric with annotations: comparing with the FP32 outputs (output_fidelity)")
	}
	a.report = Report{BaseAlgorithm: a.r.base, DropType: "absolute", MaximalDrop: a.r.maximalDrop, Samples: n, Reverted: []string{}}
	if a.r.relative {
		a.report.DropType = "relative"
	}
	rep := &a.report
	defer func() { rep.Evaluations = int(ev.calls.Load()) }()

	fpV, fpPS, err := ev.baseline(ctx, m)
	if err != nil {
		return nil, err
	}
	if a.r.relative && fpV == 0 {
		return nil, fmt.Errorf("drop_type relative: the FP32 value of metric %q is 0", ev.name)
	}
	rep.Metric, rep.AnnotationFree, rep.HigherBetter, rep.FP32 = ev.name, ev.annotationFree(), ev.higherBetter, fpV
	rep.Samples = len(ev.all)

	b, err := a.newBase(a.p.Preset)
	if err != nil {
		return nil, err
	}
	q, err := b.run(ctx, m)
	if err != nil {
		return nil, err
	}
	qV, qPS, err := ev.eval(ctx, q, nil, "initial INT8 evaluation")
	if err != nil {
		return nil, err
	}
	rep.Preset, rep.InitialINT8, rep.InitialDrop = b.preset, qV, drop(fpV, qV, ev.higherBetter, a.r.relative)
	cur := state{model: q, value: qV, drop: rep.InitialDrop, base: b.report(true)}
	a.env.Log.Info("accuracy-aware: initial quantization", "metric", ev.name, "fp32", fpV, "int8", qV, "drop", cur.drop)

	if !within(cur.drop, a.r.maximalDrop) && a.r.toMixed {
		mb, err := a.newBase("mixed")
		if err != nil {
			return nil, err
		}
		mq, err := mb.run(ctx, m)
		if err != nil {
			return nil, err
		}
		mV, mPS, err := ev.eval(ctx, mq, nil, "mixed preset INT8 evaluation")
		if err != nil {
			return nil, err
		}
		rep.Mixed = &Try{Metric: mV, Drop: drop(fpV, mV, ev.higherBetter, a.r.relative)}
		if rep.Mixed.Drop <= cur.drop {
			rep.Mixed.Used = true
			b, qPS, rep.Preset = mb, mPS, mb.preset
			cur = state{model: mq, value: mV, drop: rep.Mixed.Drop, base: mb.report(true)}
		}
	}
	if !within(cur.drop, a.r.maximalDrop) {
		if cur, err = a.revert(ctx, b, ev, fpV, fpPS, cur, qPS); err != nil {
			return nil, err
		}
	}

	rep.Final, rep.FinalDrop, rep.Achieved, rep.Base = cur.value, cur.drop, within(cur.drop, a.r.maximalDrop), cur.base
	rep.Reverted = append(rep.Reverted, cur.reverted...)
	if layers, err := b.mm.QuantizedLayers(); err == nil {
		rep.QuantizedLayers = len(layers) - len(cur.reverted)
	}
	if !rep.Achieved {
		a.env.Log.Warn("accuracy-aware: the maximal drop was not achieved",
			"metric", ev.name, "drop", cur.drop, "maximal_drop", a.r.maximalDrop, "reverted", len(cur.reverted))
	}
	return cur.model, nil
}

// state is a measured candidate.
type state struct {
	model    *model.CompressedModel
	value    float64
	drop     float64
	reverted []string
	base     *defaultq.Report // the base algorithm's report of model
}

// revert searches for layers to leave in float, starting from the base
// model initial. The search writes its models without bias correction (a
// FastBiasCorrection run costs a statistics pass per corrected layer); the
// layers it settles on are then written with bias correction and measured
// once more. The result is the first candidate within maximal_drop of:
// that corrected model, the search's model; else the one with the smallest
// drop, initial included (ties: fewer layers in float).
func (a *Algorithm) revert(ctx context.Context, b *base, ev *evaluator, fpV float64, fpPS []float64, initial state, initialPS []float64) (state, error) {
	rep := &a.report
	dropOf := func(v float64) float64 { return drop(fpV, v, ev.higherBetter, a.r.relative) }
	start, startPS := initial, initialPS
	corrected := b.fb != nil
	if corrected {
		q, err := b.mm.Requantize(ctx, nil)
		if err != nil {
			return initial, err
		}
		v, ps, err := ev.eval(ctx, q, nil, "INT8 evaluation without bias correction")
		if err != nil {
			return initial, err
		}
		start, startPS = state{model: q, value: v, drop: dropOf(v), base: b.report(false)}, ps
		rep.Uncorrected = &Try{Metric: v, Drop: start.drop}
	}
	found, err := a.search(ctx, b, ev, fpV, fpPS, start, startPS)
	if err != nil {
		return initial, err
	}
	var cands []state
	if corrected && len(found.reverted) > 0 {
		q, err := b.mm.Requantize(ctx, found.reverted)
		if err != nil {
			return initial, err
		}
		mmReport := b.mm.LastReport()
		if q, err = b.correct(ctx, q); err != nil {
			return initial, err
		}
		v, _, err := ev.eval(ctx, q, nil, "final evaluation with bias correction")
		if err != nil {
			return initial, err
		}
		fin := state{model: q, value: v, drop: dropOf(v), reverted: found.reverted,
			base: ptr(defaultq.ChainReport(mmReport, b.fb))}
		rep.BiasCorrected = &Try{Metric: v, Drop: fin.drop}
		cands = append(cands, fin)
	}
	cands = append(cands, found)
	for i, c := range cands {
		if within(c.drop, a.r.maximalDrop) {
			if i == 0 && rep.BiasCorrected != nil {
				rep.BiasCorrected.Used = true
			}
			return c, nil
		}
	}
	best := initial
	for i, c := range cands {
		if c.drop < best.drop {
			best = c
			if rep.BiasCorrected != nil {
				rep.BiasCorrected.Used = i == 0
			}
		}
	}
	return best, nil
}

// search ranks the quantized layers by sensitivity on a ranking subset,
// then reverts them to float in that order, one per iteration, measuring
// each step on every sample. cur and its per-sample values qPS are the
// base model written without bias correction, as every candidate is.
func (a *Algorithm) search(ctx context.Context, b *base, ev *evaluator, fpV float64, fpPS []float64, cur state, qPS []float64) (state, error) {
	rep := &a.report
	if within(cur.drop, a.r.maximalDrop) {
		return cur, nil
	}
	layers, err := b.mm.QuantizedLayers()
	if err != nil {
		return cur, err
	}
	maxIter := a.r.maxIter
	if maxIter < 0 {
		maxIter = len(layers)
	}
	steps := min(maxIter, len(layers))
	if steps == 0 {
		return cur, nil
	}
	idx := rankingSubset(fpPS, qPS, ev.higherBetter, a.r.rankingSize, a.r.subsetRatio)
	for k, pos := range idx {
		idx[k] = ev.all[pos]
	}
	rep.RankingSamples = len(idx)

	// Each candidate differs from cur, the base model without bias
	// correction, by one layer in float.
	refV, _, err := ev.eval(ctx, cur.model, idx, "ranking")
	if err != nil {
		return cur, err
	}
	better := func(v float64) float64 { // recovery against ref, in the better direction
		if ev.higherBetter {
			return v - refV
		}
		return refV - v
	}
	// The candidates are independent: up to ev.inFlight() of them are
	// measured at once (each Predict carries its model), so a fleet's
	// workers take the next one's shards while the last of one finish. The
	// ranking does not depend on the order they finish in.
	ranking := make([]RankEntry, len(layers))
	eval := ev.eval
	n := ev.inFlight()
	if n > 1 {
		eval = ev.evalConcurrent
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	var progMu sync.Mutex
	done := 0
	for i, name := range layers {
		cand, err := b.mm.Requantize(gctx, []string{name})
		if err != nil {
			if werr := g.Wait(); werr != nil {
				return cur, werr // the first failure, not its cancellation
			}
			return cur, err
		}
		g.Go(func() error {
			v, _, err := eval(gctx, cand, idx, "ranking "+name)
			if err != nil {
				return err
			}
			ranking[i] = RankEntry{Node: name, Sensitivity: better(v)}
			if a.env.Progress != nil {
				progMu.Lock()
				done++
				a.env.Progress("ranking", done, len(layers))
				progMu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return cur, err
	}
	slices.SortStableFunc(ranking, func(x, y RankEntry) int {
		return cmp.Or(cmp.Compare(y.Sensitivity, x.Sensitivity), cmp.Compare(x.Node, y.Node))
	})
	rep.Ranking = ranking

	for it := range steps {
		node := ranking[it].Node
		try := append(slices.Clone(cur.reverted), node)
		cand, err := b.mm.Requantize(ctx, try)
		if err != nil {
			return cur, err
		}
		v, _, err := ev.eval(ctx, cand, nil, "search INT8 evaluation")
		if err != nil {
			return cur, err
		}
		d := drop(fpV, v, ev.higherBetter, a.r.relative)
		step := Step{Node: node, Metric: v, Drop: d, Kept: !(a.r.usePrev && d > cur.drop)}
		rep.Iterations = append(rep.Iterations, step)
		a.env.Log.Info("accuracy-aware: step", "layer", node, "metric", v, "drop", d, "kept", step.Kept)
		if step.Kept {
			cur = state{model: cand, value: v, drop: d, reverted: try, base: b.report(false)}
		}
		if a.env.Progress != nil {
			a.env.Progress("accuracy-aware search", it+1, steps)
		}
		if within(cur.drop, a.r.maximalDrop) {
			break
		}
	}
	return cur, nil
}
