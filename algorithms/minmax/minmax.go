package minmax

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/algorithms/qmath"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// Name is the algorithm's POT name.
const Name = "MinMaxQuantization"

func init() {
	pipeline.RegisterAlgorithmParams(Name, New)
}

// Algorithm is MinMaxQuantization: it collects activation ranges on a
// calibration subset and writes a QDQ model with int8 per-channel weights,
// 8-bit activations and int32 biases.
type Algorithm struct {
	params Params
	r      resolved
	env    pipeline.AlgorithmEnv
	report Report
	// last is what Run collected, kept for Requantize (reuse.go).
	last *collected
	// extra lists more statistics for the same pass (AddStats,
	// AddLayerStats).
	extra []func(fp *model.CompressedModel, layers []string) pipeline.StatsLayout
}

// AddStats asks Run to collect, in its statistics pass, the statistics f
// lists on the prepared float model (the Reference of Run's result), so
// that an algorithm that runs after it (FastBiasCorrection) needs no pass
// of its own; Stats returns them after Run.
func (a *Algorithm) AddStats(f func(fp *model.CompressedModel) pipeline.StatsLayout) {
	a.extra = append(a.extra, func(fp *model.CompressedModel, _ []string) pipeline.StatsLayout { return f(fp) })
}

// AddLayerStats is AddStats for statistics that concern the quantized
// layers only: f also gets the names of the nodes Run quantizes (those
// QuantizedLayers lists after Run), so that the pass does not observe
// tensors only float layers read. Requantize reuses the statistics: an
// algorithm that runs after it must collect what a layer quantized then,
// and not by Run, needs.
func (a *Algorithm) AddLayerStats(f func(fp *model.CompressedModel, layers []string) pipeline.StatsLayout) {
	a.extra = append(a.extra, f)
}

// Stats returns the statistics the last Run collected (nil before Run).
func (a *Algorithm) Stats() *reduce.Set {
	if a.last == nil {
		return nil
	}
	return a.last.stats
}

