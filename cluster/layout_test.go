package cluster

import (
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

// TestLayoutNodeNames: on the fleet, a layout may name a node as POT's
// does (relu_0 is the Relu producing relu_0_out in convnet_op13.onnx): the
// workers observe its first output and the result, filed under the node's
// name, is the local engine's.
func TestLayoutNodeNames(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 10, 5)
	m := loadModel(t, "convnet_op13.onnx")
	specs := []pipeline.StatSpec{{Kind: pipeline.StatMax}, {Kind: pipeline.StatChannelMin, Axis: 1}}
	opts := pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"relu_0": specs, "input": specs[:1]},
		Sampler: pipeline.NewBatchSampler(d.n, 1, nil)}
	want := reference(t, d, m, opts)
	if want.Stats.Get("relu_0", specs[0].Key()) == nil {
		t.Fatal("the local engine filed nothing under the node name")
	}
	ws := startWorkers(t, connectAs(t, srv.ClientURL(), srv.WorkerConn()), 2, WorkerOptions{})
	defer ws.stop()
	e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 3})
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got, err := e.Predict(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sameStats(t, got, want)
	if got.Stats.Get("relu_0_out", specs[0].Key()) != nil {
		t.Error("the tensor's own entry is there though the layout named only the node")
	}
}
