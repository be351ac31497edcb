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
	if err := eng.SetModel(context.Background(), m); err != nil {
		fmt.Println(err)
		return
	}
	spec := pipeline.StatSpec{Kind: pipeline.StatMin}
	res, err := eng.Predict(context.Background(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"input": {spec}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	// A layout may name a node, as POT's does: its first output is
	// observed, the result is filed under the node's name. A name that is
	// neither gets a hint.
	byNode, err := eng.Predict(context.Background(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"relu_0": {spec}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = eng.Predict(context.Background(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"relu_0_otu": {spec}}})
	fmt.Println(res.Samples, res.Stats.Get("input", spec.Key()).Column(0))
	fmt.Println(byNode.Stats.Get("relu_0", spec.Key()).Len())
	fmt.Println(err)
	// Output:
	// 2 [0.5 -1]
	// 2
	// unknown tensor: statistics layout: tensor "relu_0_otu" is not in the model; did you mean "relu_0_out"?
}
