package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// The coordinator (this test process) registers a data source type and a
// postprocess that the plain worker binary does not have (the coordinator
// opens no loader here: only workers run them).
func init() {
	data.Register("user-npy", func(context.Context, data.Config, string, []pipeline.TensorInfo, map[string]any) (pipeline.DataLoader, error) {
		return nil, errors.New("only a user's worker binary opens it")
	})
	pipeline.RegisterPostprocess("user-post", func(map[string]pipeline.Tensor, map[string]any) (map[string]pipeline.Tensor, error) {
		return nil, errors.New("only a user's worker binary runs it")
	})
	pipeline.RegisterStatistic("user-stat", pipeline.Statistic{Compute: func(pipeline.Tensor) ([]float64, error) {
		return nil, errors.New("only a user's worker binary runs it")
	}})
}

// countMetric counts its updates.
type countMetric struct{ n int }

func (m *countMetric) Update(map[string]pipeline.Tensor, any) error { m.n++; return nil }
func (m *countMetric) Value() map[string][]float64                  { return map[string][]float64{"n": {1}} }
func (m *countMetric) AvgValue() map[string]float64                 { return map[string]float64{"n": float64(m.n)} }
func (m *countMetric) HigherBetter() bool                           { return true }
func (m *countMetric) Reset()                                       { m.n = 0 }
func (m *countMetric) Attributes() map[string]pipeline.MetricAttributes {
	return map[string]pipeline.MetricAttributes{"n": {Direction: "higher-better", Type: "count"}}
}

// TestWorkerWithoutUserTypes: a worker binary that does not register the
// run's data source type or postprocess fails the shard, after its
// retries, with an error saying so (a user's worker binary registers them
// before worker.Main). So does a statistic it does not register (another
// worker of the fleet, of the user's own binary, may run it).
func TestWorkerWithoutUserTypes(t *testing.T) {
	srv := startServer(t, cluster.ServerOptions{})
	w := exec.Command(workerBinary(t), append([]string{"--nats", srv.ClientURL(), "--name", "plain"}, workerArgs(srv)...)...)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Process.Signal(os.Interrupt); _ = w.Wait() }()
	nc, err := cluster.Connect(t.Context(), srv.ClientURL(), srv.CoordinatorConn())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "calib"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		writeNpy(t, filepath.Join(dir, "calib", fmt.Sprintf("%03d.npy", i)), []int{3, 16, 16}, make([]float32, 3*16*16))
	}
	m, err := model.Load(model.Config{Model: filepath.Join("..", "..", "testdata", "models", "convnet_op13.onnx")})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, source, post, stat, want string
		kind                           error
	}{
		{"data source", `{"type": "user-npy", "path": "calib"}`, "", "", `this worker binary does not register the data source type (data.Register before worker.Main): data_source.type: unknown type "user-npy"`, cluster.ErrSetup},
		{"postprocess", `{"type": "npy", "path": "calib"}`, "user-post", "", `this worker binary does not register the postprocess (pipeline.RegisterPostprocess before worker.Main): invalid config: unknown postprocess "user-post"`, cluster.ErrSetup},
		{"statistic", `{"type": "npy", "path": "calib"}`, "", "user-stat", `this worker binary does not register the statistic (pipeline.RegisterStatistic before worker.Main): bad statistic: tensor "input": unknown statistic "user-stat"`, cluster.ErrSetup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := pipeline.DecodeDataSource(json.RawMessage(tc.source), dir)
			if err != nil {
				t.Fatal(err)
			}
			e, err := cluster.NewEngine(nc, cluster.RunSpec{DataSource: src, Len: 2, Postprocess: tc.post},
				cluster.EngineOptions{MaxDeliver: 2, RetryDelay: 10 * time.Millisecond, Secret: testSecret})
			if err != nil {
				t.Fatal(err)
			}
			defer e.End(context.Background())
			if err := e.SetModel(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			opts := pipeline.PredictOptions{Metric: &countMetric{}}
			if tc.stat != "" {
				opts = pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"input": {{Kind: pipeline.StatKind(tc.stat)}}}}
			}
			_, err = e.Predict(ctx, opts)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %v and %q", err, tc.kind, tc.want)
			}
		})
	}
}
