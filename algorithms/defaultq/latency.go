package defaultq

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// Latency-aware placement (latency_aware): after MinMaxQuantization and
// FastBiasCorrection, the INT8 model and the prepared FP32 model are timed on
// this machine on calibration sample 0, and ONNX Runtime's kernel profile of
// each attributes time to every quantized layer: in INT8, its kernel
// (QLinearConv, QLinearMatMul, ...) and the QuantizeLinear/DequantizeLinear
// nodes that feed its inputs; in FP32, its float kernel (Conv, FusedConv,
// "<output>_nchwc", ...). Layers whose INT8 time is not at least
// min_layer_speedup times below their FP32 time are left in float (the model
// is written again from the same statistics, minmax.Requantize); the model
// with fewer INT8 layers is kept only when it measures faster than the one
// before it, alternated runs (engine.MeasureLatency). Up to maxRounds
// rounds; when the best model is still slower than FP32, a last round tries
// every layer in float.
//
// The result depends on the CPU that measures and on timing noise: it is not
// byte-identical from run to run. That is why latency_aware is off by
// default; report.json records what was left in float, why, and on which CPU.

const maxRounds = 3

// measureLatency is engine.MeasureLatency; tests replace it.
var measureLatency = engine.MeasureLatency

// FloatLayer is one layer left in float by latency-aware placement.
type FloatLayer struct {
	Node   string  `json:"node"`
	Op     string  `json:"op"`
	Reason string  `json:"reason"`
	FP32us float64 `json:"fp32_us"`
	INT8us float64 `json:"int8_us"`
}

// LatencyReport is what latency-aware placement measured and decided.
type LatencyReport struct {
	CPU             string  `json:"cpu"`
	MinLayerSpeedup float64 `json:"min_layer_speedup"`
	// SpeedupBefore and SpeedupAfter are the medians of per-round FP32/INT8
	// time ratios of the model before placement and of the model written.
	SpeedupBefore float64      `json:"speedup_before"`
	SpeedupAfter  float64      `json:"speedup_after"`
	Measurements  int          `json:"measurements"`
	LeftInFloat   []FloatLayer `json:"left_in_float"`
	// Skipped says why placement did not run, when it did not.
	Skipped string `json:"skipped,omitempty"`
}

// layerCost is one quantized layer's attributed time in each model.
type layerCost struct {
	node, op     string
	fp32, int8us float64
}

