package pipeline_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/data" // registers the built-in data source types
	_ "github.com/fleetcal/fleetcal/metric"
	"github.com/fleetcal/fleetcal/pipeline"
)

const goodConfig = `{
  "model":  {"model_name": "net", "model": "net.onnx"},
  "engine": {"type": "onnxruntime", "data_source": {"type": "npy", "path": "calib/"},
             "metric": {"name": "accuracy", "top_k": 1}, "threads": 1, "requests": 2},
  "compression": {"target_device": "CPU",
                  "algorithms": [{"name": "DefaultQuantization", "params": {"preset": "performance"}}]}
}`

func TestParseConfig(t *testing.T) {
	cfg, err := pipeline.ParseConfig([]byte(goodConfig), ".json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Model.Name != "net" || cfg.Engine.Requests != 2 || len(cfg.Compression.Algorithms) != 1 {
		t.Fatalf("decoded %+v", cfg)
	}
	if got := string(cfg.Compression.Algorithms[0].Params); !strings.Contains(got, "performance") {
		t.Fatalf("params kept raw = %s", got)
	}
	if want := (data.Config{Type: "npy", Path: "calib/"}); !reflect.DeepEqual(cfg.Engine.DataSource, want) {
		t.Fatalf("data_source = %#v, want %#v", cfg.Engine.DataSource, want)
	}
	if cfg.Engine.Metric == nil || cfg.Engine.Metric.MetricName() != "accuracy" {
		t.Fatalf("metric = %#v, want accuracy", cfg.Engine.Metric)
	}
	m, err := cfg.Engine.Metric.New()
	if err != nil {
		t.Fatal(err)
	}
	if got := m.AvgValue(); len(got) != 1 || got["accuracy"] != 0 {
		t.Fatalf("new metric's AvgValue = %v, want {accuracy: 0}", got)
	}
}

// TestMetricDecodedAtLoad: engine.metric is checked when the config is
// loaded, with errors naming the key.
func TestMetricDecodedAtLoad(t *testing.T) {
	for _, tc := range []struct{ metric, want string }{
		{`{"name": "acuracy"}`, `engine.metric: unknown metric "acuracy"; valid: accuracy, output_fidelity`},
		{`{"name": "accuracy", "topk": 5}`, `engine.metric: unknown key "topk"; valid keys: name, output, top_k`},
		{`{"name": "accuracy", "top_k": 0}`, `top_k must be at least 1, got 0`},
	} {
		_, err := pipeline.ParseConfig([]byte(`{"model": {"model": "a.onnx"}, "engine": {"metric": `+tc.metric+`}}`), ".json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("metric %s: err = %v, want %q", tc.metric, err, tc.want)
		}
	}
}

