package accuracyaware

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/metric"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

func TestMain(m *testing.M) {
	if err := engine.Init(); err != nil {
		fmt.Fprintf(os.Stderr, "accuracyaware tests need ONNX Runtime: %v\nrun scripts/setup.sh from the repository root (or set %s)\n", err, engine.EnvLibrary)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// samples is an in-memory DataLoader.
type samples []pipeline.Sample

func (s samples) Len() int { return len(s) }

func (s samples) Item(_ context.Context, i int) (pipeline.Sample, error) {
	if i < 0 || i >= len(s) {
		return pipeline.Sample{}, fmt.Errorf("%w: %d", pipeline.ErrIndexOutOfRange, i)
	}
	return s[i], nil
}

// mlpData makes n samples for sensitive_mlp.onnx (testdata/gen_sensitive.py):
// x uniform in [-1, 1)^8 whose largest of x[0..3] leads the second by at
// least 0.1, labelled with that index (nil annotations when !labelled).
func mlpData(n int, labelled bool) samples {
	rng := rand.New(rand.NewPCG(11, 12))
	var out samples
	for len(out) < n {
		x := make([]float32, 8)
		for k := range x {
			x[k] = rng.Float32()*2 - 1
		}
		top := slices.Clone(x[:4])
		slices.Sort(top)
		if top[3]-top[2] < 0.1 {
			continue
		}
		s := pipeline.Sample{Inputs: map[string]pipeline.Tensor{"x": {Shape: []int64{1, 8}, Data: x}}}
		if labelled {
			s.Annotation = slices.Index(x[:4], top[3])
		}
		out = append(out, s)
	}
	return out
}

func loadSensitive(t *testing.T) *model.CompressedModel {
	t.Helper()
	m, err := model.Load(model.Config{Name: "sensitive_mlp", Model: "testdata/sensitive_mlp.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newEngine(t *testing.T, data pipeline.DataLoader, requests int) *engine.Engine {
	t.Helper()
	e, err := engine.New(data, engine.Options{Threads: 1, Requests: requests})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func env(e pipeline.Engine, n int, m pipeline.Metric) pipeline.AlgorithmEnv {
	return pipeline.AlgorithmEnv{Engine: e, DataLen: n, Metric: m, Log: slog.New(slog.DiscardHandler)}
}

// run builds AccuracyAwareQuantization from JSON params, as a config does,
// and runs it on m.
func run(t *testing.T, params string, env pipeline.AlgorithmEnv, m *model.CompressedModel) (*model.CompressedModel, Report) {
	t.Helper()
	a, err := pipeline.NewAlgorithm(Name, json.RawMessage(params), env)
	if err != nil {
		t.Fatal(err)
	}
	q, err := a.Run(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	return q, a.(pipeline.Reporter).Report().(Report)
}

func marshal(t *testing.T, m *model.CompressedModel) []byte {
	t.Helper()
	b, err := model.Marshal(m.Models()[0].Proto)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// floatNodes lists the Gemm nodes of m whose input is not dequantized.
func floatNodes(m *model.CompressedModel) []string {
	g := m.Models()[0].Proto.GetGraph()
	dq := map[string]bool{}
	for _, n := range g.GetNode() {
		if n.GetOpType() == "DequantizeLinear" {
			dq[n.GetOutput()[0]] = true
		}
	}
	var out []string
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Gemm" && !dq[n.GetInput()[0]] {
			out = append(out, n.GetName())
		}
	}
	return out
}

// stubEngine is never run: parameter errors come before any inference.
type stubEngine struct{}

func (stubEngine) SetModel(context.Context, *model.CompressedModel) error { return nil }
func (stubEngine) Predict(context.Context, pipeline.PredictOptions) (pipeline.PredictResult, error) {
	return pipeline.PredictResult{}, fmt.Errorf("stub engine")
}

func TestParamErrors(t *testing.T) {
	for _, tc := range []struct{ params, want string }{
		{`{"maximal_drop": 1.5}`, "maximal_drop: 1.5 is outside [0, 1]"},
		{`{"maximal_drop": -0.01}`, "maximal_drop: -0.01 is outside [0, 1]"},
		{`{"drop_type": "percent"}`, `drop_type: unknown drop type "percent"; valid: absolute, relative`},
		{`{"base_algorithm": "FastBiasCorrection"}`, `base algorithm "FastBiasCorrection" is not a quantizer; valid: DefaultQuantization, MinMaxQuantization`},
		{`{"base_algorithm": "AccuracyAwareQuantization"}`, `base algorithm "AccuracyAwareQuantization" is not a quantizer`},
		{`{"base_algorithm": "QuantizeAll"}`, `base algorithm "QuantizeAll" is not a quantizer`},
		{`{"base_algorithm": "MinMaxQuantization", "use_fast_bias": true}`, "use_fast_bias: applies to base_algorithm DefaultQuantization"},
		{`{"tune_hyperparams": true}`, "tune_hyperparams: true is not supported"},
		{`{"ranking_subset_size": 0}`, "ranking_subset_size: 0, want at least 1"},
		{`{"max_iter_num": -1}`, "max_iter_num: -1, want at least 0"},
		{`{"metric_subset_ratio": 0}`, "metric_subset_ratio: 0 is outside (0, 1]"},
		// Strict decoding names the key and lists AA's and the base's keys.
		{`{"maximal_dorp": 0.01}`, `params: unknown key "maximal_dorp"; valid keys: activations, annotation_free, base_algorithm, convert_to_mixed_preset, drop_type, fast_bias_mode, histogram_estimator, ignored, latency_aware, max_iter_num, maximal_drop, metric_subset_ratio, min_layer_speedup, min_macs_per_element, model_type, preset, range_estimator, ranking_subset_size, saturation_fix, seed, shuffle_data, stat_batch_size, stat_subset_size, target_device, tune_hyperparams, use_fast_bias, use_prev_if_drop_increase, weights`},
		// The base algorithm's parameters pass through and are checked.
		{`{"preset": "accuracy"}`, `preset: unknown preset "accuracy"; valid: mixed, performance`},
		{`{"stat_subset_size": 0}`, "stat_subset_size: 0"},
		{`{"maximal_drop": "1%"}`, "params.maximal_drop: want float64"},
	} {
		_, err := pipeline.NewAlgorithm(Name, json.RawMessage(tc.params), env(stubEngine{}, 10, nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("params %s: err = %v, want %q", tc.params, err, tc.want)
		}
	}
	// The accepted POT parameters, all at once.
	ok := `{"maximal_drop": 0, "drop_type": "relative", "base_algorithm": "MinMaxQuantization", "ranking_subset_size": 5,
		"max_iter_num": 0, "metric_subset_ratio": 1, "use_prev_if_drop_increase": false, "annotation_free": true,
		"tune_hyperparams": false, "convert_to_mixed_preset": true, "preset": "performance", "stat_subset_size": 10,
		"ignored": {"scope": ["gemm_4"]}}`
	if _, err := pipeline.NewAlgorithm(Name, json.RawMessage(ok), env(stubEngine{}, 10, nil)); err != nil {
		t.Errorf("valid params: %v", err)
	}
	if _, err := pipeline.NewAlgorithm(Name, json.RawMessage(`{}`), pipeline.AlgorithmEnv{}); err == nil || !strings.Contains(err.Error(), "needs an engine") {
		t.Errorf("no engine: err = %v", err)
	}
}

func TestUnknownMetricName(t *testing.T) {
	// The config's metric reaches AccuracyAwareQuantization through
	// metric.New (app's open); an unknown name lists the valid ones,
	// output_fidelity included.
	_, err := metric.New(json.RawMessage(`{"name": "top1"}`))
	if err == nil || !strings.Contains(err.Error(), `engine.metric: unknown metric "top1"; valid: accuracy, output_fidelity`) {
		t.Errorf("err = %v", err)
	}
}

// TestSensitiveLayerReverted is the main scenario: DefaultQuantization
// loses most of the accuracy on sensitive_mlp (the input of gemm_1 spans
// [0, 1000], testdata/gen_sensitive.py); AccuracyAwareQuantization finds
// gemm_1, keeps only it in float and ends within maximal_drop of FP32. A
// second run with a different number of parallel requests writes the same
// bytes.
func TestSensitiveLayerReverted(t *testing.T) {
	data := mlpData(400, true)
	fm := loadSensitive(t)
	const params = `{"maximal_drop": 0.01}`

	e := newEngine(t, data, 2)
	q, rep := run(t, params, env(e, data.Len(), metric.NewAccuracy(1)), fm)
	t.Logf("fp32 %.4f, default INT8 %.4f (drop %.4f), accuracy-aware %.4f (drop %.4f), reverted %v, ranking %v, %d evaluations",
		rep.FP32, rep.InitialINT8, rep.InitialDrop, rep.Final, rep.FinalDrop, rep.Reverted, rep.Ranking, rep.Evaluations)

	// The labels are the FP32 model's argmax by construction.
	if rep.FP32 != 1 || rep.Metric != "accuracy" || rep.AnnotationFree {
		t.Errorf("FP32 %s = %v (annotation-free %v), want accuracy 1 on annotations", rep.Metric, rep.FP32, rep.AnnotationFree)
	}
	// gen_sensitive.py measures 0.34 with gemm_1's input quantized alone.
	if rep.InitialDrop < 0.3 {
		t.Errorf("DefaultQuantization drop = %v, want the large loss gen_sensitive.py designed", rep.InitialDrop)
	}
	if !rep.Achieved || rep.FinalDrop > 0.01+dropTolerance || rep.Final < rep.FP32-0.01-dropTolerance {
		t.Errorf("final accuracy %v (drop %v), want within 0.01 of %v", rep.Final, rep.FinalDrop, rep.FP32)
	}
	if len(rep.Ranking) != 5 || rep.Ranking[0].Node != "gemm_1" {
		t.Errorf("ranking = %v, want gemm_1 first of 5 layers", rep.Ranking)
	}
	if !slices.Equal(rep.Reverted, []string{"gemm_1"}) || rep.QuantizedLayers != 4 {
		t.Errorf("reverted %v, %d layers still quantized; want [gemm_1] and 4", rep.Reverted, rep.QuantizedLayers)
	}
	if got := floatNodes(q); !slices.Equal(got, []string{"gemm_1"}) {
		t.Errorf("Gemm nodes without quantized input in the model: %v, want [gemm_1]", got)
	}
	// The search ran without bias correction; the result has it.
	if rep.Uncorrected == nil || rep.BiasCorrected == nil || !rep.BiasCorrected.Used {
		t.Errorf("without bias correction %+v, with %+v: want both measured and the corrected one used", rep.Uncorrected, rep.BiasCorrected)
	}
	if rep.Base == nil || rep.Base.BiasName != "FastBiasCorrection" || rep.Base.Bias == nil {
		t.Errorf("base report %v lacks FastBiasCorrection", rep.Base)
	}
	// What was measured is what is returned.
	if err := e.SetModel(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	res, err := e.Predict(t.Context(), pipeline.PredictOptions{Metric: metric.NewAccuracy(1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Metrics["accuracy"]; got != rep.Final {
		t.Errorf("the returned model scores %v, the report says %v", got, rep.Final)
	}

	q2, rep2 := run(t, params, env(newEngine(t, data, 1), data.Len(), metric.NewAccuracy(1)), fm)
	if !bytes.Equal(marshal(t, q), marshal(t, q2)) {
		t.Error("two runs (2 and 1 parallel requests) wrote different models")
	}
	if rep2.Final != rep.Final || !slices.Equal(rep2.Ranking, rep.Ranking) {
		t.Errorf("two runs differ: %v %v / %v %v", rep.Final, rep.Ranking, rep2.Final, rep2.Ranking)
	}
}

// TestAnnotationFree runs on data without annotations and no config
// metric: the FP32 outputs are the reference (output_fidelity, top-1
// agreement since logits are [1,4]).
func TestAnnotationFree(t *testing.T) {
	data := mlpData(200, false)
	e := newEngine(t, data, 2)
	progress := map[string][2]int{}
	en := env(e, data.Len(), nil)
	en.Progress = func(stage string, done, total int) { progress[stage] = [2]int{done, total} }
	q, rep := run(t, `{"maximal_drop": 0.01, "base_algorithm": "MinMaxQuantization", "ranking_subset_size": 100}`,
		en, loadSensitive(t))
	t.Logf("fidelity: initial %.4f, final %.4f, reverted %v, ranking %v", rep.InitialINT8, rep.Final, rep.Reverted, rep.Ranking)
	if !rep.AnnotationFree || rep.Metric != metric.FidelityName || rep.FP32 != 1 {
		t.Errorf("report: metric %q, annotation_free %v, FP32 %v; want output_fidelity, true, 1", rep.Metric, rep.AnnotationFree, rep.FP32)
	}
	if rep.RankingSamples != 100 || rep.InitialDrop < 0.3 || !rep.Achieved || !slices.Equal(rep.Reverted, []string{"gemm_1"}) {
		t.Errorf("ranking samples %d, initial drop %v, achieved %v, reverted %v; want 100, > 0.3, true, [gemm_1]",
			rep.RankingSamples, rep.InitialDrop, rep.Achieved, rep.Reverted)
	}
	if got := floatNodes(q); !slices.Equal(got, []string{"gemm_1"}) {
		t.Errorf("float Gemm nodes: %v, want [gemm_1]", got)
	}
	// Five layers ranked; the first search step reached the drop.
	for stage, want := range map[string][2]int{"ranking": {5, 5}, "accuracy-aware search": {1, 5},
		"accuracy-aware FP32 evaluation": {200, 200}, "calibration statistics": {200, 200}} {
		if got := progress[stage]; got != want {
			t.Errorf("progress %q ended at %v, want %v (all: %v)", stage, got, want, progress)
		}
	}

	// engine.metric {"name": "output_fidelity"} selects the same mode even
	// with annotations; max_iter_num 0 stops before ranking.
	fid, err := metric.New(json.RawMessage(`{"name": "output_fidelity"}`))
	if err != nil {
		t.Fatal(err)
	}
	labelled := mlpData(200, true)
	_, rep = run(t, `{"max_iter_num": 0, "base_algorithm": "MinMaxQuantization"}`, env(newEngine(t, labelled, 2), labelled.Len(), fid), loadSensitive(t))
	if !rep.AnnotationFree || rep.Metric != metric.FidelityName || rep.Ranking != nil || rep.Achieved || len(rep.Reverted) != 0 {
		t.Errorf("config output_fidelity, max_iter_num 0: %+v", rep)
	}
}

// TestMixedPresetAndUndo covers convert_to_mixed_preset (which cannot help
// here: gemm_1's input spans [0, 1000] in either preset) and
// use_prev_if_drop_increase, with a metric that keeps moving as layers go
// back to float.
func TestMixedPresetAndUndo(t *testing.T) {
	data := mlpData(200, true)
	fm := loadSensitive(t)
	e := newEngine(t, data, 2)
	_, rep := run(t, `{"base_algorithm": "MinMaxQuantization", "convert_to_mixed_preset": true}`,
		env(e, data.Len(), metric.NewAccuracy(1)), fm)
	if rep.Mixed == nil || rep.Mixed.Drop < 0.3 || !slices.Equal(rep.Reverted, []string{"gemm_1"}) || !rep.Achieved {
		t.Errorf("mixed try %+v, reverted %v, achieved %v; want a failed mixed try, then [gemm_1]", rep.Mixed, rep.Reverted, rep.Achieved)
	}
	if want := map[bool]string{true: "mixed", false: "performance"}[rep.Mixed != nil && rep.Mixed.Used]; rep.Preset != want {
		t.Errorf("preset %q, want %q (mixed used: %+v)", rep.Preset, want, rep.Mixed)
	}

	x0 := mlpData(200, false)
	for i, s := range x0 {
		x0[i].Annotation = float64(s.Inputs["x"].Float32s()[0])
	}
	// Every layer in float brings the error down, except gemm_0, which the
	// metric penalizes: it ranks last and its step makes the drop larger.
	var penalty bool
	pe := penalizeFloat{Engine: newEngine(t, x0, 2), node: "gemm_0", penalty: &penalty}
	for _, usePrev := range []bool{true, false} {
		params := fmt.Sprintf(`{"base_algorithm": "MinMaxQuantization", "maximal_drop": 0, "use_prev_if_drop_increase": %v}`, usePrev)
		_, rep := run(t, params, env(pe, x0.Len(), &logitError{penalty: &penalty}), fm)
		t.Logf("use_prev %v: fp32 %v, steps %+v", usePrev, rep.FP32, rep.Iterations)
		prev, undone := rep.InitialDrop, 0
		var kept []string
		for _, s := range rep.Iterations {
			if s.Kept != (!usePrev || s.Drop <= prev) {
				t.Errorf("use_prev %v: step %+v after drop %v", usePrev, s, prev)
			}
			if s.Kept {
				prev = s.Drop
				kept = append(kept, s.Node)
			} else {
				undone++
			}
		}
		want := []string{"gemm_1", "gemm_2", "gemm_3", "gemm_4"}
		if !usePrev {
			want = append(want, "gemm_0")
		}
		if !slices.Equal(rep.Reverted, kept) || !slices.Equal(rep.Reverted, want) || rep.Ranking[4].Node != "gemm_0" {
			t.Errorf("use_prev %v: reverted %v, kept steps %v, %d undone; want %v", usePrev, rep.Reverted, kept, undone, want)
		}
	}
}

// logitError is minus the mean |logit 0 - x[0]| (higher better; ~0 for
// FP32, which computes logit 0 = x[0]): a metric that moves with any
// quantization error. The annotation is x[0]. It subtracts 0.05 more
// while *penalty is set.
type logitError struct {
	sum, last float64
	n         int
	penalty   *bool
}

// penalizeFloat sets *penalty when the model set is a quantizer's (it has
// a float Reference) with node in float.
type penalizeFloat struct {
	*engine.Engine
	node    string
	penalty *bool
}

func (p penalizeFloat) SetModel(ctx context.Context, m *model.CompressedModel) error {
	*p.penalty = m.Reference != nil && slices.Contains(floatNodes(m), p.node)
	return p.Engine.SetModel(ctx, m)
}

func (l *logitError) Value() map[string][]float64 {
	return map[string][]float64{"logit_error": {l.last}}
}
func (l *logitError) AvgValue() map[string]float64 {
	return map[string]float64{"logit_error": l.sum / float64(max(l.n, 1))}
}
func (l *logitError) HigherBetter() bool                               { return true }
func (l *logitError) Reset()                                           { *l = logitError{penalty: l.penalty} }
func (l *logitError) Attributes() map[string]pipeline.MetricAttributes { return nil }
func (l *logitError) Update(o map[string]pipeline.Tensor, ann any) error {
	l.last = -math.Abs(float64(o["logits"].Float32s()[0]) - ann.(float64))
	if *l.penalty {
		l.last -= 0.05
	}
	l.sum += l.last
	l.n++
	return nil
}

// TestSkippedSamples: an engine that skips samples holding NaN leaves
// them out of every pass; the FP32 references and per-sample values follow
// the samples actually run.
func TestSkippedSamples(t *testing.T) {
	data := mlpData(120, false)
	for _, i := range []int{3, 50} {
		x := slices.Clone(data[i].Inputs["x"].Float32s())
		x[2] = float32(math.NaN())
		data[i].Inputs = map[string]pipeline.Tensor{"x": {Shape: []int64{1, 8}, Data: x}}
	}
	e, err := engine.New(data, engine.Options{Threads: 1, Requests: 2, SkipInvalidSamples: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, rep := run(t, `{"base_algorithm": "MinMaxQuantization"}`, env(e, data.Len(), nil), loadSensitive(t))
	if rep.Samples != 118 || rep.RankingSamples != 118 || !rep.Achieved || !slices.Equal(rep.Reverted, []string{"gemm_1"}) {
		t.Errorf("samples %d, ranking samples %d, achieved %v, reverted %v; want 118, 118, true, [gemm_1]",
			rep.Samples, rep.RankingSamples, rep.Achieved, rep.Reverted)
	}
}
