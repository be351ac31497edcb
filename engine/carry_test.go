package engine

import (
	"reflect"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// negatedFirstConv is convnet_dynamic.onnx with its first 4-d weight
// negated: a model of the same inputs and outputs that computes other
// values.
func negatedFirstConv(t *testing.T) *model.CompressedModel {
	t.Helper()
	p := proto.Clone(loadProto(t, "convnet_dynamic.onnx")).(*onnxpb.ModelProto)
	for _, init := range p.GetGraph().GetInitializer() {
		if len(init.GetDims()) != 4 {
			continue
		}
		for i := range init.FloatData {
			init.FloatData[i] = -init.FloatData[i]
		}
		for i := 3; i < len(init.RawData); i += 4 {
			init.RawData[i] ^= 0x80 // little-endian float32 sign bit
		}
		return model.NewCompressedModel("negated", false, &model.Stage{Name: "negated", Proto: p})
	}
	t.Fatal("convnet_dynamic.onnx has no 4-d initializer")
	return nil
}

// TestPredictCarriesModel: a Predict carrying its model runs that model,
// at the same time as Predicts of the engine's model, with the results of
// SetModel and Predict one after the other; the engine's model stays.
func TestPredictCarriesModel(t *testing.T) {
	const n = 24
	l := randomSamples(n, "input", []int64{1, 3, 16, 16}, 5)
	layout := pipeline.StatsLayout{"relu_2_out": {{Kind: pipeline.StatMax}, {Kind: pipeline.StatMean}}}
	base, neg := loadModel(t, "convnet_dynamic.onnx"), negatedFirstConv(t)
	type outcome struct {
		metrics   map[string]float64
		perSample []pipeline.PerSampleMetric
		max, mean []float64
	}
	run := func(e *Engine, m *model.CompressedModel) (outcome, error) {
		res, err := e.Predict(t.Context(), pipeline.PredictOptions{
			Model: m, StatsLayout: layout, Metric: &argmaxMetric{out: "logits"}, MetricPerSample: true,
		})
		if err != nil {
			return outcome{}, err
		}
		return outcome{res.Metrics, res.PerSample,
			res.Stats.Get("relu_2_out", "max").Column(0), res.Stats.Get("relu_2_out", "mean").Column(0)}, nil
	}
	// One after the other, each model set on the engine.
	want := map[string]outcome{}
	for _, m := range []*model.CompressedModel{neg, base} {
		e := newEngine(t, l, Options{Requests: 2})
		if err := e.SetModel(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		o, err := run(e, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[m.Name] = o
	}
	if reflect.DeepEqual(want[base.Name].max, want[neg.Name].max) {
		t.Fatal("the negated model computes the same statistics: the test cannot tell the models apart")
	}
	// At the same time on one engine whose model is base: two calls carry
	// neg, two run the engine's model.
	e := newEngine(t, l, Options{Requests: 2}, "convnet_dynamic.onnx")
	var wg sync.WaitGroup
	for k := range 4 {
		wg.Go(func() {
			var m *model.CompressedModel
			name := base.Name
			if k%2 == 0 {
				m, name = neg, neg.Name
			}
			got, err := run(e, m)
			if err != nil {
				t.Error(err)
				return
			}
			if !reflect.DeepEqual(got, want[name]) {
				t.Errorf("call %d (%s): results differ from SetModel then Predict", k, name)
			}
		})
	}
	wg.Wait()
	if got, err := run(e, nil); err != nil || !reflect.DeepEqual(got, want[base.Name]) {
		t.Errorf("the engine's model changed after calls carrying another (err %v)", err)
	}
	// A carried model ONNX Runtime refuses fails that call, naming it, and
	// leaves the engine's model.
	if _, err := run(e, loadModel(t, "bad_domain.onnx")); err == nil {
		t.Error("a carried model ONNX Runtime refuses: no error")
	}
	if got, err := run(e, nil); err != nil || !reflect.DeepEqual(got, want[base.Name]) {
		t.Errorf("the engine's model changed after a refused carried model (err %v)", err)
	}
}
