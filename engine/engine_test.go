package engine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestMetricOrder: the metric sees samples in index order, and the metric,
// per-sample values and statistics are the same for any number of
// requests and batch size; progress reaches the total.
func TestMetricOrder(t *testing.T) {
	const n = 50
	l := randomSamples(n, "input", []int64{1, 3, 16, 16}, 11)
	layout := pipeline.StatsLayout{"relu_2_out": {{Kind: pipeline.StatMax}, {Kind: pipeline.StatMean}}}
	type outcome struct {
		metrics   map[string]float64
		perSample []pipeline.PerSampleMetric
		order     []int
	}
	var first *outcome
	for _, req := range []int{1, 2, 3} {
		for _, batch := range []int{1, 4} {
			t.Run(fmt.Sprintf("requests%d/batch%d", req, batch), func(t *testing.T) {
				e := newEngine(t, l, Options{Requests: req}, "convnet_dynamic.onnx")
				m := &argmaxMetric{out: "logits"}
				var mu sync.Mutex
				var progress []int
				res, err := e.Predict(t.Context(), pipeline.PredictOptions{
					StatsLayout: layout, Metric: m, MetricPerSample: true,
					Sampler: pipeline.NewBatchSampler(n, batch, nil),
					Progress: func(done, total int) {
						mu.Lock()
						defer mu.Unlock()
						if total != n {
							t.Errorf("progress total %d", total)
						}
						progress = append(progress, done)
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.IsSorted(m.order) || len(m.order) != n {
					t.Errorf("metric updated in order %v", m.order)
				}
				if !slices.IsSorted(progress) || progress[len(progress)-1] != n || len(progress) != (n+batch-1)/batch {
					t.Errorf("progress %v", progress)
				}
				got := &outcome{res.Metrics, res.PerSample, m.order}
				if first == nil {
					first = got
				} else if !reflect.DeepEqual(first, got) {
					t.Errorf("metric results differ:\n%v\n%v", first.metrics, got.metrics)
				}
				if res.Stats.Get("relu_2_out", "mean").Len() != n {
					t.Errorf("statistics of %d samples", res.Stats.Get("relu_2_out", "mean").Len())
				}
			})
		}
	}
}

// TestPostprocess: the hook sees each sample's outputs and metadata
// before the metric.
func TestPostprocess(t *testing.T) {
	l := randomSamples(6, "input", []int64{1, 3, 16, 16}, 12)
	var paths []string
	post := func(outs map[string]pipeline.Tensor, meta map[string]any) (map[string]pipeline.Tensor, error) {
		paths = append(paths, meta["path"].(string))
		if meta["path"] == "calib/004.npy" {
			return nil, errors.New("cannot decode")
		}
		return map[string]pipeline.Tensor{"scores": outs["logits"]}, nil
	}
	e := newEngine(t, l, Options{Postprocess: post, Requests: 2}, "convnet_op13.onnx")
	m := &argmaxMetric{out: "scores"}
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{Metric: m})
	if want := "sample 4 (calib/004.npy): postprocess: cannot decode"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if !slices.Equal(paths, []string{"calib/000.npy", "calib/001.npy", "calib/002.npy", "calib/003.npy", "calib/004.npy"}) {
		t.Errorf("postprocess saw %v", paths)
	}
	if !slices.Equal(m.order, []int{0, 1, 2, 3}) {
		t.Errorf("metric saw %v", m.order)
	}
}

// TestCascade: stage outputs feed the next stage by name; statistics
// come from either stage and equal those of each stage run alone.
func TestCascade(t *testing.T) {
	const n = 10
	l := randomSamples(n, "input", []int64{1, 3, 16, 16}, 13)
	cm := model.NewCompressedModel("cascade", true,
		&model.Stage{Name: "stage1", Proto: loadProto(t, "cascade_stage1.onnx"), Path: fixture("cascade_stage1.onnx")},
		&model.Stage{Name: "stage2", Proto: loadProto(t, "cascade_stage2.onnx"), Path: fixture("cascade_stage2.onnx")},
	)
	e := newEngine(t, l, Options{Requests: 2})
	if err := e.SetModel(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	// conv_0_out exists in both stages: the first stage's is observed.
	tensors := []string{"conv_0_out", "features", "relu_0_out", "logits"}
	m := &recordMetric{}
	res, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layoutOf(tensors, minMaxSpecs), Metric: m})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := NewSession(withOutputs(loadProto(t, "cascade_stage1.onnx"), "conv_0_out"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := NewSession(withOutputs(loadProto(t, "cascade_stage2.onnx"), "relu_0_out"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i, smp := range l.samples {
		o1, err := s1.Run(t.Context(), smp.Inputs)
		if err != nil {
			t.Fatal(err)
		}
		o2, err := s2.Run(t.Context(), map[string]pipeline.Tensor{"features": o1["features"]})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.outputs[i]["logits"], o2["logits"]) || !reflect.DeepEqual(m.outputs[i]["features"], o1["features"]) {
			t.Fatalf("sample %d: cascade outputs differ from the stages run alone", i)
		}
		all := map[string]pipeline.Tensor{"conv_0_out": o1["conv_0_out"], "features": o1["features"], "relu_0_out": o2["relu_0_out"], "logits": o2["logits"]}
		for _, name := range tensors {
			mn, mx, cmn, _, _ := refStats(all[name].Data.([]float32), all[name].Shape, 1)
			_, gotMin := res.Stats.Get(name, "min").At(i)
			_, gotMax := res.Stats.Get(name, "max").At(i)
			_, gotCmn := res.Stats.Get(name, "channel_min@1").At(i)
			if gotMin[0] != mn || gotMax[0] != mx || !slices.Equal(gotCmn, cmn) {
				t.Errorf("sample %d %s: min %v max %v, want %v %v", i, name, gotMin, gotMax, mn, mx)
			}
		}
	}
	// A stage-2 input that stage 1 does not produce must come from the samples.
	bad := model.NewCompressedModel("cascade", true,
		&model.Stage{Name: "stage2", Proto: loadProto(t, "cascade_stage2.onnx")},
	)
	if err := e.SetModel(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	_, err = e.Predict(t.Context(), pipeline.PredictOptions{})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), `input "features" missing`) {
		t.Errorf("got %v", err)
	}
}

// recordMetric keeps every sample's outputs.
type recordMetric struct {
	outputs []map[string]pipeline.Tensor
}

func (m *recordMetric) Value() map[string][]float64 { return nil }
func (m *recordMetric) AvgValue() map[string]float64 {
	return map[string]float64{"n": float64(len(m.outputs))}
}
func (m *recordMetric) HigherBetter() bool { return true }
func (m *recordMetric) Reset()             { m.outputs = nil }
func (m *recordMetric) Attributes() map[string]pipeline.MetricAttributes {
	return nil
}
func (m *recordMetric) Update(outputs map[string]pipeline.Tensor, _ any) error {
	m.outputs = append(m.outputs, outputs)
	return nil
}

// TestTwoInputs: every input is checked; outputs match a Session run.
func TestTwoInputs(t *testing.T) {
	l := randomSamples(3, "a", []int64{1, 4}, 14)
	for i := range l.samples {
		l.samples[i].Inputs["b"] = pipeline.Tensor{Shape: []int64{1, 4}, Data: []float32{1, 2, 3, float32(i)}}
	}
	e := newEngine(t, l, Options{}, "two_inputs.onnx")
	m := &recordMetric{}
	if _, err := e.Predict(t.Context(), pipeline.PredictOptions{Metric: m}); err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(loadProto(t, "two_inputs.onnx"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := fmt.Sprint(s.Inputs(), s.Outputs()); got != "[{a float32 [1 4]} {b float32 [1 4]}] [{y float32 [1 3]}]" {
		t.Errorf("session inputs and outputs: %s", got)
	}
	for i, smp := range l.samples {
		want, err := s.Run(t.Context(), smp.Inputs)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.outputs[i], want) {
			t.Errorf("sample %d: %v, want %v", i, m.outputs[i], want)
		}
	}
	delete(l.samples[1].Inputs, "b")
	_, err = e.Predict(t.Context(), pipeline.PredictOptions{})
	if want := `sample 1 (calib/001.npy): input "b" missing (model inputs: "a", "b")`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if _, err := s.Run(t.Context(), map[string]pipeline.Tensor{"a": l.samples[0].Inputs["a"]}); !errors.Is(err, ErrBadInput) {
		t.Errorf("session run without b: %v", err)
	}
}

// TestMultiRowSamples: a sample may hold several rows; batching keeps its
// rows together and its statistics cover all of them.
func TestMultiRowSamples(t *testing.T) {
	l := randomSamples(6, "input", []int64{2, 3, 16, 16}, 15)
	tensors := []string{"conv_1_out", "relu_1_out", "logits"}
	layout := layoutOf(tensors, minMaxSpecs)
	var sets []string
	for _, batch := range []int{1, 3} {
		for _, s := range []Strategy{StrategyGo, StrategyInGraph} {
			e := newEngine(t, l, Options{Strategy: s}, "convnet_dynamic.onnx")
			res, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layout, Sampler: pipeline.NewBatchSampler(6, batch, nil)})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, name := range tensors {
				for _, key := range []string{"min", "max", "channel_max@1"} {
					ps := res.Stats.Get(name, key)
					for i := range ps.Len() {
						idx, v := ps.At(i)
						fmt.Fprintf(&b, "%s %s %d %v\n", name, key, idx, v)
					}
				}
			}
			sets = append(sets, b.String())
		}
	}
	for i := 1; i < len(sets); i++ {
		if sets[i] != sets[0] {
			t.Fatalf("run %d differs from run 0:\n%s\n%s", i, sets[i], sets[0])
		}
	}
	// The sample's two rows: channel_max@1 of logits is the max over both rows.
	s, err := NewSession(loadProto(t, "convnet_dynamic.onnx"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(t.Context(), l.samples[0].Inputs)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, cmx, _ := refStats(out["logits"].Data.([]float32), out["logits"].Shape, 1)
	if !strings.Contains(sets[0], fmt.Sprintf("logits channel_max@1 0 %v\n", cmx)) {
		t.Errorf("logits channel_max@1 of sample 0 is not %v", cmx)
	}
}

func TestLibraryPath(t *testing.T) {
	t.Setenv(EnvLibrary, "/opt/ort/libonnxruntime.so.1.30.0")
	if got := LibraryPath(); got != "/opt/ort/libonnxruntime.so.1.30.0" {
		t.Errorf("with %s: %s", EnvLibrary, got)
	}
	t.Setenv(EnvLibrary, "")
	want, _ := filepath.Abs(filepath.Join("..", depsLibrary))
	if _, err := os.Stat(want); err == nil {
		if got := LibraryPath(); got != want {
			t.Errorf("from the working directory: %s, want %s", got, want)
		}
	}
	if v := Version(); !strings.HasPrefix(v, "1.") {
		t.Errorf("version %q", v)
	}
}

// TestStatsOnInitializer: a constant can be observed like an activation.
func TestStatsOnInitializer(t *testing.T) {
	l := randomSamples(2, "input", []int64{1, 3, 16, 16}, 16)
	e := newEngine(t, l, Options{}, "convnet_op13.onnx")
	res, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{
		"conv_0.weight": {{Kind: pipeline.StatMax}, {Kind: pipeline.StatChannelMin, Axis: 0}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var w []float32
	for _, init := range loadProto(t, "convnet_op13.onnx").GetGraph().GetInitializer() {
		if init.GetName() == "conv_0.weight" {
			if w, err = model.TensorFloat32(init); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, mx, cmn, _, _ := refStats(w, []int64{8, 3, 3, 3}, 0)
	for i := range 2 {
		_, gotMax := res.Stats.Get("conv_0.weight", "max").At(i)
		_, gotCmn := res.Stats.Get("conv_0.weight", "channel_min@0").At(i)
		if gotMax[0] != mx || !slices.Equal(gotCmn, cmn) {
			t.Errorf("sample %d: max %v channel_min %v, want %v %v", i, gotMax, gotCmn, mx, cmn)
		}
	}
}

// TestInitError: without a loadable library, the tests (and Init) fail
// with a message naming the path tried and the set-up script.
func TestInitError(t *testing.T) {
	if os.Getenv("FLEETCAL_ENGINE_CHILD") == "1" {
		return // TestMain already failed
	}
	cmd := exec.Command(os.Args[0], "-test.run=TestInitError$")
	cmd.Env = append(os.Environ(), "FLEETCAL_ENGINE_CHILD=1", EnvLibrary+"=/nonexistent/libonnxruntime.so.1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child succeeded: %s", out)
	}
	for _, want := range []string{`cannot load ONNX Runtime "/nonexistent/libonnxruntime.so.1"`, "scripts/setup.sh"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
