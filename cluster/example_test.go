package cluster_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// A fleet in one process: an embedded NATS server, two workers and the
// coordinator's engine, a pipeline.Engine like the in-process one. Predict
// spreads the samples over the workers and merges their statistics,
// built-in and registered (here an exact count of the zeros); the result has the bits
// of the in-process engine's.
func ExampleNewEngine() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pipeline.RegisterStatistic("example_zeros", pipeline.Statistic{Merge: reduce.FoldSum,
		Compute: func(t pipeline.Tensor) ([]float64, error) {
			n := 0
			for _, v := range t.Data.([]float32) {
				if v == 0 {
					n++
				}
			}
			return []float64{float64(n)}, nil
		}})
	srv, err := cluster.StartServer(ctx, cluster.ServerOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	secret := cluster.NewSecret()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // stops the workers, before wg.Wait
	for i := range 2 {
		wnc, err := cluster.Connect(ctx, srv.ClientURL(), srv.WorkerConn())
		if err != nil {
			fmt.Println(err)
			return
		}
		defer wnc.Close()
		w, err := cluster.NewWorker(wnc, cluster.WorkerOptions{Name: fmt.Sprint("w", i), Secret: secret})
		if err != nil {
			fmt.Println(err)
			return
		}
		wg.Go(func() { _ = w.Run(ctx) })
	}
	nc, err := cluster.Connect(ctx, srv.ClientURL(), srv.CoordinatorConn())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	dir := filepath.Join("..", "examples", "fashion-mnist")
	m, err := model.Load(model.Config{Model: "model.onnx", BaseDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	ds := data.Config{Type: "idx", Path: "data/calib", BaseDir: dir}
	fleet, err := cluster.NewEngine(nc, cluster.RunSpec{DataSource: ds, Len: 1000, SameHost: true},
		cluster.EngineOptions{Secret: secret, ShardSize: 4})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fleet.End(context.Background())
	if err := fleet.SetModel(ctx, m); err != nil {
		fmt.Println(err)
		return
	}
	opts := pipeline.PredictOptions{
		StatsLayout: pipeline.StatsLayout{"/Relu_2_output_0": {{Kind: pipeline.StatMax}, {Kind: "example_zeros"}}},
		Sampler:     pipeline.NewBatchSampler(1000, 1, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}),
	}
	res, err := fleet.Predict(ctx, opts)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The same Predict in this process.
	inputs := []pipeline.TensorInfo{{Name: "input", DType: pipeline.Float32, Shape: []int64{1, 1, 28, 28}}}
	loader, err := ds.Open(ctx, inputs, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	local, err := engine.New(loader, engine.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer local.Close()
	if err := local.SetModel(ctx, m); err != nil {
		fmt.Println(err)
		return
	}
	want, err := local.Predict(ctx, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	maxes := res.Stats.Get("/Relu_2_output_0", "max")
	zeros := res.Stats.Fold("/Relu_2_output_0", "example_zeros")
	// 9711: the zeros of the 10 samples' Relu outputs, as the in-process
	// engine counts them too (Equal compares every bit).
	fmt.Println(res.Samples, maxes.Len(), zeros.Sum().Float64(), res.Stats.Equal(want.Stats))
	// Output: 10 10 9711 true
}