// place runs latency-aware placement on q, MinMax (and bias correction)'s
// model. It returns the model to keep.
func (a *Algorithm) place(ctx context.Context, q *model.CompressedModel) (*model.CompressedModel, error) {
	cpu := engine.HostCPU().String()
	r := &LatencyReport{CPU: cpu, MinLayerSpeedup: a.minSpeedup, LeftInFloat: []FloatLayer{}}
	a.lat = r
	ref := a.mm.Reference()
	switch {
	case a.env.Data == nil || a.env.Data.Len() == 0:
		r.Skipped = "no data loader to time the model on"
		return q, nil
	case ref == nil || len(ref.Models()) != 1:
		r.Skipped = "cascade models are not timed"
		return q, nil
	}
	s, err := a.env.Data.Item(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("latency-aware placement: sample 0: %w", err)
	}
	fp, err := model.Marshal(ref.Models()[0].Proto)
	if err != nil {
		return nil, err
	}
	best, err := model.Marshal(q.Models()[0].Proto)
	if err != nil {
		return nil, err
	}
	opts := engine.LatencyOptions{Threads: a.env.Threads, MinRounds: 21, Budget: time.Second}
	c, err := measureLatency(ctx, [][]byte{fp, best}, s.Inputs, opts)
	if err != nil {
		return nil, fmt.Errorf("latency-aware placement: %w", err)
	}
	r.Measurements++
	r.SpeedupBefore = c.Speedup[0].MedianMs
	bestSpeed, bestModel := r.SpeedupBefore, q
	var reverted []FloatLayer // of bestModel
	fpProf, err := engine.ProfileKernels(ctx, fp, s.Inputs, a.env.Threads, 10)
	if err != nil {
		return nil, fmt.Errorf("latency-aware placement: %w", err)
	}
	layers, err := a.mm.QuantizedLayers()
	if err != nil {
		return nil, err
	}
	for round := 0; round <= maxRounds; round++ {
		var next []FloatLayer
		if round < maxRounds {
			i8Prof, err := engine.ProfileKernels(ctx, best, s.Inputs, a.env.Threads, 10)
			if err != nil {
				return nil, fmt.Errorf("latency-aware placement: %w", err)
			}
			costs := attribute(ref.Models()[0].Proto, bestModel.Models()[0].Proto, layers, fpProf, i8Prof)
			next = slices.Clone(reverted)
			for _, lc := range costs {
				if lc.int8us*a.minSpeedup > lc.fp32 && !hasNode(next, lc.node) {
					next = append(next, FloatLayer{Node: lc.node, Op: lc.op, Reason: "slower in INT8 on " + cpu, FP32us: round1(lc.fp32), INT8us: round1(lc.int8us)})
				}
			}
			if a.minSpeedup > 1 {
				for k := range next {
					if next[k].INT8us <= next[k].FP32us {
						next[k].Reason = fmt.Sprintf("less than %gx faster in INT8 on %s (min_layer_speedup)", a.minSpeedup, cpu)
					}
				}
			}
			if len(next) == len(reverted) {
				if bestSpeed >= 1 {
					break
				}
				round = maxRounds - 1 // nothing new to revert: only the all-float try is left
				continue
			}
		} else {
			if bestSpeed >= 1 || len(reverted) == len(layers) {
				break
			}
			next = slices.Clone(reverted)
			for _, l := range layers {
				if !hasNode(next, l) {
					next = append(next, FloatLayer{Node: l, Reason: "the INT8 model was slower than FP32 on " + cpu + " with any other placement tried"})
				}
			}
		}
		cand, err := a.requantize(ctx, names(next))
		if err != nil {
			return nil, err
		}
		cb, err := model.Marshal(cand.Models()[0].Proto)
		if err != nil {
			return nil, err
		}
		c, err := measureLatency(ctx, [][]byte{fp, best, cb}, s.Inputs, opts)
		if err != nil {
			return nil, fmt.Errorf("latency-aware placement: %w", err)
		}
		r.Measurements++
		a.logf("latency-aware placement", "round", round, "float_layers", len(next), "speedup_best", c.Speedup[0].MedianMs, "speedup_candidate", c.Speedup[1].MedianMs)
		if c.Speedup[1].MedianMs > c.Speedup[0].MedianMs {
			bestSpeed, bestModel, best, reverted = c.Speedup[1].MedianMs, cand, cb, next
		} else {
			bestSpeed = c.Speedup[0].MedianMs
			if round < maxRounds {
				round = maxRounds - 1 // the profile's advice did not pay: only the all-float try is left
			}
		}
	}
	r.SpeedupAfter = bestSpeed
	if len(reverted) > 0 {
		r.LeftInFloat = reverted
		// The reports of MinMax and bias correction describe the model kept.
		return a.requantize(ctx, names(reverted))
	}
	_, err = a.requantize(ctx, nil)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// requantize writes the model with ignored in float and corrects its biases.
func (a *Algorithm) requantize(ctx context.Context, ignored []string) (*model.CompressedModel, error) {
	q, err := a.mm.Requantize(ctx, ignored)
	if err != nil {
		return nil, err
	}
	if a.fb == nil {
		return q, nil
	}
	return a.fb.RunWithStats(ctx, q, a.mm.Stats())
}

func (a *Algorithm) logf(msg string, args ...any) {
	if a.env.Log != nil {
		a.env.Log.Info(msg, args...)
	}
}

func hasNode(l []FloatLayer, n string) bool {
	return slices.ContainsFunc(l, func(f FloatLayer) bool { return f.Node == n })
}

func names(l []FloatLayer) []string {
	out := make([]string, len(l))
	for i, f := range l {
		out[i] = f.Node
	}
	return out
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// kernelTimes sums a profile's time by ONNX node name: ONNX Runtime names a
// kernel after the node it ran, with "_token_N" or "/duplicated" appended
// when its optimizers made or copied it, or "<output>_nchwc" for a float
// Conv in the NCHWc layout.
func kernelTimes(p *engine.KernelProfile) map[string]float64 {
	out := map[string]float64{}
	for _, k := range p.Kernels {
		n := k.Node
		if i := strings.Index(n, "_token_"); i > 0 {
			n = n[:i]
		}
		n = strings.TrimSuffix(n, "/duplicated")
		out[n] += k.Micros
	}
	return out
}

// nchwcFused are the operators ONNX Runtime's NCHWc transformer fuses
// into the float Conv before them (activations, and Add as a sum); the
// fused kernel is named after the last fused node's output.
var nchwcFused = map[string]bool{"Relu": true, "Clip": true, "Sigmoid": true, "HardSigmoid": true,
	"LeakyRelu": true, "Tanh": true, "Add": true}

// fusedOutputs lists n's outputs and those of the chain of single readers
// ONNX Runtime may fuse into it (Conv → HardSigmoid runs as one NCHWc Conv
// named "<HardSigmoid output>_nchwc"; Conv → Add → Relu as one named after
// the Relu's output).
func fusedOutputs(n *onnxpb.NodeProto, consumers map[string][]*onnxpb.NodeProto) []string {
	out := slices.Clone(n.GetOutput())
	if len(out) != 1 {
		return out
	}
	cur := out[0]
	for range 3 {
		cs := consumers[cur]
		if len(cs) != 1 || !nchwcFused[cs[0].GetOpType()] || len(cs[0].GetOutput()) != 1 {
			break
		}
		cur = cs[0].GetOutput()[0]
		out = append(out, cur)
	}
	return out
}

// attribute gives each quantized layer its FP32 kernel time (its node, or
// the NCHWc Conv named after its output or the output of what was fused
// into it) and its INT8 time: its kernel plus the DequantizeLinear nodes on its activation inputs
// and the QuantizeLinear nodes before them, a QuantizeLinear shared by n
// DequantizeLinear nodes counting 1/n.
func attribute(fp, q *onnxpb.ModelProto, layers []string, fpProf, qProf *engine.KernelProfile) []layerCost {
	ft, qt := kernelTimes(fpProf), kernelTimes(qProf)
	fpNodes := map[string]*onnxpb.NodeProto{}
	fpConsumers := map[string][]*onnxpb.NodeProto{}
	for _, n := range fp.GetGraph().GetNode() {
		fpNodes[n.GetName()] = n
		for _, i := range n.GetInput() {
			fpConsumers[i] = append(fpConsumers[i], n)
		}
	}
	producer := map[string]*onnxpb.NodeProto{}
	consumers := map[string]int{}
	qNodes := map[string]*onnxpb.NodeProto{}
	for _, n := range q.GetGraph().GetNode() {
		qNodes[n.GetName()] = n
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
		for _, i := range n.GetInput() {
			consumers[i]++
		}
	}
	var out []layerCost
	for _, l := range layers {
		fn, qn := fpNodes[l], qNodes[l]
		if fn == nil || qn == nil {
			continue
		}
		lc := layerCost{node: l, op: fn.GetOpType(), fp32: ft[l], int8us: qt[l]}
		for _, o := range fusedOutputs(fn, fpConsumers) {
			lc.fp32 += ft[o+"_nchwc"]
		}
		for _, in := range qn.GetInput() {
			dq := producer[in]
			if dq == nil || dq.GetOpType() != "DequantizeLinear" {
				continue
			}
			lc.int8us += qt[dq.GetName()] / float64(max(consumers[in], 1))
			if qq := producer[dq.GetInput()[0]]; qq != nil && qq.GetOpType() == "QuantizeLinear" {
				lc.int8us += qt[qq.GetName()] / float64(max(consumers[dq.GetInput()[0]], 1)) / float64(max(consumers[in], 1))
			}
		}
		if lc.fp32 == 0 && lc.int8us == 0 {
			continue
		}
		out = append(out, lc)
	}
	return out
}
