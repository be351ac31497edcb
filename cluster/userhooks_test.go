package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/pipeline"
)

// A user's data source type, whose annotations are boxes ([]float32), and
// a user's postprocess, registered as a user's worker binary and
// coordinator both do (package worker).
func init() {
	data.Register("test-boxes", func(ctx context.Context, cfg data.Config, baseDir string, inputs []pipeline.TensorInfo, ann map[string]any) (pipeline.DataLoader, error) {
		cfg.Type = "npy"
		l, err := data.Open(ctx, cfg, nil, baseDir, inputs)
		if err != nil {
			return nil, err
		}
		return boxLoader{l}, nil
	})
	pipeline.RegisterPostprocess("test-argmax", argmaxOutput)
}

type boxLoader struct{ pipeline.DataLoader }

func (l boxLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	s, err := l.DataLoader.Item(ctx, i)
	s.Annotation = []float32{float32(i), 0.5, float32(i) + 1, 1.5}
	s.Metadata = map[string]any{"index": i}
	return s, err
}

// argmaxOutput adds "argmax" (int64) and the sample index from the metadata.
func argmaxOutput(out map[string]pipeline.Tensor, meta map[string]any) (map[string]pipeline.Tensor, error) {
	logits, ok := out["logits"].Data.([]float32)
	if !ok {
		return nil, errors.New("no float logits")
	}
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	idx, _ := meta["index"].(int)
	return map[string]pipeline.Tensor{"logits": out["logits"],
		"argmax": {Shape: []int64{2}, Data: []int64{int64(best), int64(idx)}}}, nil
}

// recordMetric records what it is given, by sample index.
type recordMetric struct {
	mu  sync.Mutex
	got map[int]string
}

func (m *recordMetric) UpdateSample(i int, out map[string]pipeline.Tensor, ann any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.got == nil {
		m.got = map[int]string{}
	}
	m.got[i] = fmt.Sprintf("%T %v | %v", ann, ann, out)
	return nil
}
func (m *recordMetric) Update(map[string]pipeline.Tensor, any) error { return errors.New("unused") }
func (m *recordMetric) Value() map[string][]float64                  { return map[string][]float64{"n": {1}} }
func (m *recordMetric) AvgValue() map[string]float64 {
	return map[string]float64{"n": float64(len(m.got))}
}
func (m *recordMetric) HigherBetter() bool { return true }
func (m *recordMetric) Reset()             { m.got = nil }
func (m *recordMetric) Attributes() map[string]pipeline.MetricAttributes {
	return map[string]pipeline.MetricAttributes{"n": {Direction: "higher-better", Type: "count"}}
}

// TestUserTypesOnFleet: a user's data source with box annotations and a
// user's postprocess, run by the workers, give the metric what the
// in-process engine gives it.
func TestUserTypesOnFleet(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 10, 3)
	m := loadModel(t, "convnet_op13.onnx")
	ws := startWorkers(t, connectAs(t, srv.ClientURL(), srv.WorkerConn()), 2, WorkerOptions{})
	defer ws.stop()

	spec := d.spec()
	spec.DataSource = decodeSource(t, `{"type": "test-boxes", "path": "calib"}`, d.dir)
	spec.Annotations = nil
	spec.Postprocess = "test-argmax"
	e := newEngine(t, nc, spec, EngineOptions{ShardSize: 3})
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got := &recordMetric{}
	if _, err := e.Predict(t.Context(), pipeline.PredictOptions{Metric: got}); err != nil {
		t.Fatal(err)
	}

	l, err := data.Open(t.Context(), data.Config{Type: "test-boxes", Path: "calib"}, nil, d.dir, []pipeline.TensorInfo{{Name: "input", DType: pipeline.Float32, Shape: []int64{1, 3, 16, 16}}})
	if err != nil {
		t.Fatal(err)
	}
	local, err := engine.New(l, engine.Options{Postprocess: argmaxOutput})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if err := local.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	want := &recordMetric{}
	if _, err := local.Predict(t.Context(), pipeline.PredictOptions{Metric: want}); err != nil {
		t.Fatal(err)
	}
	if len(want.got) != d.n || !strings.HasPrefix(want.got[4], "[]float32 [4 0.5 5 1.5] | ") || !strings.Contains(want.got[4], "argmax:") {
		t.Fatalf("in-process metric got %v", want.got)
	}
	if !reflect.DeepEqual(got.got, want.got) {
		t.Errorf("fleet metric got\n%v\nin-process\n%v", got.got, want.got)
	}
}

// TestNewEngineChecksSpec: what a worker would find at the first shard,
// the coordinator finds when the data source is decoded (as a config file
// is loaded) or when NewEngine is called.
func TestNewEngineChecksSpec(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 2, 1)
	for _, tc := range []struct {
		name, ds, ann, post, want string
	}{
		{"missing data", `{"type": "npy", "path": "nowhere"}`, "", "", "data_source: data source nowhere: stat " + d.dir + "/nowhere: no such file or directory"},
		{"missing annotations", `{"path": "calib"}`, "nolabels.json", "", "annotations.path " + d.dir + "/nolabels.json: stat "},
		{"unknown type", `{"type": "nupy", "path": "calib"}`, "", "", `data_source.type: unknown type "nupy" (did you mean "npy"?); valid types: idx, images, npy, test-boxes`},
		{"unknown key", `{"type": "npy", "path": "calib", "paht": 1}`, "", "", `data_source: unknown key "paht"`},
		{"no path", `{"type": "npy"}`, "", "", "data_source.path: empty"},
		{"unknown postprocess", `{"path": "calib"}`, "", "nope", `postprocess: invalid config: unknown postprocess "nope"; valid: test-argmax`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := d.spec()
			spec.Annotations, spec.Postprocess = nil, tc.post
			if tc.ann != "" {
				spec.Annotations = &pipeline.Annotations{Path: filepath.Join(d.dir, tc.ann)}
			}
			src, err := pipeline.DecodeDataSource(json.RawMessage(tc.ds), d.dir)
			if err == nil {
				spec.DataSource = src
				_, err = NewEngine(nc, spec, EngineOptions{Secret: testSecret})
				if !errors.Is(err, ErrBadSpec) {
					t.Fatalf("NewEngine: err = %v, want ErrBadSpec", err)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
