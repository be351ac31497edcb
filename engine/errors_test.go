package engine

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// newEngine returns an engine on a fixture, closed at the end of the test.
func newEngine(t *testing.T, l pipeline.DataLoader, opts Options, models ...string) *Engine {
	t.Helper()
	e, err := New(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if len(models) == 1 {
		if err := e.SetModel(t.Context(), loadModel(t, models[0])); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// TestBadInputs: a bad sample stops Predict before ONNX Runtime sees it,
// with an error naming the sample, its file and the input.
func TestBadInputs(t *testing.T) {
	good := pipeline.Tensor{Shape: []int64{1, 3, 16, 16}, Data: make([]float32, 768)}
	for _, tc := range []struct {
		name   string
		inputs map[string]pipeline.Tensor
		want   string
		is     error
	}{
		{"shape", map[string]pipeline.Tensor{"input": {Shape: []int64{1, 3, 8, 8}, Data: make([]float32, 192)}},
			`sample 3 (calib/003.npy): input "input": shape [1 3 8 8], model wants [1 3 16 16]`, ErrBadInput},
		{"rank", map[string]pipeline.Tensor{"input": {Shape: []int64{3, 16, 16}, Data: make([]float32, 768)}},
			`sample 3 (calib/003.npy): input "input": shape [3 16 16], model wants [1 3 16 16]`, ErrBadInput},
		{"dtype", map[string]pipeline.Tensor{"input": {Shape: []int64{1, 3, 16, 16}, Data: make([]float64, 768)}},
			`sample 3 (calib/003.npy): input "input": dtype float64, model wants float32`, ErrBadInput},
		{"missing", map[string]pipeline.Tensor{"image": good},
			`sample 3 (calib/003.npy): input "input" missing (model inputs: "input")`, ErrBadInput},
		{"extra", map[string]pipeline.Tensor{"input": good, "mask": good},
			`sample 3 (calib/003.npy): input "mask" is not a model input (model inputs: "input")`, ErrBadInput},
		{"length", map[string]pipeline.Tensor{"input": {Shape: []int64{1, 3, 16, 16}, Data: make([]float32, 700)}},
			`sample 3 (calib/003.npy): input "input": bad tensor: shape [1 3 16 16] wants 768 elements, have 700`, pipeline.ErrBadTensor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := randomSamples(8, "input", []int64{1, 3, 16, 16}, 3)
			l.samples[3].Inputs = tc.inputs
			e := newEngine(t, l, Options{Requests: 2}, "convnet_op13.onnx")
			_, err := e.Predict(t.Context(), pipeline.PredictOptions{})
			if err == nil || err.Error() != tc.want || !errors.Is(err, tc.is) {
				t.Fatalf("got error %v\nwant      %s (is %v)", err, tc.want, tc.is)
			}
		})
	}
}

func TestLoaderErrors(t *testing.T) {
	l := randomSamples(4, "input", []int64{1, 3, 16, 16}, 3)
	e := newEngine(t, l, Options{}, "convnet_op13.onnx")
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{Sampler: pipeline.NewBatchSampler(4, 1, []int{0, 7})})
	if !errors.Is(err, pipeline.ErrIndexOutOfRange) || !strings.Contains(err.Error(), "sample 7") {
		t.Errorf("index out of range: %v", err)
	}
	_, err = e.Predict(t.Context(), pipeline.PredictOptions{Sampler: pipeline.NewBatchSampler(4, 1, []int{1, 2, 1})})
	if err == nil || !strings.Contains(err.Error(), "sample 1 visited twice") {
		t.Errorf("duplicate index: %v", err)
	}
}

// TestLayoutNodeNames: a layout may name a node (relu_1 is the Relu
// producing relu_1_out in convnet_op13.onnx, testdata/models/gen_models.py),
// as POT's stats_layout does: its first output's statistics come back
// under the node's name, those asked for by each name, and the tensor's
// own entry only when the layout names the tensor too.
func TestLayoutNodeNames(t *testing.T) {
	l := randomSamples(6, "input", []int64{1, 3, 16, 16}, 3)
	e := newEngine(t, l, Options{}, "convnet_op13.onnx")
	max, mean := pipeline.StatSpec{Kind: pipeline.StatMax}, pipeline.StatSpec{Kind: pipeline.StatMean}
	want, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"relu_1_out": {max, mean}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"relu_1": {max}}})
	if err != nil {
		t.Fatal(err)
	}
	if g, w := got.Stats.Get("relu_1", max.Key()), want.Stats.Get("relu_1_out", max.Key()); g == nil || !slices.Equal(g.Column(0), w.Column(0)) {
		t.Errorf("node relu_1: max %v, want relu_1_out's %v", g, w.Column(0))
	}
	if got.Stats.Get("relu_1_out", max.Key()) != nil || got.Stats.Get("relu_1", mean.Key()) != nil {
		t.Errorf("statistics nobody asked for: %v", got.Stats.Stats)
	}
	both, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"relu_1": {max}, "relu_1_out": {mean}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(both.Stats.Get("relu_1", max.Key()).Column(0), want.Stats.Get("relu_1_out", max.Key()).Column(0)) ||
		!slices.Equal(both.Stats.Get("relu_1_out", mean.Key()).Column(0), want.Stats.Get("relu_1_out", mean.Key()).Column(0)) ||
		both.Stats.Get("relu_1_out", max.Key()) != nil || both.Stats.Get("relu_1", mean.Key()) != nil {
		t.Errorf("node and tensor both named: %v", both.Stats.Stats)
	}
}

