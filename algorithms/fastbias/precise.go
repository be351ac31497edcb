package fastbias

import (
	"context"
	"fmt"
	"log/slog"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// BiasCorrectionName is the POT name of the precise bias correction.
const BiasCorrectionName = "BiasCorrection"

func init() {
	pipeline.RegisterAlgorithmParams(BiasCorrectionName, NewBiasCorrection)
}

// DefaultThreshold is BiasCorrection's default threshold (POT's and NNCF's).
const DefaultThreshold = 1000.0

// BiasCorrectionParams are POT's BiasCorrection parameters.
type BiasCorrectionParams struct {
	StatSubsetSize *int   `json:"stat_subset_size"`
	StatBatchSize  int    `json:"stat_batch_size"`
	ShuffleData    bool   `json:"shuffle_data"`
	Seed           uint64 `json:"seed"`
	// Threshold bounds a layer's correction: a layer whose largest |shift|
	// exceeds Threshold times its largest |bias| (or Threshold itself, for
	// an all-zero bias) keeps its bias, and the report says so. Default 1000.
	Threshold *float64 `json:"threshold"`
	// ApplyForAllNodes would also correct layers without a bias (POT adds
	// one); only false, the default, is supported.
	ApplyForAllNodes bool `json:"apply_for_all_nodes"`
}

// NewBiasCorrection builds POT's BiasCorrection: see precise.
func NewBiasCorrection(p BiasCorrectionParams, env pipeline.AlgorithmEnv) (*Algorithm, error) {
	if p.ApplyForAllNodes {
		return nil, fmt.Errorf("apply_for_all_nodes: true is not supported: layers without a bias are left as they are (leave it false)")
	}
	th := DefaultThreshold
	if p.Threshold != nil {
		th = *p.Threshold
		if !(th > 0) || math.IsInf(th, 0) {
			return nil, fmt.Errorf("threshold: %v, want a positive number", th)
		}
	}
	a, err := New(Params{StatSubsetSize: p.StatSubsetSize, StatBatchSize: p.StatBatchSize, ShuffleData: p.ShuffleData, Seed: p.Seed}, env)
	if err != nil {
		return nil, err
	}
	a.p.Mode, a.name, a.threshold = modePrecise, BiasCorrectionName, th
	if a.env.Log == nil {
		a.env.Log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// modePrecise is BiasCorrection's mode (not a FastBiasCorrection mode).
const modePrecise = "precise"

// Precise reports whether the algorithm is BiasCorrection, which needs a
// pass of its own after quantization (RunWithStats then behaves as Run).
func (a *Algorithm) Precise() bool { return a.p.Mode == modePrecise }

// precise is BiasCorrection: every corrected layer is measured on each
// sample, fed with the float model's activation, as the quantized model
// computes it (its input quantized and dequantized, its weight dequantized
// to float, its int32 bias): one model holds the float model and, beside
// it, one such copy of every layer (augmented), and one pass over the
// subset gives both per-channel output means of every layer. The shift is
// their difference, so, unlike the fast mode, it also corrects the mean
// error of the input's rounding and clipping (which differs from the error
// at the mean input), and unlike the sequential mode it costs one pass,
// spread over the fleet's workers like any other, whatever the depth. The
// layers are corrected independently, each from the float model's input:
// an error from upstream layers is left to their own corrections.
//
// The copies compute in float (dequantized weights), so no integer kernel
// (and no CPU's saturation) enters the measurement.
func (a *Algorithm) precise(ctx context.Context, out []*model.Stage, m, ref *model.CompressedModel, targets []target) error {
	spec := pipeline.StatSpec{Kind: pipeline.StatChannelMean, Axis: 1}
	layout := pipeline.StatsLayout{}
	aug := make([]*model.Stage, len(out))
	copies := map[int]map[string]string{} // stage → node → output of its copy
	for i, s := range ref.Models() {
		var ts []target
		for _, t := range targets {
			if t.stage == i {
				ts = append(ts, t)
			}
		}
		p, outs, err := augmented(s.Proto, out[i].Proto, ts)
		if err != nil {
			return fmt.Errorf("stage %s: %w", s.Name, err)
		}
		cp := *s
		cp.Proto = p
		aug[i] = &cp
		copies[i] = outs
		for _, t := range ts {
			layout[t.fOut] = []pipeline.StatSpec{spec}
			layout[outs[t.node]] = []pipeline.StatSpec{spec}
		}
	}
	stats, err := a.means(ctx, model.NewCompressedModel(m.Name, m.IsCascade(), aug...), layout, "bias correction")
	if err != nil {
		return err
	}
	for _, t := range targets {
		fm, err := channelMeans(stats, t.fOut, spec.Key())
		if err != nil {
			return err
		}
		qm, err := channelMeans(stats, copies[t.stage][t.node], spec.Key())
		if err != nil {
			return err
		}
		if mag := shiftMagnitude(t, fm, qm); mag > a.threshold {
			a.report.Skipped = append(a.report.Skipped, SkippedLayer{Node: t.node, Magnitude: mag})
			a.env.Log.Warn("bias correction: shift above threshold, bias left as it is", "node", t.node, "magnitude", mag, "threshold", a.threshold)
			continue
		}
		shift, err := correct(t, fm, qm)
		if err != nil {
			return fmt.Errorf("node %q: %w", t.node, err)
		}
		a.report.Layers = append(a.report.Layers, LayerShift{Node: t.node, MaxAbsShift: shift})
	}
	return nil
}

// SkippedLayer is a layer BiasCorrection left as it was: its shift's
// magnitude (largest |shift| over largest |bias|) exceeded the threshold.
type SkippedLayer struct {
	Node      string  `json:"node"`
	Magnitude float64 `json:"magnitude"`
}

// shiftMagnitude is max |fm-qm| over max |bias| in output units (max
// |fm-qm| when the bias is zero). NaN counts as infinite.
func shiftMagnitude(t target, fm, qm []float64) float64 {
	n := len(t.bias.GetRawData()) / 4
	shift, bias := 0.0, 0.0
	for c := range fm {
		d := math.Abs(fm[c] - qm[c])
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		shift = max(shift, d)
		if c < n {
			v, s := t.biasAt(c)
			bias = max(bias, math.Abs(float64(v)*float64(s)))
		}
	}
	if bias == 0 {
		return shift
	}
	return shift / bias
}

// augmented returns a copy of the float model f with, for each target, a
// copy of the quantized layer of q reading f's activation: the chain of
// QuantizeLinear/DequantizeLinear nodes before its inputs, its weight
// dequantized to a float initializer, and the layer itself; every copied
// name is prefixed with "bias_correction/<node>/". It returns the output
// tensor of each copy by node name.
func augmented(f, q *onnxpb.ModelProto, ts []target) (*onnxpb.ModelProto, map[string]string, error) {
	p := proto.Clone(f).(*onnxpb.ModelProto)
	g, qg := p.GetGraph(), q.GetGraph()
	known := map[string]bool{} // tensors of f
	for _, v := range g.GetInput() {
		known[v.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		known[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.Output {
			known[o] = true
		}
	}
	qInits := map[string]*onnxpb.TensorProto{}
	for _, t := range qg.GetInitializer() {
		qInits[t.GetName()] = t
	}
	qProd := map[string]*onnxpb.NodeProto{}
	for _, n := range qg.GetNode() {
		for _, o := range n.Output {
			qProd[o] = n
		}
	}
	outs := map[string]string{}
	for _, t := range ts {
		qn := nodeNamed(qg, t.node)
		if qn == nil || len(qn.Input) < 3 {
			return nil, nil, fmt.Errorf("node %q: not in the quantized model", t.node)
		}
		prefix := "bias_correction/" + t.node + "/"
		copied := map[string]string{}
		var visit func(tensor string) (string, error)
		visit = func(tensor string) (string, error) {
			if r, ok := copied[tensor]; ok {
				return r, nil
			}
			var r string
			switch n := qProd[tensor]; {
			case qInits[tensor] != nil:
				init := proto.Clone(qInits[tensor]).(*onnxpb.TensorProto)
				r = prefix + tensor
				init.Name = proto.String(r)
				g.Initializer = append(g.Initializer, init)
			case n != nil && n.GetDomain() == "" && (n.GetOpType() == "QuantizeLinear" || n.GetOpType() == "DequantizeLinear"):
				cp := proto.Clone(n).(*onnxpb.NodeProto)
				cp.Name = proto.String(prefix + n.GetName())
				for k, in := range n.Input {
					if in == "" {
						continue
					}
					var err error
					if cp.Input[k], err = visit(in); err != nil {
						return "", err
					}
				}
				for k, o := range n.Output {
					cp.Output[k] = prefix + o
					copied[o] = cp.Output[k]
				}
				g.Node = append(g.Node, cp)
				r = copied[tensor]
			case known[tensor]:
				r = tensor // the float model's activation
			default:
				return "", fmt.Errorf("node %q: input %q is neither a constant, a Q/DQ node's output nor a tensor of the float model", t.node, tensor)
			}
			copied[tensor] = r
			return r, nil
		}
		layer := proto.Clone(qn).(*onnxpb.NodeProto)
		layer.Name = proto.String(prefix + qn.GetName())
		for k, in := range qn.Input {
			if in == "" {
				continue
			}
			if k == 1 { // the weight, dequantized to float here
				d := qProd[in]
				if d == nil || d.GetOpType() != "DequantizeLinear" || qInits[d.Input[0]] == nil {
					return nil, nil, fmt.Errorf("node %q: weight %q is not a dequantized constant", t.node, in)
				}
				w, err := dequantize(d, qInits[d.Input[0]], qInits)
				if err != nil {
					return nil, nil, fmt.Errorf("node %q: weight: %w", t.node, err)
				}
				w.Name = proto.String(prefix + in)
				g.Initializer = append(g.Initializer, w)
				layer.Input[k] = w.GetName()
				continue
			}
			var err error
			if layer.Input[k], err = visit(in); err != nil {
				return nil, nil, err
			}
		}
		layer.Output = []string{prefix + "output"}
		g.Node = append(g.Node, layer)
		outs[t.node] = layer.Output[0]
	}
	return p, outs, nil
}
