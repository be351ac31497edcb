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

// A statistic of the user's own, POT's stats_layout {'node': {'stat': fn}}:
// registered by name with the rule its results merge by (here one value
// per sample, kept by sample index), then named in a layout. Engines run
// it where the activations are, on the workers of a fleet too.
func ExampleRegisterStatistic() {
	pipeline.RegisterStatistic("example_positive_share", pipeline.Statistic{
		Compute: func(t pipeline.Tensor) ([]float64, error) {
			x := t.Data.([]float32)
			n := 0
			for _, v := range x {
				if v > 0 {
					n++
				}
			}
			return []float64{float64(n) / float64(len(x))}, nil
		},
	})
	layout := pipeline.StatsLayout{"conv1": {{Kind: "example_positive_share"}}}
	spec := layout["conv1"][0]
	s, err := pipeline.LookupStatistic(string(spec.Kind))
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := s.Compute(pipeline.Tensor{Shape: []int64{1, 4}, Data: []float32{-1, 0.5, 2, 0}})
	fmt.Println(spec.Key(), v, err)
	err = pipeline.StatSpec{Kind: "example_positive_shares"}.Validate()
	fmt.Println(strings.Split(err.Error(), " valid:")[0]) // then the valid names
	// Output:
	// example_positive_share [0.5] <nil>
	// unknown statistic "example_positive_shares"; did you mean "example_positive_share"?
}