func TestUnknownTensor(t *testing.T) {
	l := randomSamples(2, "input", []int64{1, 3, 16, 16}, 3)
	e := newEngine(t, l, Options{}, "convnet_op13.onnx")
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{
		"relu_0_out": {{Kind: pipeline.StatMax}},
		"relu_9_out": {{Kind: pipeline.StatMax}},
	}})
	if !errors.Is(err, ErrUnknownTensor) || !strings.Contains(err.Error(), `tensor "relu_9_out" is not in the model`) {
		t.Errorf("got %v", err)
	}
	// A typo, and a name that is nothing (a node name is a layout key of
	// its own: TestLayoutNodeNames).
	for name, want := range map[string]string{
		"relu_1_otu": `tensor "relu_1_otu" is not in the model; did you mean "relu_1_out"?`,
		"zzz":        `tensor "zzz" is not in the model`,
	} {
		_, err = e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{name: {{Kind: pipeline.StatMax}}}})
		if !errors.Is(err, ErrUnknownTensor) || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("layout %q: got %v, want it to end with %s", name, err, want)
		}
	}
	_, err = e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{
		"relu_0_out": {{Kind: pipeline.StatChannelMax, Axis: 4}},
	}})
	if !errors.Is(err, ErrBadStats) || !strings.Contains(err.Error(), "channel axis 4, tensor has rank 4") {
		t.Errorf("axis beyond rank: %v", err)
	}
}

// TestRejectedModel: a model ONNX Runtime cannot load fails SetModel with
// an error naming the stage and its file.
func TestRejectedModel(t *testing.T) {
	l := randomSamples(1, "x", []int64{1, 4}, 3)
	e := newEngine(t, l, Options{})
	err := e.SetModel(t.Context(), loadModel(t, "bad_domain.onnx"))
	if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), `stage "bad_domain.onnx" (`+fixture("bad_domain.onnx")+`)`) {
		t.Fatalf("got %v", err)
	}
	if _, err := e.Predict(t.Context(), pipeline.PredictOptions{}); !errors.Is(err, ErrNoModel) {
		t.Errorf("predict without model: %v", err)
	}
	if err := e.SetModel(t.Context(), model.NewCompressedModel("empty", false)); !errors.Is(err, ErrBadModel) {
		t.Errorf("empty model: %v", err)
	}
}