// writeConfig writes a config and a folder calib/ of one .npy file beside
// it (the type of POT's string form is guessed from the files).
func writeConfig(t *testing.T, name, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "calib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "calib", "000.npy"), []byte("not read when decoding"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadConfigYAML: POT's plain string form gets its type from the files
// and its paths resolved against the config's folder, once, at load.
func TestLoadConfigYAML(t *testing.T) {
	path := writeConfig(t, "c.yaml", `
model: {model_name: net, model: net.onnx}
engine:
  data_source: calib/
  annotations: labels.json
compression:
  algorithms:
    - name: DefaultQuantization
      params: {preset: mixed, stat_subset_size: 10}
`)
	cfg, err := pipeline.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	if want := (data.Config{Type: "npy", Path: "calib/", BaseDir: dir}); !reflect.DeepEqual(cfg.Engine.DataSource, want) {
		t.Fatalf("data_source = %#v, want %#v", cfg.Engine.DataSource, want)
	}
	if want := filepath.Join(dir, "labels.json"); cfg.Engine.Annotations == nil || cfg.Engine.Annotations.Path != want {
		t.Fatalf("annotations = %+v, want path %s", cfg.Engine.Annotations, want)
	}
}

func TestLoadConfigResolvesAgainstItsFolder(t *testing.T) {
	path := writeConfig(t, "c.json", goodConfig)
	dir := filepath.Dir(path)
	cfg, err := pipeline.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Model.Model; got != filepath.Join(dir, "net.onnx") {
		t.Fatalf("model.model = %s, want it resolved against %s", got, dir)
	}
	files, err := cfg.Engine.DataSource.Files()
	if err != nil {
		t.Fatal(err)
	}
	if want := []pipeline.DataFile{{Path: filepath.Join(dir, "calib", "000.npy"), Ship: "data/000.npy"}}; !reflect.DeepEqual(files, want) {
		t.Fatalf("Files() = %v, want %v", files, want)
	}
	if _, err := pipeline.LoadConfig(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing file: err = %v", err)
	}
}

// TestDecodeDataSourceErrors: a bad data_source is an error at load that
// names the key (and its section), the type's valid keys or the valid types.
func TestDecodeDataSourceErrors(t *testing.T) {
	for _, tc := range []struct {
		name, engine, want string
		is                 error
	}{
		{"unknown key", `{"data_source": {"type": "npy", "path": "calib", "paht": "x"}}`,
			`engine: data_source: unknown key "paht"; valid keys: base_dir, channel_order, dtype,`, pipeline.ErrBadDataConfig},
		{"unknown type with suggestion", `{"data_source": {"type": "imgaes", "path": "calib"}}`,
			`engine: data_source.type: unknown type "imgaes" (did you mean "images"?); valid types: idx, images, npy`, pipeline.ErrUnknownDataSource},
		{"unknown type far from any", `{"data_source": {"type": "parquet", "path": "calib"}}`,
			`engine: data_source.type: unknown type "parquet"; valid types: idx, images, npy`, pipeline.ErrUnknownDataSource},
		{"no path", `{"data_source": {"type": "npy"}}`, `engine: data_source.path: empty`, pipeline.ErrBadDataConfig},
		{"bad option", `{"data_source": {"type": "images", "path": "calib", "layout": "CHWN"}}`,
			`engine: data_source.layout: "CHWN"; valid: NCHW, NHWC`, pipeline.ErrBadDataConfig},
		{"type not a string", `{"data_source": {"type": 3, "path": "calib"}}`, `engine: data_source.type: want a string, got 3`, pipeline.ErrBadDataConfig},
		{"untyped, missing folder", `{"data_source": "nowhere"}`, `engine: data source nowhere: stat `, os.ErrNotExist},
		{"annotations key", `{"data_source": "calib", "annotations": {"file": "x.json"}}`, `engine.annotations: unknown key "file"; valid keys: path`, pipeline.ErrBadDataConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "c.json", `{"model": {"model": "a.onnx"}, "engine": `+tc.engine+`}`)
			_, err := pipeline.LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.is) {
				t.Fatalf("err = %v\nwant one wrapping %v with %q", err, tc.is, tc.want)
			}
		})
	}
}

// TestCascadeStageDataSource: a stage's own data_source is decoded and
// resolved like the engine's, under the stage's name; its errors name the
// stage's index.
func TestCascadeStageDataSource(t *testing.T) {
	path := writeConfig(t, "c.json", `{"model": {"cascade": [{"name": "det", "model": "d.onnx"},
		{"name": "head", "model": "h.onnx", "data_source": {"type": "npy", "path": "calib", "base_dir": "sub"}}]},
		"engine": {"data_source": "calib"}}`)
	dir := filepath.Dir(path)
	cfg, err := pipeline.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]pipeline.DataSource{"head": data.Config{Type: "npy", Path: "calib", BaseDir: filepath.Join(dir, "sub")}}
	if !reflect.DeepEqual(cfg.StageData, want) {
		t.Fatalf("stage data = %#v, want %#v", cfg.StageData, want)
	}
	if got := cfg.Model.Cascade[1].Model; got != filepath.Join(dir, "h.onnx") {
		t.Fatalf("stage model = %s, want it resolved", got)
	}
	path = writeConfig(t, "c.json", `{"model": {"cascade": [{"name": "det", "model": "d.onnx", "data_source": {"type": "npz", "path": "x"}}]}}`)
	if _, err := pipeline.LoadConfig(path); err == nil || !strings.Contains(err.Error(), `model.cascade[0]: data_source.type: unknown type "npz" (did you mean "npy"?)`) {
		t.Fatalf("err = %v", err)
	}
}

