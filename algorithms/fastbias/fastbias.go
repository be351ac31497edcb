package fastbias

import (
	"context"
	"fmt"
	"log/slog"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// Name is the algorithm's POT name.
const Name = "FastBiasCorrection"

func init() {
	pipeline.RegisterAlgorithmParams(Name, New)
}

// Params are FastBiasCorrection's parameters.
type Params struct {
	StatSubsetSize *int   `json:"stat_subset_size"`
	StatBatchSize  int    `json:"stat_batch_size"`
	ShuffleData    bool   `json:"shuffle_data"`
	Seed           uint64 `json:"seed"`
	// Mode is "fast" (the default, POT's FastBiasCorrection: every layer
	// corrected from the float model's mean input, no pass of its own when
	// a quantizer collected Layout's statistics) or "sequential" (each
	// layer measured on the whole model with every earlier correction
	// applied: one pass over the subset per layer).
	Mode string `json:"mode"`
}

// The modes.
const (
	ModeFast       = "fast"
	ModeSequential = "sequential"
)

// Algorithm shifts the int32 bias of every quantized Conv and Gemm so that
// the layer's mean output per channel, over the calibration subset, equals
// the float model's: bias_c += mean_fp32_c - mean_int8_c.
type Algorithm struct {
	p      Params
	env    pipeline.AlgorithmEnv
	report Report
	// name is Name, or BiasCorrectionName; threshold is BiasCorrection's.
	name      string
	threshold float64
}

// Report lists the corrected layers.
type Report struct {
	Layers []LayerShift `json:"layers"`
	// Skipped lists the layers BiasCorrection left as they were.
	Skipped []SkippedLayer `json:"skipped,omitempty"`
}

// LayerShift is one layer's correction.
type LayerShift struct {
	Node string `json:"node"`
	// MaxAbsShift is the largest |shift| over channels, in output units.
	MaxAbsShift float64 `json:"max_abs_shift"`
}

// New builds the algorithm.
func New(p Params, env pipeline.AlgorithmEnv) (*Algorithm, error) {
	if p.StatSubsetSize != nil && *p.StatSubsetSize < 1 {
		return nil, fmt.Errorf("stat_subset_size: %d, want at least 1", *p.StatSubsetSize)
	}
	if p.StatBatchSize < 0 {
		return nil, fmt.Errorf("stat_batch_size: %d, want at least 1", p.StatBatchSize)
	}
	switch p.Mode {
	case "":
		p.Mode = ModeFast
	case ModeFast, ModeSequential:
	default:
		return nil, fmt.Errorf("mode: %q, want %q or %q", p.Mode, ModeFast, ModeSequential)
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	if env.Engine == nil {
		return nil, fmt.Errorf("%s needs an engine", Name)
	}
	return &Algorithm{p: p, env: env, name: Name}, nil
}

// Name is "FastBiasCorrection" or "BiasCorrection".
func (a *Algorithm) Name() string { return a.name }

// Report returns the corrections of the last Run.
func (a *Algorithm) Report() any { return a.report }

// target is a quantized layer with an int32 bias.
type target struct {
	stage      int // index of its stage in the cascade
	node       string
	qOut, fOut string
	bias       *onnxpb.TensorProto // the int32 initializer in the quantized copy
	scales     []float32
}

// OwnPasses reports whether the algorithm needs passes of its own after
// quantization (sequential mode, BiasCorrection): a quantizer then need not
// collect Layout's statistics for it.
func (a *Algorithm) OwnPasses() bool { return a.p.Mode != ModeFast }

// Run corrects the biases of m, which must carry its float Reference. In
// fast mode it collects Layout's statistics in one pass over the float
// model; RunWithStats reuses a quantizer's.
func (a *Algorithm) Run(ctx context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	return a.RunWithStats(ctx, m, nil)
}

// RunWithStats is Run with the float model's statistics of Layout(m.Reference)
// already collected (nil: collect them). Sequential mode ignores stats.
func (a *Algorithm) RunWithStats(ctx context.Context, m *model.CompressedModel, stats *reduce.Set) (*model.CompressedModel, error) {
	ref := m.Reference
	if ref == nil {
		return nil, fmt.Errorf("the model is not quantized: put %s after MinMaxQuantization, or use DefaultQuantization", a.name)
	}
	a.report = Report{}
	out := make([]*model.Stage, len(m.Models()))
	var targets []target
	fLayout := pipeline.StatsLayout{}
	spec := pipeline.StatSpec{Kind: pipeline.StatChannelMean, Axis: 1}
	for i, s := range m.Models() {
		cp := *s
		cp.Proto = proto.Clone(s.Proto).(*onnxpb.ModelProto)
		out[i] = &cp
		ts, err := findTargets(cp.Proto, ref.Models()[i].Proto)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		for k := range ts {
			ts[k].stage = i
			fLayout[ts[k].fOut] = []pipeline.StatSpec{spec}
		}
		targets = append(targets, ts...)
	}
	result := model.NewCompressedModel(m.Name, m.IsCascade(), out...)
	result.Reference = ref
	if len(targets) == 0 {
		return result, nil
	}
	if a.p.Mode == modePrecise {
		if err := a.precise(ctx, out, m, ref, targets); err != nil {
			return nil, err
		}
		return result, nil
	}
	if a.p.Mode == ModeFast {
		if stats == nil {
			var err error
			if stats, err = a.means(ctx, ref, Layout(ref), "bias correction statistics"); err != nil {
				return nil, err
			}
		}
		if err := a.fastCorrect(ctx, out, ref, targets, stats); err != nil {
			return nil, err
		}
		return result, nil
	}
	fStats, err := a.means(ctx, ref, fLayout, "bias correction (FP32)")
	if err != nil {
		return nil, err
	}
	// Layers are corrected one at a time, in graph order, each against the
	// model with every earlier correction applied: correcting them all from
	// one pass would count an upstream layer's error twice, once in its own
	// bias and again in every layer downstream of it.
	for i, t := range targets {
		// The INT8 means are measured on a simulation (see simulated), so
		// that neither the correction nor the output model depends on the
		// calibrating CPU's integer kernels.
		sims := make([]*model.Stage, len(out))
		for j, s := range out {
			node := ""
			if j == t.stage {
				node = t.node
			}
			cp := *s
			if cp.Proto, err = simulated(s.Proto, node); err != nil {
				return nil, fmt.Errorf("stage %s: %w", s.Name, err)
			}
			sims[j] = &cp
		}
		sim := model.NewCompressedModel(m.Name, m.IsCascade(), sims...)
		qStats, err := a.means(ctx, sim, pipeline.StatsLayout{t.qOut: {spec}},
			fmt.Sprintf("bias correction %d/%d", i+1, len(targets)))
		if err != nil {
			return nil, err
		}
		fm, err := channelMeans(fStats, t.fOut, spec.Key())
		if err != nil {
			return nil, err
		}
		qm, err := channelMeans(qStats, t.qOut, spec.Key())
		if err != nil {
			return nil, err
		}
		shift, err := correct(t, fm, qm)
		if err != nil {
			return nil, fmt.Errorf("node %q: %w", t.node, err)
		}
		a.report.Layers = append(a.report.Layers, LayerShift{Node: t.node, MaxAbsShift: shift})
	}
	return result, nil
}

func (a *Algorithm) means(ctx context.Context, m *model.CompressedModel, layout pipeline.StatsLayout, stage string) (*reduce.Set, error) {
	size := minmax.DefaultStatSubsetSize
	if a.p.StatSubsetSize != nil {
		size = *a.p.StatSubsetSize
	}
	idx := minmax.Subset(a.env.DataLen, size, a.p.ShuffleData, a.p.Seed)
	if err := a.env.Engine.SetModel(ctx, m); err != nil {
		return nil, fmt.Errorf("%s: %w", stage, err)
	}
	opts := pipeline.PredictOptions{StatsLayout: layout, Sampler: pipeline.NewBatchSampler(a.env.DataLen, max(a.p.StatBatchSize, 1), idx)}
	if a.env.Progress != nil {
		opts.Progress = func(done, total int) { a.env.Progress(stage, done, total) }
	}
	res, err := a.env.Engine.Predict(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stage, err)
	}
	return res.Stats, nil
}

// channelMeans averages the per-sample channel means in sample-index order.
func channelMeans(s *reduce.Set, tensor, key string) ([]float64, error) {
	p := s.Get(tensor, key)
	if p == nil || p.Len() == 0 {
		return nil, fmt.Errorf("tensor %q: no statistics", tensor)
	}
	out := make([]float64, p.Dim())
	for i := range p.Len() {
		_, v := p.At(i)
		for c, x := range v {
			out[c] += x
		}
	}
	for c := range out {
		out[c] /= float64(p.Len())
	}
	return out, nil
}

// findTargets lists the Conv/Gemm nodes of q whose bias is an int32
// DequantizeLinear, with the matching output in the float model f.
func findTargets(q, f *onnxpb.ModelProto) ([]target, error) {
	fOut := map[string]string{}
	for _, n := range f.GetGraph().GetNode() {
		if len(n.Output) > 0 {
			fOut[n.GetName()] = n.Output[0]
		}
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range q.GetGraph().GetInitializer() {
		inits[t.GetName()] = t
	}
	dq := map[string]*onnxpb.NodeProto{}
	for _, n := range q.GetGraph().GetNode() {
		if n.GetOpType() == "DequantizeLinear" && len(n.Output) == 1 {
			dq[n.Output[0]] = n
		}
	}
	var out []target
	for _, n := range q.GetGraph().GetNode() {
		op := n.GetOpType()
		if (op != "Conv" && op != "Gemm") || len(n.Input) < 3 || n.GetName() == "" {
			continue
		}
		d := dq[n.Input[2]]
		if d == nil || len(d.Input) < 2 {
			continue
		}
		b, sc := inits[d.Input[0]], inits[d.Input[1]]
		if b == nil || sc == nil || b.GetDataType() != int32(onnxpb.TensorProto_INT32) {
			continue
		}
		fo, ok := fOut[n.GetName()]
		if !ok {
			return nil, fmt.Errorf("node %q is not in the float reference model", n.GetName())
		}
		scales, err := model.TensorFloat32(sc)
		if err != nil {
			return nil, fmt.Errorf("node %q: bias scale: %w", n.GetName(), err)
		}
		out = append(out, target{node: n.GetName(), qOut: n.Output[0], fOut: fo, bias: b, scales: scales})
	}
	return out, nil
}

// biasAt returns channel c's int32 bias and its scale (per tensor or per
// channel).
func (t target) biasAt(c int) (int32, float32) {
	raw := t.bias.GetRawData()
	v := int32(uint32(raw[4*c]) | uint32(raw[4*c+1])<<8 | uint32(raw[4*c+2])<<16 | uint32(raw[4*c+3])<<24)
	if len(t.scales) == len(raw)/4 {
		return v, t.scales[c]
	}
	return v, t.scales[0]
}

// correct adds fm-qm to the int32 bias in place and returns max |shift|.
func correct(t target, fm, qm []float64) (float64, error) {
	raw := t.bias.GetRawData()
	n := len(raw) / 4
	if len(fm) != n || len(qm) != n {
		return 0, fmt.Errorf("bias has %d channels, statistics %d and %d", n, len(fm), len(qm))
	}
	maxShift := 0.0
	out := make([]byte, len(raw))
	for c := range n {
		v, s := t.biasAt(c)
		shift := fm[c] - qm[c]
		if math.IsNaN(shift) || math.IsInf(shift, 0) {
			return 0, fmt.Errorf("channel %d: mean output is not finite", c)
		}
		maxShift = max(maxShift, math.Abs(shift))
		nv := math.RoundToEven(float64(v) + shift/float64(s))
		nv = max(min(nv, math.MaxInt32), math.MinInt32)
		u := uint32(int32(nv))
		out[4*c], out[4*c+1], out[4*c+2], out[4*c+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	t.bias.RawData = out
	return maxShift, nil
}
