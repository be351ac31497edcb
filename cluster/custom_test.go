package cluster

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// Statistics of the user's own, registered as a user's worker binary and
// coordinator both do: the mean of the squares of each channel (a float
// vector per sample, its sums in a fixed order within the sample), the
// number of negative values (an exact sum) and the smallest value (a min).
func init() {
	pipeline.RegisterStatistic("fleet_chan_meansq", pipeline.Statistic{Compute: func(t pipeline.Tensor) ([]float64, error) {
		c, inner := int(t.Shape[1]), int(pipeline.NumElements(t.Shape[2:]))
		out := make([]float64, c)
		for k := range c {
			for _, v := range t.Data.([]float32)[k*inner : (k+1)*inner] {
				out[k] += float64(v) * float64(v)
			}
			out[k] /= float64(inner)
		}
		return out, nil
	}})
	pipeline.RegisterStatistic("fleet_negative", pipeline.Statistic{Merge: reduce.FoldSum, Compute: func(t pipeline.Tensor) ([]float64, error) {
		n := 0
		for _, v := range t.Data.([]float32) {
			if v < 0 {
				n++
			}
		}
		return []float64{float64(n)}, nil
	}})
	pipeline.RegisterStatistic("fleet_min", pipeline.Statistic{Merge: reduce.FoldMin, Compute: func(t pipeline.Tensor) ([]float64, error) {
		m := math.Inf(1)
		for _, v := range t.Data.([]float32) {
			m = min(m, float64(v))
		}
		return []float64{m}, nil
	}})
}

// TestCustomStatisticsFleet: registered statistics run on the workers and
// give the in-process engine's bits with 1 and 2 workers, by tensor and by
// node name.
func TestCustomStatisticsFleet(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 11, 9)
	m := loadModel(t, "convnet_op13.onnx")
	specs := []pipeline.StatSpec{{Kind: "fleet_chan_meansq"}, {Kind: "fleet_negative"}, {Kind: "fleet_min"}, {Kind: pipeline.StatMax}}
	opts := pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"input": specs, "relu_0": specs, "conv_1_out": specs[:2]},
		Sampler: pipeline.NewBatchSampler(d.n, 2, nil)}
	want := reference(t, d, m, opts)
	if p := want.Stats.Get("relu_0", "fleet_chan_meansq"); p == nil || p.Len() != d.n || p.Dim() != 8 {
		t.Fatalf("in-process: fleet_chan_meansq on relu_0: %v", p)
	}
	if f := want.Stats.Fold("input", "fleet_negative"); f == nil || f.Count() != uint64(d.n) {
		t.Fatalf("in-process: fleet_negative on the input: %+v", f)
	}
	for _, n := range []int{1, 2} {
		t.Run(strings.Repeat("w", n), func(t *testing.T) {
			ws := startWorkers(t, connectAs(t, srv.ClientURL(), srv.WorkerConn()), n, WorkerOptions{})
			defer ws.stop()
			e := newEngine(t, nc, d.spec(), EngineOptions{ShardSize: 4})
			if err := e.SetModel(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			got, err := e.Predict(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			sameStats(t, got, want)
		})
	}
}

// TestCustomStatisticUnknown: a statistic nobody registered fails Predict
// before any shard is published (no worker runs here: a shard published
// would wait for one), with the engine's sentinel and a suggestion.
func TestCustomStatisticUnknown(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 2, 1)
	e := newEngine(t, nc, d.spec(), EngineOptions{IdleTimeout: time.Minute})
	if err := e.SetModel(t.Context(), loadModel(t, "convnet_op13.onnx")); err != nil {
		t.Fatal(err)
	}
	_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"input": {{Kind: "fleet_negatve"}}}})
	want := `cluster engine: bad statistic: tensor "input": unknown statistic "fleet_negatve"; did you mean "fleet_negative"?`
	if !errors.Is(err, engine.ErrBadStats) || !errors.Is(err, pipeline.ErrUnknownStatistic) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v\nwant ErrBadStats, ErrUnknownStatistic and %q", err, want)
	}
}
