package cluster

import (
	"reflect"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestPredictCarriesModel: Predicts that carry their models run at the
// same time on one engine and give, each, what SetModel then Predict on
// the local engine gives; the engine's model stays.
func TestPredictCarriesModel(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 14, 3)
	base := loadModel(t, "convnet_op13.onnx")
	// neg: the same net with its first weight scaled by -1.
	p := proto.Clone(base.Models()[0].Proto).(*onnxpb.ModelProto)
	w := p.GetGraph().GetInitializer()[0]
	vals, err := model.TensorFloat32(w)
	if err != nil {
		t.Fatal(err)
	}
	for i := range vals {
		vals[i] = -vals[i]
	}
	p.GetGraph().GetInitializer()[0] = model.NewTensorFloat32(w.GetName(), w.GetDims(), vals)
	neg := model.NewCompressedModel("neg", false, &model.Stage{Name: "neg", Proto: p})

	opts := func(m *model.CompressedModel) pipeline.PredictOptions {
		return pipeline.PredictOptions{Model: m, StatsLayout: testLayout(), Sampler: pipeline.NewBatchSampler(d.n, 1, subset),
			Metric: newAccuracy(t), MetricPerSample: true}
	}
	want := map[*model.CompressedModel]pipeline.PredictResult{
		base: reference(t, d, base, opts(nil)), neg: reference(t, d, neg, opts(nil)),
	}
	if reflect.DeepEqual(want[base].PerSample, want[neg].PerSample) && want[base].Stats.Get("conv_1_out", "max").Column(0)[0] == want[neg].Stats.Get("conv_1_out", "max").Column(0)[0] {
		t.Fatal("the negated model gives the same results: the test cannot tell them apart")
	}
	ws := startWorkers(t, connectAs(t, srv.ClientURL(), srv.WorkerConn()), 2, WorkerOptions{})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 3})
	if err := e.SetModel(t.Context(), base); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for k := range 4 {
		wg.Go(func() {
			m, carried := base, (*model.CompressedModel)(nil)
			if k%2 == 0 {
				m, carried = neg, neg
			}
			got, err := e.Predict(t.Context(), opts(carried))
			if err != nil {
				t.Error(err)
				return
			}
			sameStats(t, got, want[m])
			if !reflect.DeepEqual(got.PerSample, want[m].PerSample) {
				t.Errorf("call %d (%s): per-sample metrics differ from the local engine's", k, m.Name)
			}
		})
	}
	wg.Wait()
	got, err := e.Predict(t.Context(), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	sameStats(t, got, want[base])
	if e.ConcurrentPredicts() < 2 {
		t.Errorf("ConcurrentPredicts %d: the fleet engine should take calls at once", e.ConcurrentPredicts())
	}
}
