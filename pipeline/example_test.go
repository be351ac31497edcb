package pipeline_test

import (
	"fmt"
	"strings"

	"github.com/fleetcal/fleetcal/pipeline"
)

// A sampler over a subset of the data set (POT's subset_indices), in
// batches of 2.
func ExampleNewBatchSampler() {
	s := pipeline.NewBatchSampler(10, 2, []int{9, 1, 4, 7, 0})
	fmt.Println(s.Batches())
	// Output: [[9 1] [4 7] [0]]
}

// A postprocess registered by name runs where the outputs are computed:
// in this process, or on every worker of a fleet (cluster.RunSpec names
// it).
func ExampleRegisterPostprocess() {
	pipeline.RegisterPostprocess("example-first", func(out map[string]pipeline.Tensor, _ map[string]any) (map[string]pipeline.Tensor, error) {
		return map[string]pipeline.Tensor{"first": out["logits"]}, nil
	})
	f, err := pipeline.LookupPostprocess("example-first")
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := f(map[string]pipeline.Tensor{"logits": {Shape: []int64{2}, Data: []float32{0.25, 0.75}}}, nil)
	fmt.Println(out, err)
	_, err = pipeline.LookupPostprocess("example-frist")
	fmt.Println(strings.Split(err.Error(), ";")[0]) // then the registered names

	// Output:
	// map[first:{[2] [0.25 0.75]}] <nil>
	// invalid config: unknown postprocess "example-frist"
}