// TestNonFinite: NaN and ±Inf in activations are counted per tensor and
// left out of the statistics, identically with every strategy. The inputs
// are finite but huge, so that the first convolution overflows to ±Inf and
// NaN (Inf - Inf) in some places.
func TestNonFinite(t *testing.T) {
	const n = 12
	l := randomSamples(n, "input", []int64{1, 3, 16, 16}, 5)
	for i := 0; i < n; i += 3 { // samples 0, 3, 6, 9
		d := l.samples[i].Inputs["input"].Data.([]float32)
		for k, pos := range []int{5, 6, 300, 301, 767} {
			d[pos] = float32(3e38 * float64(1-2*((i+k)%2)))
		}
	}
	tensors := []string{"input", "conv_0_out", "bn_0_out", "relu_0_out", "maxpool_0_out", "logits"}
	layout := layoutOf(tensors, minMaxSpecs)
	// Reference: every tensor as an output of one session, reduced by a
	// plain loop that skips and counts NaN/±Inf.
	s, err := NewSession(withOutputs(loadProto(t, "convnet_op13.onnx"), tensors...), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ref := map[string]map[string][][]float64{}
	refBad := map[string]uint64{}
	for i, smp := range l.samples {
		outs, err := s.Run(t.Context(), smp.Inputs)
		if err != nil {
			t.Fatal(err)
		}
		outs["input"] = smp.Inputs["input"]
		for _, name := range tensors {
			o := outs[name]
			mn, mx, cmn, cmx, nb := refStats(o.Data.([]float32), o.Shape, 1)
			refBad[name] += nb
			if ref[name] == nil {
				ref[name] = map[string][][]float64{}
			}
			for key, v := range map[string][]float64{
				"min": {mn}, "max": {mx}, "abs_max": {max(math.Abs(mn), math.Abs(mx))},
				"channel_min@1": cmn, "channel_max@1": cmx,
			} {
				if ref[name][key] == nil {
					ref[name][key] = make([][]float64, n)
				}
				ref[name][key][i] = v
			}
		}
	}
	if refBad["input"] != 0 || refBad["conv_0_out"] == 0 || refBad["logits"] == 0 {
		t.Fatalf("reference non-finite counts %v: the test data should overflow", refBad)
	}
	for _, strategy := range []Strategy{StrategyGo, StrategyInGraph} {
		t.Run(strategy.String(), func(t *testing.T) {
			e := newEngine(t, l, Options{Requests: 2, Strategy: strategy, AllowNonFiniteInputs: true}, "convnet_op13.onnx")
			res, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layout})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range tensors {
				if got := res.Stats.NonFinite[name]; got != refBad[name] {
					t.Errorf("%s: %d non-finite values, want %d", name, got, refBad[name])
				}
			}
			compareStats(t, res.Stats, ref)
		})
	}
}

// TestCancel: Predict returns ctx.Err() soon after ctx ends, also in the
// middle of inferences.
func TestCancel(t *testing.T) {
	l := randomSamples(400, "input", []int64{1, 3, 64, 64}, 9)
	e := newEngine(t, l, Options{Requests: 2}, "bench_cnn.onnx")
	for _, s := range []Strategy{StrategyGo, StrategyInGraph} {
		t.Run(s.String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stopped time.Time
			_, err := e.Predict(ctx, pipeline.PredictOptions{
				StatsLayout: pipeline.StatsLayout{"conv_1_out": {{Kind: pipeline.StatMax}}},
				Progress: func(done, total int) {
					if done == 4 {
						stopped = time.Now()
						cancel()
					}
				},
			})
			if err != context.Canceled {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			// 400 samples take seconds; a prompt return takes a few inferences.
			if d := time.Since(stopped); d > time.Second {
				t.Errorf("returned %v after cancellation", d)
			}
		})
	}
	// A deadline that passes during an inference.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Predict(ctx, pipeline.PredictOptions{})
	if err != context.DeadlineExceeded {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("returned after %v", d)
	}
}

// TestInvalidSamples: NaN/Inf in a sample's data is an error naming the
// sample and element, or, with SkipInvalidSamples, the sample is left out
// of the statistics and the metric and listed in Skipped.
func TestInvalidSamples(t *testing.T) {
	l := randomSamples(6, "input", []int64{1, 3, 16, 16}, 21)
	l.samples[2].Inputs["input"].Data.([]float32)[7] = float32(math.Inf(-1))
	l.samples[4].Inputs["input"].Data.([]float32)[0] = float32(math.NaN())
	layout := pipeline.StatsLayout{"conv_0_out": {{Kind: pipeline.StatMax}}}

	e := newEngine(t, l, Options{Requests: 2}, "convnet_op13.onnx")
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layout})
	if !errors.Is(err, pipeline.ErrInvalidSample) || !strings.Contains(err.Error(), `sample 2`) || !strings.Contains(err.Error(), "-Inf at element 7") {
		t.Fatalf("err = %v, want sample 2's -Inf at element 7 named", err)
	}

	skip := newEngine(t, l, Options{Requests: 2, SkipInvalidSamples: true}, "convnet_op13.onnx")
	res, err := skip.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layout, Metric: &countMetric{}, MetricPerSample: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Skipped, []int{2, 4}) || res.Samples != 4 {
		t.Errorf("skipped %v, samples %d; want [2 4] and 4", res.Skipped, res.Samples)
	}
	if got := res.Stats.Get("conv_0_out", "max").Indices(); !slices.Equal(got, []int{0, 1, 3, 5}) {
		t.Errorf("statistics cover samples %v, want [0 1 3 5]", got)
	}
	if res.Metrics["count"] != 4 || len(res.PerSample) != 4 {
		t.Errorf("metric saw %v samples (%d per-sample values), want 4", res.Metrics["count"], len(res.PerSample))
	}
}

