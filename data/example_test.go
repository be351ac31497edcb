package data_test

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/pipeline"
)

// A loader from a config's "data_source" (POT's DataLoader): the idx type
// reads MNIST-format files, shaped as the model's input wants and
// labelled from the idx1 file beside the images.
func ExampleOpen() {
	ctx := context.Background()
	base := filepath.Join("..", "examples", "fashion-mnist")
	inputs := []pipeline.TensorInfo{{Name: "input", DType: pipeline.Float32, Shape: []int64{1, 1, 28, 28}}}
	loader, err := data.Open(ctx, data.Config{Type: "idx", Path: "data/calib"}, nil, base, inputs)
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := loader.Item(ctx, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(loader.Len(), s.Inputs["input"].Shape, s.Annotation)
	_, err = loader.Item(ctx, loader.Len())
	fmt.Println(err)
	_, err = data.Open(ctx, data.Config{Type: "nupy", Path: "data/calib"}, nil, base, inputs)
	fmt.Println(err)
	// Output:
	// 1000 [1 1 28 28] 9
	// sample 1000: sample index out of range [0, 1000)
	// data_source.type: unknown type "nupy"; valid types: idx, images, npy
}
