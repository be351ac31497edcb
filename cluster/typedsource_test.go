package cluster

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/pipeline"
)

// npyList is a user's data source type of its own, not a data.Config: the
// .npy files of a folder, named one by one. Registered with
// pipeline.RegisterDataSource, as a user's coordinator and worker binary
// both would.
type npyList struct {
	Root  string   `json:"root"`
	Names []string `json:"names"`
}

func init() {
	pipeline.RegisterDataSource("test-npy-list", func(raw json.RawMessage, dir string) (pipeline.DataSource, error) {
		var v struct {
			Type string `json:"type"`
			npyList
		}
		if err := pipeline.DecodeStrict(raw, &v, "data_source"); err != nil {
			return nil, err
		}
		s := v.npyList
		s.Root = pipeline.ResolvePath(dir, s.Root)
		return s, nil
	})
}

func (s npyList) TypeName() string { return "test-npy-list" }

func (s npyList) Open(ctx context.Context, inputs []pipeline.TensorInfo, ann *pipeline.Annotations) (pipeline.DataLoader, error) {
	return data.Open(ctx, data.Config{Type: "npy", Path: s.Root}, ann, "", inputs)
}

func (s npyList) Files() ([]pipeline.DataFile, error) {
	var fs []pipeline.DataFile
	for _, n := range s.Names {
		fs = append(fs, pipeline.DataFile{Path: filepath.Join(s.Root, n), Ship: path.Join("list", n)})
	}
	return fs, nil
}

func (s npyList) Rebase(dir string) pipeline.DataSource {
	s.Root = filepath.Join(dir, "list")
	if dir == "" {
		s.Root = "list"
	}
	return s
}

// TestTypedSourceOnFleet: a data source of a type registered with
// pipeline.RegisterDataSource travels to the workers as its type name and
// JSON and is decoded through their registry: with the workers reading
// the coordinator's files (whose digests they check through the decoded
// source's Files) and with shipped data (read rebased on the download
// folder), the fleet gives the in-process engine's statistics and metric.
func TestTypedSourceOnFleet(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 6, 4)
	m := loadModel(t, "convnet_op13.onnx")
	o := func() pipeline.PredictOptions {
		return pipeline.PredictOptions{StatsLayout: testLayout(), Metric: newAccuracy(t)}
	}
	want := reference(t, d, m, o())
	wnc := connectAs(t, srv.ClientURL(), srv.WorkerConn())

	entries, err := os.ReadDir(filepath.Join(d.dir, "calib"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	raw, err := json.Marshal(map[string]any{"type": "test-npy-list", "root": "calib", "names": names})
	if err != nil {
		t.Fatal(err)
	}
	src, err := pipeline.DecodeDataSource(raw, d.dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := (npyList{Root: filepath.Join(d.dir, "calib"), Names: names}); !reflect.DeepEqual(src, want) {
		t.Fatalf("decoded %#v, want %#v", src, want)
	}
	w, err := encodeSource(src)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := w.decode(""); err != nil || !reflect.DeepEqual(back, src) {
		t.Fatalf("wire %s %s decodes to %#v, %v; want %#v", w.Type, w.Config, back, err, src)
	}
	for _, ship := range []bool{false, true} {
		t.Run(map[bool]string{false: "digests", true: "shipped"}[ship], func(t *testing.T) {
			// The workers record the files their loaders read.
			var mu sync.Mutex
			var read []string
			tmp := t.TempDir()
			ws := startWorkers(t, wnc, 2, WorkerOptions{TempDir: tmp, WrapLoader: func(l pipeline.DataLoader) pipeline.DataLoader {
				return pathLoader{l, func(p string) { mu.Lock(); read = append(read, p); mu.Unlock() }}
			}})
			defer ws.stop()
			spec := d.spec()
			spec.DataSource, spec.ShipData = src, ship
			e := newEngine(t, nc, spec, EngineOptions{ShardSize: 2})
			if err := e.SetModel(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			got, err := e.Predict(t.Context(), o())
			if err != nil {
				t.Fatal(err)
			}
			sameStats(t, got, want)
			if !reflect.DeepEqual(got.Metrics, want.Metrics) {
				t.Errorf("metrics %v, want %v", got.Metrics, want.Metrics)
			}
			root := filepath.Join(d.dir, "calib") + string(filepath.Separator)
			if ship {
				root = tmp + string(filepath.Separator)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(read) != d.n {
				t.Fatalf("workers read %d samples, want %d", len(read), d.n)
			}
			for _, p := range read {
				if !strings.HasPrefix(p, root) || (ship && !strings.Contains(p, string(filepath.Separator)+"list"+string(filepath.Separator))) {
					t.Fatalf("a worker read %s, want a file under %s", p, root)
				}
			}
		})
	}
	if !slices.Contains(pipeline.DataSourceNames(), "test-npy-list") {
		t.Fatal("test-npy-list is not listed by DataSourceNames")
	}
}

// pathLoader reports the "path" metadata of each sample it reads.
type pathLoader struct {
	pipeline.DataLoader
	seen func(string)
}

func (l pathLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	s, err := l.DataLoader.Item(ctx, i)
	if p, ok := s.Metadata["path"].(string); ok {
		l.seen(p)
	}
	return s, err
}
