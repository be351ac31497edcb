package fastbias

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// quantizedConvnet is convnet_op13 quantized by MinMaxQuantization on
// loader, with the engine and env that did it.
func quantizedConvnet(t *testing.T, loader pipeline.SliceLoader) (*model.CompressedModel, *engine.Engine, pipeline.AlgorithmEnv) {
	t.Helper()
	eng, err := engine.New(loader, engine.Options{Requests: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	fp, err := model.Load(model.Config{Name: "net", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	env := pipeline.AlgorithmEnv{Engine: eng, DataLen: loader.Len()}
	mm, err := minmax.New(minmax.Params{}, env)
	if err != nil {
		t.Fatal(err)
	}
	q, err := mm.Run(t.Context(), fp)
	if err != nil {
		t.Fatal(err)
	}
	return q, eng, env
}

// TestBiasCorrection: POT's BiasCorrection, registered under its name,
// makes the first layer's mean output per channel (whose input is the
// same in both models) equal the float one to within half a step of the
// int32 bias grid, shrinks the logits' mean error, and leaves a layer
// whose shift exceeds the threshold as it was.
func TestBiasCorrection(t *testing.T) {
	loader := randomSamples(32)
	q, eng, env := quantizedConvnet(t, loader)
	a, err := pipeline.NewAlgorithm(BiasCorrectionName, json.RawMessage(`{"stat_subset_size": 32, "threshold": 1000}`), env)
	if err != nil {
		t.Fatal(err)
	}
	corrected, err := a.Run(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	rep := a.(pipeline.Reporter).Report().(Report)
	if a.Name() != BiasCorrectionName || len(rep.Layers) != 4 || len(rep.Skipped) != 0 {
		t.Fatalf("%s corrected %d layers, skipped %v; want 4 (3 Conv + 1 Gemm), none", a.Name(), len(rep.Layers), rep.Skipped)
	}
	before, after := logitMeanError(t, eng, q.Reference, q), logitMeanError(t, eng, q.Reference, corrected)
	t.Logf("Σ|mean logit error|: MinMax %.6g, BiasCorrection %.6g", before, after)
	if !(after < before) {
		t.Errorf("BiasCorrection did not reduce the mean logit error: %g, then %g", before, after)
	}

	// The first Conv reads the graph input in both models: its corrected
	// mean output is the float one, per channel, up to the bias grid.
	ts, err := findTargets(corrected.Models()[0].Proto, q.Reference.Models()[0].Proto)
	if err != nil {
		t.Fatal(err)
	}
	first := ts[0]
	spec := pipeline.StatSpec{Kind: pipeline.StatChannelMean, Axis: 1}
	mean := func(m *model.CompressedModel, tensor string) []float64 {
		if err := eng.SetModel(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		res, err := eng.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{tensor: {spec}}})
		if err != nil {
			t.Fatal(err)
		}
		v, err := channelMeans(res.Stats, tensor, spec.Key())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	fm, qm, um := mean(q.Reference, first.fOut), mean(corrected, first.qOut), mean(q, first.qOut)
	worstBefore, worstAfter := 0.0, 0.0
	for c := range fm {
		s := float64(first.scales[min(c, len(first.scales)-1)])
		worstBefore = max(worstBefore, math.Abs(fm[c]-um[c]))
		worstAfter = max(worstAfter, math.Abs(fm[c]-qm[c]))
		if d := math.Abs(fm[c] - qm[c]); d > s/2+1e-5*math.Abs(fm[c])+1e-6 {
			t.Errorf("node %s channel %d: mean output %v after correction, float %v: off by %g, more than half the bias step %g", first.node, c, qm[c], fm[c], d, s)
		}
	}
	t.Logf("node %s: largest channel mean error %.3g before, %.3g after", first.node, worstBefore, worstAfter)

	// A threshold every shift exceeds: no layer changes.
	tiny, err := pipeline.NewAlgorithm(BiasCorrectionName, json.RawMessage(`{"threshold": 1e-12}`), env)
	if err != nil {
		t.Fatal(err)
	}
	same, err := tiny.Run(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if rep := tiny.(pipeline.Reporter).Report().(Report); len(rep.Skipped) != 4 || len(rep.Layers) != 0 {
		t.Errorf("threshold 1e-12: skipped %v, corrected %v; want all 4 skipped", rep.Skipped, rep.Layers)
	}
	b1, _ := model.Marshal(q.Models()[0].Proto)
	b2, _ := model.Marshal(same.Models()[0].Proto)
	if !bytes.Equal(b1, b2) {
		t.Error("threshold 1e-12: the model changed")
	}
}

func TestBiasCorrectionBadInput(t *testing.T) {
	loader := randomSamples(2)
	eng, err := engine.New(loader, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	env := pipeline.AlgorithmEnv{Engine: eng, DataLen: 2}
	for params, want := range map[string]string{
		`{"apply_for_all_nodes": true}`: "apply_for_all_nodes",
		`{"threshold": 0}`:              "threshold",
		`{"threshold": -3}`:             "threshold",
		`{"treshold": 10}`:              `unknown key "treshold"`,
		`{"stat_subset_size": 0}`:       "stat_subset_size",
	} {
		if _, err := pipeline.NewAlgorithm(BiasCorrectionName, json.RawMessage(params), env); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("params %s: err = %v, want one naming %q", params, err, want)
		}
	}
	fp, err := model.Load(model.Config{Name: "net", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := pipeline.NewAlgorithm(BiasCorrectionName, json.RawMessage(`{}`), env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Run(t.Context(), fp); err == nil || !strings.Contains(err.Error(), "put BiasCorrection after MinMaxQuantization") {
		t.Errorf("an unquantized model: err = %v, want advice naming BiasCorrection", err)
	}
}