// countMetric counts updates.
type countMetric struct{ n float64 }

func (m *countMetric) Value() map[string][]float64  { return map[string][]float64{"count": {1}} }
func (m *countMetric) AvgValue() map[string]float64 { return map[string]float64{"count": m.n} }
func (m *countMetric) HigherBetter() bool           { return true }
func (m *countMetric) Update(map[string]pipeline.Tensor, any) error {
	m.n++
	return nil
}
func (m *countMetric) Reset() { m.n = 0 }
func (m *countMetric) Attributes() map[string]pipeline.MetricAttributes {
	return map[string]pipeline.MetricAttributes{"count": {Direction: "higher-better", Type: "count"}}
}

// TestRejectedModelKinds: every way ONNX Runtime refuses a model (type and
// shape checks, unknown operators and opsets, an invalid graph) is
// ErrBadModel, which fails the same on every machine; other session
// failures are ErrSession.
func TestRejectedModelKinds(t *testing.T) {
	edits := []struct {
		name string
		edit func(p *onnxpb.ModelProto)
		frag string
	}{
		{"type check", func(p *onnxpb.ModelProto) {
			p.Graph.Node = append(p.Graph.Node, model.NewNode("Shape", "s", []string{"input"}, []string{"s"}), model.NewNode("Add", "a", []string{"input", "s"}, []string{"a"}))
			p.Graph.Output = append(p.Graph.Output, model.TensorOutput("a", onnxFloat))
		}, "Type Error"},
		{"unknown operator", func(p *onnxpb.ModelProto) {
			p.Graph.Node = append(p.Graph.Node, model.NewNode("NoSuchOp", "n", []string{"input"}, []string{"n"}))
			p.Graph.Output = append(p.Graph.Output, model.TensorOutput("n", onnxFloat))
		}, "No Op registered for NoSuchOp"},
		{"no kernel", func(p *onnxpb.ModelProto) {
			p.Graph.Node = append(p.Graph.Node,
				model.NewNode("Cast", "c", []string{"input"}, []string{"c"}, model.IntAttr("to", 16)), // bfloat16
				model.NewNode("Relu", "r", []string{"c"}, []string{"r"}))
			p.Graph.Output = append(p.Graph.Output, model.TensorOutput("r", 16))
		}, "Could not find an implementation for Relu"},
		{"future opset", func(p *onnxpb.ModelProto) { p.OpsetImport[0].Version = proto.Int64(99) }, "opset"},
		{"future IR version", func(p *onnxpb.ModelProto) { p.IrVersion = proto.Int64(99) }, "IR version: 99"},
		{"duplicate name", func(p *onnxpb.ModelProto) {
			p.Graph.Node = append(p.Graph.Node, model.NewNode("Relu", "r", []string{"input"}, []string{"relu_0_out"}))
		}, "Duplicate definition of name (relu_0_out)"},
		{"dangling output", func(p *onnxpb.ModelProto) {
			p.Graph.Output = append(p.Graph.Output, model.TensorOutput("nowhere", onnxFloat))
		}, "Graph output (nowhere) does not exist"},
	}
	for _, tc := range edits {
		t.Run(tc.name, func(t *testing.T) {
			p := proto.Clone(loadProto(t, "convnet_op13.onnx")).(*onnxpb.ModelProto)
			tc.edit(p)
			s, err := NewSession(p, 1)
			if err == nil {
				_ = s.Close()
			}
			if !errors.Is(err, ErrBadModel) || errors.Is(err, ErrSession) || !strings.Contains(err.Error(), tc.frag) {
				t.Fatalf("got %v, want ErrBadModel naming %q", err, tc.frag)
			}
		})
	}
	for msg, want := range map[string]bool{
		"Type Error: Type (tensor(float)) of output arg (x) of node (x) does not match expected type (tensor(int64)).":             true,
		"/onnxruntime_src/onnxruntime/core/graph/graph.cc:1555 void f() This is an invalid model. Graph output (y) does not exist": true,
		"Fatal error: com.example.unknown:Frobnicate(-1) is not a registered function/op":                                          true,
		"Failed to allocate memory for requested buffer of size 1073741824":                                                        false,
		"std::bad_alloc": false,
	} {
		if got := rejected(msg); got != want {
			t.Errorf("rejected(%q) = %v, want %v", msg, got, want)
		}
	}
}
