package engine_test

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// An engine runs a model over a DataLoader and collects the statistics a
// layout names (POT's IEEngine.predict with stats_layout).
func ExampleEngine_Predict() {
	m, err := model.Load(model.Config{Model: filepath.Join("..", "testdata", "models", "convnet_op13.onnx")})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Two samples: every pixel 0.5, then every pixel -1.
	var samples pipeline.SliceLoader
	for _, v := range []float32{0.5, -1} {
		x := make([]float32, 3*16*16)
		for i := range x {
			x[i] = v
		}
		samples = append(samples, pipeline.Sample{Inputs: map[string]pipeline.Tensor{"input": {Shape: []int64{1, 3, 16, 16}, Data: x}}})
	}
	eng, err := engine.New(samples, engine.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Close()
	if err := eng.SetModel(m); err != nil {
		fmt.Println(err)
		return
	}
	spec := pipeline.StatSpec{Kind: pipeline.StatMin}
	res, err := eng.Predict(context.Background(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"input": {spec}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	// A layout naming a node instead of a tensor is refused with a hint.
	_, err = eng.Predict(context.Background(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"relu_0": {spec}}})
	fmt.Println(res.Samples, res.Stats.Get("input", spec.Key()).Column(0))
	fmt.Println(err)
	// Output:
	// 2 [0.5 -1]
	// unknown tensor: statistics layout: tensor "relu_0" is not in the model (it is the name of a Relu node: statistics layouts name tensors; its first output is "relu_0_out")
}
