//go:build ignore

// latency_ab alternates single-thread, batch-1 inferences of several ONNX
// models on one random input (shape [1,1,28,28] when the first model's input
// has one channel, else [1,3,224,224]) and prints each model's median
// latency: an A/B comparison where every model sees the same machine load.
//
//	go run scripts/latency_ab.go [-rounds N] A.onnx B.onnx ...
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"time"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

func main() {
	rounds := flag.Int("rounds", 0, "inferences per model (default 3000 for 28x28 inputs, 40 otherwise)")
	flag.Parse()
	if flag.NArg() == 0 {
		log.Fatal("usage: go run scripts/latency_ab.go [-rounds N] A.onnx B.onnx ...")
	}
	var models [][]byte
	var first *model.CompressedModel
	for _, p := range flag.Args() {
		m, err := model.Load(model.Config{Name: "m", Model: p})
		if err != nil {
			log.Fatal(err)
		}
		raw, err := model.Marshal(m.Models()[0].Proto)
		if err != nil {
			log.Fatalf("%s: %v", p, err)
		}
		models = append(models, raw)
		if first == nil {
			first = m
		}
	}
	in := model.Inputs(first.Models()[0].Proto)[0]
	shape, n := []int64{1, 3, 224, 224}, 40
	if len(in.Shape) == 4 && in.Shape[1] == 1 {
		shape, n = []int64{1, 1, 28, 28}, 3000
	}
	if *rounds > 0 {
		n = *rounds
	}
	d := make([]float32, shape[1]*shape[2]*shape[3])
	r := rand.New(rand.NewPCG(1, 2))
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	inputs := map[string]pipeline.Tensor{in.Name: {Shape: shape, Data: d}}
	// engine.MeasureLatency alternates the models round by round (the
	// rounds are fixed here: the budget never ends them early).
	c, err := engine.MeasureLatency(context.Background(), models, inputs,
		engine.LatencyOptions{Threads: 1, MinRounds: n, MaxRounds: n, Budget: time.Nanosecond})
	if err != nil {
		log.Fatal(err)
	}
	for j, st := range c.Models {
		fmt.Printf("%-50s median %8.3f ms (%d runs)\n", flag.Arg(j), st.MedianMs, c.Rounds)
	}
}
