package minmax

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// samples is an in-memory DataLoader of random [1,3,16,16] inputs.
type samples []pipeline.Sample

func (s samples) Len() int { return len(s) }

func (s samples) Item(_ context.Context, i int) (pipeline.Sample, error) {
	if i < 0 || i >= len(s) {
		return pipeline.Sample{}, pipeline.ErrIndexOutOfRange
	}
	return s[i], nil
}

func randomImages(n int) samples {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make(samples, n)
	for i := range out {
		d := make([]float32, 3*16*16)
		for k := range d {
			d[k] = rng.Float32()*2 - 1
		}
		out[i] = pipeline.Sample{Inputs: map[string]pipeline.Tensor{"input": {Shape: []int64{1, 3, 16, 16}, Data: d}}}
	}
	return out
}

// countingEngine counts Predict calls.
type countingEngine struct {
	pipeline.Engine
	predicts int
}

func (c *countingEngine) Predict(ctx context.Context, o pipeline.PredictOptions) (pipeline.PredictResult, error) {
	c.predicts++
	return c.Engine.Predict(ctx, o)
}

func marshal(t *testing.T, m *model.CompressedModel) []byte {
	t.Helper()
	b, err := model.Marshal(m.Models()[0].Proto)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequantizeReusesStatistics(t *testing.T) {
	data := randomImages(6)
	e, err := engine.New(data, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	eng := &countingEngine{Engine: e}
	env := pipeline.AlgorithmEnv{Engine: eng, DataLen: data.Len(), Log: slog.New(slog.DiscardHandler)}
	fm, err := model.Load(model.Config{Name: "m", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}

	a, err := New(Params{}, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Requantize(t.Context(), nil); !errors.Is(err, ErrNotRun) {
		t.Fatalf("Requantize before Run: err = %v, want ErrNotRun", err)
	}
	q, err := a.Run(t.Context(), fm)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := a.QuantizedLayers()
	if err != nil {
		t.Fatal(err)
	}
	// The layers of TestPlanConvnet, in topological order.
	if want := []string{"conv_0", "conv_1", "conv_2", "globalaveragepool_0", "gemm_0"}; !slices.Equal(layers, want) {
		t.Errorf("QuantizedLayers = %v, want %v", layers, want)
	}
	runs := eng.predicts

	again, err := a.Requantize(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marshal(t, q), marshal(t, again)) {
		t.Error("Requantize(nil) differs from Run's model")
	}
	kept, err := a.Requantize(t.Context(), []string{"conv_1"})
	if err != nil {
		t.Fatal(err)
	}
	if eng.predicts != runs {
		t.Errorf("Requantize ran %d inference passes, want none", eng.predicts-runs)
	}
	for _, l := range a.Report().(Report).Layers {
		if l.Node == "conv_1" {
			t.Error("the report after Requantize still lists conv_1 as quantized")
		}
	}
	if kept.Reference != q.Reference {
		t.Error("Requantize's model does not carry Run's float reference")
	}

	// The same as a fresh run with conv_1 in the ignored scope.
	b, err := New(Params{Ignored: Ignored{Scope: []string{"conv_1"}}}, env)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := b.Run(t.Context(), fm)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marshal(t, kept), marshal(t, fresh)) {
		t.Error("Requantize([conv_1]) differs from Run with ignored.scope [conv_1]")
	}
}