// TestDataSourceRebase: a data source sent as its type name and JSON and
// rebased (as shipped data is on a worker) reads the files of Files under
// the new folder, by their ship names, and still names them as written.
func TestDataSourceRebase(t *testing.T) {
	for _, tc := range []struct {
		name, path, wantPath string
	}{
		{"folder", "calib", "data"},
		{"file", "calib/000.npy", "data/000.npy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "c.json", `{"model": {"model": "a.onnx"}, "engine": {"data_source": {"type": "npy", "path": "`+tc.path+`"}}}`)
			cfg, err := pipeline.LoadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			src := cfg.Engine.DataSource
			files, err := src.Files()
			if err != nil {
				t.Fatal(err)
			}
			// What a coordinator sends: the paths relative to the download
			// folder; what a worker decodes: them resolved against it.
			b, err := json.Marshal(src.Rebase(""))
			if err != nil {
				t.Fatal(err)
			}
			down := t.TempDir()
			got, err := pipeline.DecodeDataSourceType(src.TypeName(), b, down)
			if err != nil {
				t.Fatal(err)
			}
			if want := (data.Config{Type: "npy", Path: tc.wantPath, BaseDir: down}); !reflect.DeepEqual(got, want) {
				t.Fatalf("rebased = %#v, want %#v", got, want)
			}
			if !reflect.DeepEqual(got, src.Rebase(down)) {
				t.Fatalf("decoded %#v, Rebase(%s) gives %#v", got, down, src.Rebase(down))
			}
			for _, f := range files {
				dst := filepath.Join(down, filepath.FromSlash(f.Ship))
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			moved, err := got.Files()
			if err != nil {
				t.Fatal(err)
			}
			if len(moved) != len(files) || moved[0].Ship != files[0].Ship || moved[0].Path != filepath.Join(down, "data", "000.npy") {
				t.Fatalf("files after rebase %v, before %v", moved, files)
			}
		})
	}
}

// FuzzParseConfig: any bytes give a config or an error, never a panic; a
// decoded data source survives the trip to a worker (its type name and
// JSON, decoded through the registry) unchanged.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte(`{"model": {"model": "a.onnx"}, "engine": {"data_source": {"type": "images", "path": "x", "size": [2, 3], "mean": [1], "base_dir": "/d"}, "annotations": "l.csv"}}`))
	f.Add([]byte(`{"model": {"cascade": [{"name": "a", "model": "a.onnx", "data_source": {"type": "idx", "path": "t", "subset": "train"}}]}}`))
	f.Add([]byte(`{"model": {"model": "a.onnx"}, "engine": {"data_source": {"type": "npy"}, "metric": {"name": "accuracy", "top_k": 2}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := pipeline.ParseConfig(raw, ".json")
		if err != nil {
			return
		}
		srcs := []pipeline.DataSource{cfg.Engine.DataSource}
		for _, s := range cfg.StageData {
			srcs = append(srcs, s)
		}
		for _, src := range srcs {
			if src == nil {
				continue
			}
			b, err := json.Marshal(src)
			if err != nil {
				t.Fatalf("%#v: %v", src, err)
			}
			back, err := pipeline.DecodeDataSourceType(src.TypeName(), b, "")
			if err != nil {
				t.Fatalf("%s decoded as %s: %v", b, src.TypeName(), err)
			}
			if b2, _ := json.Marshal(back); string(b2) != string(b) {
				t.Fatalf("round trip: %s became %s", b, b2)
			}
		}
	})
}
