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
	"slices"
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
	var sess []*engine.Session
	for _, p := range flag.Args() {
		m, err := model.Load(model.Config{Name: "m", Model: p})
		if err != nil {
			log.Fatal(err)
		}
		s, err := engine.NewSession(m.Models()[0].Proto, 1)
		if err != nil {
			log.Fatalf("%s: %v", p, err)
		}
		defer s.Close()
		sess = append(sess, s)
	}
	in := sess[0].Inputs()[0]
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
	ctx := context.Background()
	times := make([][]time.Duration, len(sess))
	for i := range n + 3 {
		for j, s := range sess {
			t := time.Now()
			if _, err := s.Run(ctx, inputs); err != nil {
				log.Fatal(err)
			}
			if i >= 3 { // 3 warm-up rounds
				times[j] = append(times[j], time.Since(t))
			}
		}
	}
	for j, ts := range times {
		slices.Sort(ts)
		fmt.Printf("%-50s median %8.3f ms (%d runs)\n", flag.Arg(j), float64(ts[len(ts)/2].Microseconds())/1000, len(ts))
	}
}
