package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	_ "github.com/fleetcal/fleetcal/algorithms/all" // registers DefaultQuantization, ...
	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// POT's create_pipeline and Pipeline.run: DefaultQuantization of the
// Fashion-MNIST example model, calibrated on 30 of its samples by the
// ONNX Runtime engine in this process. The result is a QDQ model.
func ExampleCreate() {
	ctx := context.Background()
	if err := engine.Init(); err != nil {
		fmt.Println(err)
		return
	}
	dir := filepath.Join("..", "examples", "fashion-mnist")
	fp32, err := model.Load(model.Config{Model: "model.onnx", BaseDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	inputs := []pipeline.TensorInfo{{Name: "input", DType: pipeline.Float32, Shape: []int64{1, 1, 28, 28}}}
	loader, err := data.Open(ctx, data.Config{Type: "idx", Path: "data/calib"}, nil, dir, inputs)
	if err != nil {
		fmt.Println(err)
		return
	}
	eng, err := engine.New(loader, engine.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Close()
	p, err := pipeline.Create([]pipeline.AlgorithmConfig{{Name: "DefaultQuantization",
		Params: json.RawMessage(`{"preset": "performance", "stat_subset_size": 30}`)}}, pipeline.AlgorithmEnv{Engine: eng})
	if err != nil {
		fmt.Println(err)
		return
	}
	int8, err := p.Run(ctx, fp32)
	if err != nil {
		fmt.Println(err)
		return
	}
	ops := map[string]int{}
	for _, n := range int8.Models()[0].Proto.GetGraph().GetNode() {
		ops[n.GetOpType()]++
	}
	fmt.Println(ops["QuantizeLinear"] > 0, ops["DequantizeLinear"] > ops["QuantizeLinear"])

	_, err = pipeline.Create([]pipeline.AlgorithmConfig{{Name: "DefaultQuantisation"}}, pipeline.AlgorithmEnv{Engine: eng})
	fmt.Println(strings.Split(err.Error(), ";")[0]) // then the registered names
	// Output:
	// true true
	// algorithm config 0: invalid config: unknown algorithm "DefaultQuantisation"
}