// New builds the algorithm from decoded params.
func New(p Params, env pipeline.AlgorithmEnv) (*Algorithm, error) {
	r, err := p.resolve()
	if err != nil {
		return nil, err
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	if env.Engine == nil {
		return nil, fmt.Errorf("%s needs an engine", Name)
	}
	return &Algorithm{params: p, r: r, env: env}, nil
}

// Name is "MinMaxQuantization".
func (a *Algorithm) Name() string { return Name }

// Report is what MinMaxQuantization tells report.json.
type Report struct {
	Preset           string            `json:"preset"`
	CalibrationSize  int               `json:"calibration_samples"`
	RangeEstimator   [2]string         `json:"range_estimator"`
	Activations      []ActivationEntry `json:"activations"`
	Layers           []LayerEntry      `json:"layers"`
	FoldedRelus      int               `json:"folded_relus"`
	UnmatchedIgnored []string          `json:"unmatched_ignored_scope,omitempty"`
	SkippedSamples   []int             `json:"skipped_invalid_samples,omitempty"`
	// FloatOps counts, by operator, the nodes of the output that still read
	// float inputs (not every input comes from a DequantizeLinear): they run
	// in FP32 in ONNX Runtime.
	FloatOps          map[string]int    `json:"float_ops"`
	NonFiniteTensors  map[string]uint64 `json:"non_finite_values,omitempty"`
	FoldedBatchNorms  int               `json:"folded_batch_norms"`
	ConstantsUnfolded int               `json:"constants_to_initializers"`
	CastsFolded       int               `json:"half_precision_weights_widened,omitempty"`
	IdentitiesFolded  int               `json:"shared_weights_copied,omitempty"`
	// HardSwishesFused counts the exported hard-swish activations rewritten
	// as HardSigmoid and Mul, which ONNX Runtime fuses into the Conv before
	// them (Prepared.HardSwishes).
	HardSwishesFused int `json:"hardswish_rewritten,omitempty"`
	// UntypedTensors are tensors a quantized operator reads whose element
	// type fleetcal could not infer (custom-domain producers, say): they are
	// left in float rather than risk a statistic on a non-float tensor.
	UntypedTensors []string `json:"untyped_tensors_left_in_float,omitempty"`
	// SaturationFix is the saturation_fix used (defaults applied) and
	// SevenBitLayers the nodes whose weights it made 7-bit, in graph order.
	// NothingQuantized says why, when no layer was quantized.
	NothingQuantized string   `json:"nothing_quantized,omitempty"`
	SaturationFix    string   `json:"saturation_fix"`
	SevenBitLayers   []string `json:"seven_bit_weight_layers"`
	// MinMACsPerElement is min_macs_per_element (0: the cost rule is off);
	// SlowLayers the layers it left in float, and why.
	MinMACsPerElement float64     `json:"min_macs_per_element"`
	SlowLayers        []SlowLayer `json:"slower_in_int8_left_in_float,omitempty"`
}

// ActivationEntry is one quantized activation tensor.
type ActivationEntry struct {
	Tensor     string  `json:"tensor"`
	Min        float64 `json:"min"`
	Max        float64 `json:"max"`
	Scale      float32 `json:"scale"`
	ZeroPoint  int32   `json:"zero_point"`
	Type       string  `json:"type"`
	SharesWith string  `json:"shares_with,omitempty"`
}

// LayerEntry is one layer with quantized weights.
type LayerEntry struct {
	Node        string  `json:"node"`
	Op          string  `json:"op"`
	Weight      string  `json:"weight"`
	Granularity string  `json:"granularity"`
	Channels    int     `json:"channels"`
	MinScale    float32 `json:"min_scale"`
	MaxScale    float32 `json:"max_scale"`
	Bias        bool    `json:"int32_bias"`
	// WeightBits is 7 for the weights saturation_fix narrowed, else 8.
	WeightBits int `json:"weight_bits"`
}

// Report returns the details of the last Run.
func (a *Algorithm) Report() any { return a.report }

// Prepared is the float model statistics are collected on, with what
// Prepare changed to get it.
type Prepared struct {
	Model *model.CompressedModel
	// Constants, Casts and BatchNorms count the Constant nodes turned into
	// initializers, the Casts of half-precision (or double) initializers
	// folded into float32 ones, and the BatchNormalizations folded.
	Constants, Casts, BatchNorms int
	// Identities counts the Identity nodes of initializers folded into
	// initializers of their own (torch's deduplicated weights).
	Identities int
	// HardSwishes counts the exported hard-swish activations (Add, Clip,
	// Mul, Div) rewritten as HardSigmoid and Mul (model.FuseHardSwish).
	HardSwishes int
}

// Prepare returns the float model statistics are collected on: constants
// as initializers, half-precision weights behind a Cast widened to float32
// initializers, BatchNormalization folded, opset 13, and in a cascade every
// internal name prefixed with "<stage>/" so stages cannot collide.
func Prepare(m *model.CompressedModel) (Prepared, error) {
	var stages []*model.Stage
	var out Prepared
	for _, s := range m.Models() {
		p := proto.Clone(s.Proto).(*onnxpb.ModelProto)
		c, err := model.ConstantsToInitializers(p)
		if err != nil {
			return Prepared{}, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		casts, err := model.FoldConstantCasts(p)
		if err != nil {
			return Prepared{}, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		ids, err := model.FoldConstantIdentities(p)
		if err != nil {
			return Prepared{}, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		out.Identities += ids
		// Opset 13 is the first with per-axis QuantizeLinear; newer models
		// keep their opset.
		if model.DefaultOpset(p) < 13 {
			if err := model.UpgradeOpset(p, 13); err != nil {
				return Prepared{}, fmt.Errorf("stage %s: %w", s.Name, err)
			}
		}
		b, err := model.FoldBatchNorm(p)
		if err != nil {
			return Prepared{}, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		hs, err := model.FuseHardSwish(p)
		if err != nil {
			return Prepared{}, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		out.HardSwishes += hs
		if m.IsCascade() {
			model.PrefixNames(p, s.Name+"/")
		}
		out.Constants += c
		out.Casts += casts
		out.BatchNorms += b
		cp := *s
		cp.Proto = p
		stages = append(stages, &cp)
	}
	out.Model = model.NewCompressedModel(m.Name, m.IsCascade(), stages...)
	return out, nil
}

// Subset returns the calibration sample indices: the first n of total, or
// n drawn at random with seed when shuffle is set; sorted.
func Subset(total, n int, shuffle bool, seed uint64) []int {
	n = min(n, total)
	var idx []int
	if shuffle {
		idx = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)).Perm(total)[:n]
		slices.Sort(idx)
	} else {
		idx = make([]int, n)
		for i := range idx {
			idx[i] = i
		}
	}
	return idx
}

// Run quantizes m.
func (a *Algorithm) Run(ctx context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	prep, err := Prepare(m)
	if err != nil {
		return nil, err
	}
	fp := prep.Model
	a.report = Report{Preset: a.presetName(), FoldedBatchNorms: prep.BatchNorms, ConstantsUnfolded: prep.Constants,
		CastsFolded: prep.Casts, IdentitiesFolded: prep.Identities, HardSwishesFused: prep.HardSwishes, RangeEstimator: [2]string{describe(a.r.minEst), describe(a.r.maxEst)},
		SaturationFix: a.r.saturationFix, MinMACsPerElement: a.r.minMACs}

	a.last = nil
	plans := make([]plan, len(fp.Models()))
	orders := make([][]*onnxpb.NodeProto, len(fp.Models()))
	types := make([]*model.Types, len(fp.Models()))
	shapes := make([]*model.Types, len(fp.Models()))
	layout := pipeline.StatsLayout{}
	minSpec, maxSpec := a.r.minEst.StatSpec(), a.r.maxEst.StatSpec()
	for i, s := range fp.Models() {
		order, err := model.NewGraph(s.Proto).TopoOrder()
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		orders[i] = order
		types[i] = model.InferTypes(s.Proto)
		if a.r.minMACs > 0 && i == 0 && !fp.IsCascade() {
			if shapes[i], err = a.sampleShapes(ctx, s.Proto); err != nil {
				return nil, err
			}
		}
		plans[i] = makePlan(s.Proto.GetGraph(), types[i], order, a.planOptionsFor(nil, shapes[i]))
		a.report.UntypedTensors = append(a.report.UntypedTensors, plans[i].untyped...)
		for _, act := range plans[i].activations {
			if act.shares == "" {
				layout[act.name] = []pipeline.StatSpec{minSpec, maxSpec}
				if a.r.hist != nil {
					layout[act.name] = append(layout[act.name], histRangeSpec)
				}
			}
		}
		a.report.UnmatchedIgnored = append(a.report.UnmatchedIgnored, plans[i].unmatchedScope...)
	}
	if len(a.report.UntypedTensors) > 0 {
		a.env.Log.Warn("tensors of unknown element type are left in float", "tensors", a.report.UntypedTensors)
	}
	layers, slow := 0, 0
	for _, pl := range plans {
		layers += len(pl.layers)
		slow += len(pl.slow)
	}
	if layers == 0 && slow > 0 {
		a.report.NothingQuantized = fmt.Sprintf("every layer is slower in INT8 than in float by the cost rule (%d left in float, min_macs_per_element %g; 0 turns the rule off)", slow, a.r.minMACs)
	} else if layers == 0 {
		// Say why: the layers may all sit in If/Loop/Scan bodies, which
		// are not quantized.
		inside, notF32 := 0, 0
		for i, s := range fp.Models() {
			inside += quantizableInSubgraphs(s.Proto.GetGraph(), 0)
			for _, n := range s.Proto.GetGraph().GetNode() {
				if weightedOps[n.GetOpType()] && len(n.GetInput()) > 0 && !types[i].IsFloat32(n.GetInput()[0]) {
					notF32++
				}
			}
		}
		a.report.NothingQuantized = fmt.Sprintf("no float32 layer to quantize: %d Conv/Gemm/MatMul nodes read tensors of another type (float16 parts stay as they are), %d sit inside If/Loop/Scan bodies", notF32, inside)
	}
	if len(a.report.UnmatchedIgnored) > 0 {
		a.env.Log.Warn("ignored scope names match no node", "names", a.report.UnmatchedIgnored)
	}

	ranges := maps.Clone(layout)
	var quantized []string
	if len(a.extra) > 0 {
		quantized = layerNames(plans)
	}
	for _, f := range a.extra {
		for tensor, specs := range f(fp, quantized) {
			for _, spec := range specs {
				if !slices.ContainsFunc(layout[tensor], func(s pipeline.StatSpec) bool { return s.Key() == spec.Key() }) {
					layout[tensor] = append(slices.Clip(layout[tensor]), spec)
				}
			}
		}
	}
	stats, n, err := a.collect(ctx, fp, layout)
	if err != nil {
		return nil, err
	}
	if a.report.NothingQuantized != "" {
		// Warned once the statistics pass worked: a run that fails logs
		// only its error.
		a.env.Log.Warn("nothing was quantized: the output model is the float model", "why", a.report.NothingQuantized)
	}
	a.report.CalibrationSize = n
	if len(stats.NonFinite) > 0 {
		a.report.NonFiniteTensors = stats.NonFinite
		a.env.Log.Warn("activations held NaN or Inf values; they were left out of the ranges", "tensors", len(stats.NonFinite))
	}

	if a.r.hist != nil {
		if err := a.collectHistograms(ctx, fp, ranges, stats); err != nil {
			return nil, err
		}
	}

	a.last = &collected{fp: fp, orders: orders, types: types, shapes: shapes, stats: stats, plans: plans}
	return a.build(plans)
}

// histRangeSpec is the first pass' statistic that fixes the histogram's
// edges: max |x| over every sample, a running maximum.
var histRangeSpec = pipeline.StatSpec{Kind: pipeline.StatAbsMax, Fold: reduce.FoldMax}

// histSpec names a tensor's |x| histogram statistic for the second pass:
// edges [0, max |x|) from the first pass, as an exact float64 maximum.
func (a *Algorithm) histSpec(stats *reduce.Set, tensor string) (pipeline.StatSpec, bool) {
	spec := pipeline.StatSpec{Kind: pipeline.StatAbsHistogram, Bins: a.r.hist.Bins}
	if _, err := qmath.Bound(a.r.minEst, stats, tensor); err != nil {
		return spec, false
	}
	mx := stats.Fold(tensor, histRangeSpec.Key())
	if mx == nil || mx.Count() == 0 {
		return spec, false
	}
	spec.Hi, _ = mx.Value()
	if !(spec.Hi > 0) || math.IsInf(spec.Hi, 0) {
		return spec, false
	}
	// The top edge is exclusive: widen it by one ulp so max |x| counts.
	spec.Hi = math.Nextafter(spec.Hi, math.Inf(1))
	return spec, true
}

// collectHistograms runs the second pass: a histogram of |x| of every
// activation with statistics, over the edges the first pass fixed.
func (a *Algorithm) collectHistograms(ctx context.Context, fp *model.CompressedModel, first pipeline.StatsLayout, stats *reduce.Set) error {
	layout := pipeline.StatsLayout{}
	for _, tensor := range slices.Sorted(maps.Keys(first)) {
		if spec, ok := a.histSpec(stats, tensor); ok {
			layout[tensor] = []pipeline.StatSpec{spec}
		}
	}
	idx := Subset(a.env.DataLen, a.r.subsetSize, a.params.ShuffleData, a.params.Seed)
	opts := pipeline.PredictOptions{StatsLayout: layout, Sampler: pipeline.NewBatchSampler(a.env.DataLen, a.r.batchSize, idx)}
	if a.env.Progress != nil {
		opts.Progress = func(done, total int) { a.env.Progress("calibration histograms", done, total) }
	}
	res, err := a.env.Engine.Predict(ctx, opts)
	if err != nil {
		return fmt.Errorf("histograms: %w", err)
	}
	return stats.Merge(res.Stats)
}

// histMagnitude is T of the histogram estimator for tensor.
func (a *Algorithm) histMagnitude(stats *reduce.Set, tensor string) (float64, bool, error) {
	spec, ok := a.histSpec(stats, tensor)
	if !ok {
		return 0, false, nil
	}
	h := stats.Hist(tensor, spec.Key())
	if h == nil {
		return 0, false, fmt.Errorf("tensor %q: no histogram was collected", tensor)
	}
	var t float64
	var err error
	if a.r.hist.Type == "percentile" {
		t, err = reduce.Percentile(h, a.r.hist.Percentile)
	} else {
		t, err = reduce.EntropyThreshold(h, 128)
	}
	if err != nil {
		return 0, false, fmt.Errorf("tensor %q: %s: %w", tensor, a.r.hist.Type, err)
	}
	return t, true, nil
}

func (a *Algorithm) presetName() string {
	if a.params.Preset == "" {
		return "performance"
	}
	return a.params.Preset
}

// collect runs the statistics pass on the prepared float model.
func (a *Algorithm) collect(ctx context.Context, fp *model.CompressedModel, layout pipeline.StatsLayout) (*reduce.Set, int, error) {
	if a.env.DataLen == 0 {
		return nil, 0, fmt.Errorf("the calibration data set is empty")
	}
	if a.r.subsetSize > a.env.DataLen {
		a.env.Log.Warn("stat_subset_size is larger than the data set; calibrating on every sample",
			"stat_subset_size", a.r.subsetSize, "samples", a.env.DataLen)
	}
	idx := Subset(a.env.DataLen, a.r.subsetSize, a.params.ShuffleData, a.params.Seed)
	if err := a.env.Engine.SetModel(ctx, fp); err != nil {
		return nil, 0, fmt.Errorf("statistics model: %w", err)
	}
	opts := pipeline.PredictOptions{
		StatsLayout: layout,
		Sampler:     pipeline.NewBatchSampler(a.env.DataLen, a.r.batchSize, idx),
	}
	if a.env.Progress != nil {
		opts.Progress = func(done, total int) { a.env.Progress("calibration statistics", done, total) }
	}
	res, err := a.env.Engine.Predict(ctx, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("statistics: %w", err)
	}
	if res.Stats == nil {
		res.Stats = reduce.NewSet()
	}
	if len(res.Skipped) > 0 {
		a.report.SkippedSamples = res.Skipped
		a.env.Log.Warn("calibration samples with NaN or Inf were skipped", "count", len(res.Skipped), "first", res.Skipped[0])
	}
	if res.Samples == 0 {
		return nil, 0, fmt.Errorf("no valid calibration sample: all %d were skipped as invalid", len(res.Skipped))
	}
	return res.Stats, res.Samples, nil
}

type actParams struct {
	scale float32
	zp    int32
	typ   onnxpb.TensorProto_DataType
}

// apply writes the QDQ model for one stage.
func (a *Algorithm) apply(p *onnxpb.ModelProto, pl plan, stats *reduce.Set) error {
	params := map[string]actParams{}
	for _, act := range pl.activations {
		if act.shares != "" {
			continue
		}
		lo, hi, err := qmath.ActivationRange(a.r.minEst, a.r.maxEst, stats, act.name)
		if errors.Is(err, qmath.ErrEmpty) {
			return fmt.Errorf("tensor %q: no statistics were collected (every value NaN or Inf?)", act.name)
		}
		if err != nil {
			return fmt.Errorf("tensor %q: %w", act.name, err)
		}
		if act.nonNegative {
			lo = max(lo, 0)
		}
		if a.r.hist != nil {
			t, ok, err := a.histMagnitude(stats, act.name)
			if err != nil {
				return err
			}
			if ok {
				if a.r.actSymmetric {
					hi = t
				} else {
					lo, hi = max(lo, -t), min(hi, t)
				}
			}
		}
		spec := qmath.ActivationSpec(a.r.actSymmetric, lo >= 0)
		if l := a.r.actLevels; l != nil {
			spec.LevelLow, spec.LevelHigh = l[0], l[1]
		}
		cmin := lo
		if a.r.actSymmetric {
			cmin = 0 // the sign comes from min, the scale from max alone
			if lo < 0 {
				lo = -hi
			}
		}
		scale, zp, err := qmath.Compute(cmin, hi, spec)
		if err != nil {
			return fmt.Errorf("tensor %q: range [%g, %g]: %w", act.name, lo, hi, err)
		}
		typ := onnxpb.TensorProto_UINT8
		if spec.StorageSigned() {
			typ = onnxpb.TensorProto_INT8
		}
		params[act.name] = actParams{scale, zp, typ}
		a.report.Activations = append(a.report.Activations, ActivationEntry{
			Tensor: act.name, Min: lo, Max: hi, Scale: scale, ZeroPoint: zp, Type: typ.String()})
	}
	for _, act := range pl.activations {
		if act.shares == "" {
			continue
		}
		src, ok := params[act.shares]
		if !ok {
			return fmt.Errorf("tensor %q: shares parameters with %q, which has none", act.name, act.shares)
		}
		params[act.name] = src
		a.report.Activations = append(a.report.Activations, ActivationEntry{
			Tensor: act.name, Scale: src.scale, ZeroPoint: src.zp, Type: src.typ.String(), SharesWith: act.shares})
	}

	for _, name := range pl.bypass {
		if err := model.BypassNode(p, name); err != nil {
			return err
		}
	}
	a.report.FoldedRelus += len(pl.bypass)
	for _, act := range pl.activations {
		ap := params[act.name]
		if err := model.InsertQDQ(p, act.name, model.QuantParams{
			Scale: []float32{ap.scale}, ZeroPoint: []int32{ap.zp}, Type: ap.typ}); err != nil {
			return err
		}
	}
	if err := a.quantizeWeights(p, pl, params); err != nil {
		return err
	}
	a.countFloatOps(p)
	return nil
}

// countFloatOps records the nodes that keep float inputs.
func (a *Algorithm) countFloatOps(p *onnxpb.ModelProto) {
	if a.report.FloatOps == nil {
		a.report.FloatOps = map[string]int{}
	}
	dq := map[string]bool{}
	inits := map[string]bool{}
	for _, t := range p.GetGraph().GetInitializer() {
		inits[t.GetName()] = true
	}
	for _, n := range p.GetGraph().GetNode() {
		if n.GetOpType() == "DequantizeLinear" {
			for _, o := range n.Output {
				dq[o] = true
			}
		}
	}
	for _, n := range p.GetGraph().GetNode() {
		op := n.GetOpType()
		if op == "QuantizeLinear" || op == "DequantizeLinear" {
			continue
		}
		for _, in := range n.Input {
			if in != "" && !inits[in] && !dq[in] {
				a.report.FloatOps[op]++
				break
			}
		}
	}
}

func (a *Algorithm) quantizeWeights(p *onnxpb.ModelProto, pl plan, params map[string]actParams) error {
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range p.GetGraph().GetInitializer() {
		inits[t.GetName()] = t
	}
	done := map[string]bool{}
	wspec := qmath.WeightSpec(false)
	if l := a.r.weightLevels; l != nil {
		wspec.Bits, wspec.LevelLow, wspec.LevelHigh = 8, l[0], l[1]
	}
	if err := wspec.Validate(); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	// A weight shared by several layers is 7-bit when any of them needs it.
	sevenBit := map[string]bool{}
	for _, l := range pl.layers {
		if l.weight != "" && (a.r.saturationFix == SaturationFixAll || a.r.saturationFix == SaturationFixFirstLayer && l.first) {
			sevenBit[l.weight] = true
		}
	}
	for _, l := range pl.layers {
		if l.weight == "" || done[l.weight] {
			continue
		}
		done[l.weight] = true
		w := inits[l.weight]
		data, err := model.TensorFloat32(w)
		if err != nil {
			return fmt.Errorf("node %q: weight %q: %w", l.node.GetName(), l.weight, err)
		}
		axis := -1
		if l.perChannel {
			axis = l.weightAxis
		}
		spec := wspec
		if sevenBit[l.weight] {
			spec = qmath.WeightSpec(true)
			a.report.SevenBitLayers = append(a.report.SevenBitLayers, l.node.GetName())
		}
		q, scales, zps, err := qmath.QuantizeWeights(data, w.Dims, axis, spec)
		if err != nil {
			return fmt.Errorf("node %q: weight %q: %w", l.node.GetName(), l.weight, err)
		}
		qp := model.QuantParams{Scale: scales, ZeroPoint: zps, Type: onnxpb.TensorProto_INT8, Axis: max(axis, 0)}
		if err := model.QuantizeInitializer(p, l.weight, q, nil, qp); err != nil {
			return err
		}
		entry := LayerEntry{Node: l.node.GetName(), Op: l.node.GetOpType(), Weight: l.weight,
			Granularity: "pertensor", Channels: len(scales), MinScale: slices.Min(scales), MaxScale: slices.Max(scales),
			WeightBits: spec.Bits}
		if l.perChannel {
			entry.Granularity = "perchannel"
		}
		in, ok := params[l.input]
		if l.bias != "" && ok && !done[l.bias] {
			done[l.bias] = true
			b, err := model.TensorFloat32(inits[l.bias])
			if err != nil {
				return fmt.Errorf("node %q: bias %q: %w", l.node.GetName(), l.bias, err)
			}
			ws := scales
			if len(ws) == 1 && len(b) > 1 {
				ws = slices.Repeat(scales, len(b))
			}
			if len(ws) != len(b) {
				return fmt.Errorf("node %q: bias %q has %d values for %d weight channels", l.node.GetName(), l.bias, len(b), len(ws))
			}
			qb, bscales, err := qmath.QuantizeBias(b, in.scale, ws)
			if err != nil {
				return fmt.Errorf("node %q: bias %q: %w", l.node.GetName(), l.bias, err)
			}
			bp := model.QuantParams{Scale: bscales, ZeroPoint: make([]int32, len(bscales)), Type: onnxpb.TensorProto_INT32}
			if len(scales) == 1 {
				bp.Scale, bp.ZeroPoint = bscales[:1], []int32{0}
			}
			if err := model.QuantizeInitializer(p, l.bias, nil, qb, bp); err != nil {
				return err
			}
			entry.Bias = true
		}
		a.report.Layers = append(a.report.Layers, entry)
	}
	return nil
}

func opTypes(ops []IgnoredOpType) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.Type
	}
	return out
}

func describe(e qmath.Estimator) string {
	if e.OutlierProb != 0 {
		return fmt.Sprintf("%s(%g), %s", e.Type, e.OutlierProb, e.Aggregator)
	}
	return e.Type + ", " + e.Aggregator
}

// quantizableInSubgraphs counts the Conv, Gemm and MatMul nodes inside the
// sub-graphs (If branches, Loop and Scan bodies) of g's nodes, at any depth.
func quantizableInSubgraphs(g *onnxpb.GraphProto, depth int) int {
	if depth > 16 {
		return 0
	}
	n := 0
	for _, node := range g.GetNode() {
		for _, a := range node.GetAttribute() {
			gs := a.GetGraphs()
			if a.G != nil {
				gs = append(gs, a.G)
			}
			for _, sg := range gs {
				for _, inner := range sg.GetNode() {
					if weightedOps[inner.GetOpType()] {
						n++
					}
				}
				n += quantizableInSubgraphs(sg, depth+1)
			}
		}
	}
	return n
}
