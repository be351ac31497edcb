package engine

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// nonFloatOps produce tensors that are not float activations (shapes,
// indices, constants).
var nonFloatOps = map[string]bool{
	"Constant": true, "ConstantOfShape": true, "Shape": true, "Size": true,
	"NonZero": true, "ArgMax": true, "ArgMin": true, "TopK": true,
}

// floatActivations lists every node output of float type: the tensors a
// quantization algorithm observes.
func floatActivations(p *onnxpb.ModelProto) []string {
	cat := newCatalog(p)
	var out []string
	for _, n := range p.GetGraph().GetNode() {
		if nonFloatOps[n.GetOpType()] {
			continue
		}
		for _, o := range n.GetOutput() {
			if et := cat.elemType[o]; o != "" && (et == 0 || et == onnxFloat) {
				out = append(out, o)
			}
		}
	}
	return out
}

// notPreRelu drops the tensors whose only consumer is a Relu.
func notPreRelu(p *onnxpb.ModelProto, tensors []string) []string {
	consumers := map[string][]string{}
	for _, n := range p.GetGraph().GetNode() {
		for _, in := range n.GetInput() {
			consumers[in] = append(consumers[in], n.GetOpType())
		}
	}
	var out []string
	for _, t := range tensors {
		if c := consumers[t]; len(c) != 1 || c[0] != "Relu" {
			out = append(out, t)
		}
	}
	return out
}

// BenchmarkCalibration compares plain inference with the collection of the
// per-sample min and max of every float activation, with each strategy:
// one op is a pass over the same 64 samples, threads=1, requests=1. The
// machine being shared, compare ratios within one run, best over -count.
//
//	go test ./engine -run XXX -bench Calibration -benchtime 3x -count 5
func BenchmarkCalibration(b *testing.B) {
	name := "bench_cnn.onnx"
	if _, err := os.Stat(fixture(name)); err != nil {
		name = "convnet_op13.onnx"
	}
	p := loadProto(b, name)
	in, _ := graphIO(p)
	l := randomSamples(64, in[0].Name, in[0].Shape, 7)
	minMax := []pipeline.StatSpec{{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}}
	acts := floatActivations(p)
	layout := layoutOf(acts, minMax)
	for _, bc := range []struct {
		name     string
		layout   pipeline.StatsLayout
		strategy Strategy
	}{
		{"Plain", nil, StrategyAuto},
		{"StatsGo", layout, StrategyGo},
		{"StatsInGraph", layout, StrategyInGraph},
		// What a QDQ quantizer observes: not the pre-activations that ONNX
		// Runtime fuses into Conv+Relu (observing them costs the fusion).
		{"StatsGoNoPreRelu", layoutOf(notPreRelu(p, acts), minMax), StrategyGo},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := New(l, Options{Threads: 1, Requests: 1, Strategy: bc.strategy})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if err := e.SetModel(b.Context(), loadModel(b, name)); err != nil {
				b.Fatal(err)
			}
			opts := pipeline.PredictOptions{StatsLayout: bc.layout}
			if _, err := e.Predict(b.Context(), opts); err != nil { // build the sessions
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := e.Predict(b.Context(), opts); err != nil {
					b.Fatal(err)
				}
			}
			// The machine is shared: CPU time is steadier than wall time.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time used by the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
