package defaultq

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

func images(n int) pipeline.SliceLoader {
	rng := rand.New(rand.NewPCG(1, 2))
	var out pipeline.SliceLoader
	for range n {
		d := make([]float32, 3*16*16)
		for k := range d {
			d[k] = rng.Float32()*2 - 1
		}
		out = append(out, pipeline.Sample{Inputs: map[string]pipeline.Tensor{"input": {Shape: []int64{1, 3, 16, 16}, Data: d}}})
	}
	return out
}

// quantize runs DefaultQuantization on the test convnet, cost rule off
// (its 16×16 layers are all below it; these tests are about latency_aware).
func quantize(t *testing.T, p Params) ([]byte, *model.CompressedModel, *Algorithm) {
	t.Helper()
	off := 0.0
	p.MinMACsPerElement = &off
	data := images(4)
	e, err := engine.New(data, engine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	env := pipeline.AlgorithmEnv{Engine: e, DataLen: data.Len(), Log: slog.New(slog.DiscardHandler), Data: data, Threads: 1}
	fm, err := model.Load(model.Config{Name: "m", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(p, env)
	if err != nil {
		t.Fatal(err)
	}
	q, err := a.Run(t.Context(), fm)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Marshal(q.Models()[0].Proto)
	if err != nil {
		t.Fatal(err)
	}
	return b, q, a
}

// fakeLatency makes every model after the first measure faster (candidate
// wins) or slower (candidate loses) than the one before it, so that the
// test checks the mechanism, not this machine's timings.
func fakeLatency(t *testing.T, candidateWins bool) {
	old := measureLatency
	t.Cleanup(func() { measureLatency = old })
	measureLatency = func(_ context.Context, models [][]byte, _ map[string]pipeline.Tensor, _ engine.LatencyOptions) (*engine.LatencyComparison, error) {
		c := &engine.LatencyComparison{Rounds: 1}
		for i := 1; i < len(models); i++ {
			v := 0.5
			if candidateWins {
				v = float64(i)
			} else if i > 1 {
				v = 0.25
			}
			c.Speedup = append(c.Speedup, engine.LatencyStats{MedianMs: v, P10Ms: v, P90Ms: v})
		}
		return c, nil
	}
}

func TestLatencyAwareOffUnchanged(t *testing.T) {
	plain, _, a := quantize(t, Params{})
	if a.Report().(Report).Latency != nil {
		t.Error("report has LatencyAwarePlacement with latency_aware off")
	}
	// A placement whose candidates never measure faster keeps the model.
	fakeLatency(t, false)
	kept, _, a := quantize(t, Params{LatencyAware: true})
	if !bytes.Equal(plain, kept) {
		t.Error("latency_aware with no faster placement changed the model")
	}
	r := a.Report().(Report).Latency
	if len(r.LeftInFloat) != 0 || r.Measurements < 2 || r.CPU == "" {
		t.Errorf("report = %+v, want nothing left in float after >= 2 measurements", r)
	}
}

func TestLatencyAwareRevertsLayers(t *testing.T) {
	plain, _, _ := quantize(t, Params{})
	fakeLatency(t, true)
	huge := 1e9 // every layer found in both profiles is "not fast enough"
	b, q, a := quantize(t, Params{LatencyAware: true, MinLayerSpeedup: &huge})
	if bytes.Equal(plain, b) {
		t.Fatal("latency_aware reverted nothing")
	}
	r := a.Report().(Report).Latency
	if len(r.LeftInFloat) == 0 || r.SpeedupAfter <= r.SpeedupBefore {
		t.Fatalf("report = %+v", r)
	}
	g := q.Models()[0].Proto.GetGraph()
	producer := map[string]string{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n.GetOpType()
		}
	}
	for _, f := range r.LeftInFloat {
		if f.Reason == "" || f.Node == "" {
			t.Errorf("left_in_float entry %+v lacks node or reason", f)
		}
		for _, n := range g.GetNode() {
			if n.GetName() != f.Node {
				continue
			}
			for _, in := range n.GetInput() {
				if producer[in] == "DequantizeLinear" {
					t.Errorf("%s (left in float) reads %s from a DequantizeLinear", f.Node, in)
				}
			}
		}
	}
}

func TestMinLayerSpeedupNeedsLatencyAware(t *testing.T) {
	v := 1.2
	if _, err := New(Params{MinLayerSpeedup: &v}, pipeline.AlgorithmEnv{}); err == nil || !strings.Contains(err.Error(), "latency_aware") {
		t.Error("min_layer_speedup without latency_aware: no error")
	}
}

// TestAttributeRenamedFP32Kernels: ONNX Runtime runs a float Conv fused
// with the activation after it as one NCHWc kernel named after the
// activation's output ("<HardSigmoid output>_nchwc", paddle2onnx's
// squeeze-excite), and an INT8 layer as "<node>_token_N"; both times are
// the layer's (before, the FP32 side counted 0 and the layer was reverted).
func TestAttributeRenamedFP32Kernels(t *testing.T) {
	node := func(op, name string, in ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: []string{name + "_out"}}
	}
	fp := &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{Node: []*onnxpb.NodeProto{
		node("Conv", "c1", "x", "w1"), node("HardSigmoid", "hs", "c1_out"),
		node("Conv", "c2", "hs_out", "w2"), node("Add", "add", "c2_out", "hs_out"), node("Relu", "relu", "add_out"),
		node("Conv", "c3", "relu_out", "w3"), node("Mul", "mul", "c3_out", "relu_out"),
	}}}
	q := &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{Node: []*onnxpb.NodeProto{
		node("Conv", "c1", "x", "w1"), node("Conv", "c2", "hs_out", "w2"), node("Conv", "c3", "relu_out", "w3"),
	}}}
	fpProf := &engine.KernelProfile{Kernels: []engine.KernelRun{
		{Node: "hs_out_nchwc", Op: "Conv", Micros: 10}, {Node: "relu_out_nchwc", Op: "Conv", Micros: 20},
		{Node: "c3_out_nchwc", Op: "Conv", Micros: 30}, {Node: "ReorderOutput_token_7", Op: "ReorderOutput", Micros: 99},
	}}
	qProf := &engine.KernelProfile{Kernels: []engine.KernelRun{
		{Node: "c1_token_1", Op: "QLinearConv", Micros: 5}, {Node: "c2_token_2", Op: "QLinearConv", Micros: 6},
		{Node: "c3/duplicated", Op: "QLinearConv", Micros: 7},
	}}
	got := attribute(fp, q, []string{"c1", "c2", "c3"}, fpProf, qProf)
	want := []layerCost{{"c1", "Conv", 10, 5}, {"c2", "Conv", 20, 6}, {"c3", "Conv", 30, 7}}
	if !slices.Equal(got, want) {
		t.Errorf("attribute = %+v, want %+v", got, want)
	}
}

// TestCostRuleOnByDefault: DefaultQuantization applies the cost rule unless
// min_macs_per_element is 0: some of the test convnet's layers stay in
// float, and the report says why.
func TestCostRuleOnByDefault(t *testing.T) {
	data := images(4)
	e, err := engine.New(data, engine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	env := pipeline.AlgorithmEnv{Engine: e, DataLen: data.Len(), Log: slog.New(slog.DiscardHandler), Data: data, Threads: 1}
	fm, err := model.Load(model.Config{Name: "m", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Params{}, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Run(t.Context(), fm); err != nil {
		t.Fatal(err)
	}
	r := a.Report().(Report).MinMax
	if r.MinMACsPerElement != minmax.DefaultMinMACsPerElement || len(r.SlowLayers) == 0 {
		t.Errorf("min_macs_per_element %g, %d left in float", r.MinMACsPerElement, len(r.SlowLayers))
	}
	for _, s := range r.SlowLayers {
		if s.Node == "" || s.Reason == "" {
			t.Errorf("left in float without a reason: %+v", s)
		}
	}
}
