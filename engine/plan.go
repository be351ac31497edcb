package engine

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// Strategy is how min/max-like statistics (min, max, abs_max, channel_min,
// channel_max) are computed. Mean and quantiles are always computed in Go
// from the whole activation.
type Strategy int

const (
	// StrategyAuto is the default: currently StrategyGo, the faster of the
	// two on BenchmarkCalibration (see bench_test.go).
	StrategyAuto Strategy = iota
	// StrategyGo exposes each observed activation as a model output and
	// reduces it in Go.
	StrategyGo
	// StrategyInGraph appends ReduceMin/ReduceMax nodes to the model, so that
	// only the small reduced tensors leave ONNX Runtime. A per-sample
	// ReduceSum detects NaN (ONNX Runtime's ReduceMin/ReduceMax skip some NaN);
	// a sample with a NaN or ±Inf is recomputed with StrategyGo so that
	// non-finite values are counted and excluded exactly.
	StrategyInGraph
)

func (s Strategy) String() string {
	switch s {
	case StrategyAuto:
		return "auto"
	case StrategyGo:
		return "go"
	case StrategyInGraph:
		return "in-graph"
	}
	return fmt.Sprintf("strategy(%d)", int(s))
}

// resolve turns StrategyAuto into the default strategy.
func (s Strategy) resolve() Strategy {
	if s == StrategyAuto {
		return StrategyGo
	}
	return s
}

// stage is one model of the engine's CompressedModel, ready to run.
type stage struct {
	name, path string
	proto      *onnxpb.ModelProto
	catalog    *tensorCatalog
	opset      int64
	inputs     []pipeline.TensorInfo
	outputs    []pipeline.TensorInfo
	plain      *Session // no statistics
}

// plan is the sessions that compute one StatsLayout with one Strategy.
type plan struct {
	stages []*stagePlan
	// exact computes the same statistics with StrategyGo and no derived
	// statistics; it reruns samples holding NaN or ±Inf when the plan
	// cannot count them itself (in-graph reductions, derived statistics).
	exactOnce sync.Once
	exact     *plan
	exactErr  error
	newExact  func() (*plan, error)
}

// stagePlan is one stage's session and the statistics read from its outputs.
type stagePlan struct {
	st      *stage
	sess    *Session
	owned   bool // sess belongs to the plan (not the stage's plain session)
	full    []fullStat
	reduced []reducedStat
	derived []derivedStat
}

// fullStat is a tensor reduced in Go: session output out, or the stage input
// named input when out < 0. keep: the per-sample results feed derived
// statistics.
type fullStat struct {
	ts    *tensorStats
	out   int
	input string
	keep  bool
}

// reducedStat is a tensor reduced in the graph: per-row min and max (out
// indices; -1 when derived from the first channel axis), per-row sum (NaN
// detector) and per-row channel min and max for each axis of ts.axes.
type reducedStat struct {
	ts       *tensorStats
	min, max int
	sum      int
	chans    []reducedChan
	keep     bool
}

type reducedChan struct{ axis, min, max int }

// derivedStat is the output of a Relu whose input src is observed too: as
// Relu is monotonic and exact, its min, max and channel min/max are those
// of src clamped at 0, so the Relu output needs not leave ONNX Runtime.
// This holds for finite values only; samples where src holds NaN or ±Inf
// are rerun with the exact plan.
type derivedStat struct {
	ts  *tensorStats
	src string
}

func (p *plan) close() {
	for _, sp := range p.stages {
		if sp.owned {
			_ = sp.sess.Close()
		}
	}
	if p.exact != nil {
		p.exact.close()
	}
}

// exactPlan returns the plan that computes the same statistics from whole
// tensors, counting NaN and ±Inf.
func (p *plan) exactPlan() (*plan, error) {
	p.exactOnce.Do(func() { p.exact, p.exactErr = p.newExact() })
	return p.exact, p.exactErr
}

// layoutKey is a canonical string for a layout and strategy.
func layoutKey(layout pipeline.StatsLayout, s Strategy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", s)
	for _, t := range slices.Sorted(maps.Keys(layout)) {
		keys := make([]string, len(layout[t]))
		for i, sp := range layout[t] {
			keys[i] = sp.Key()
		}
		slices.Sort(keys)
		fmt.Fprintf(&b, "\x00%s\x01%s", t, strings.Join(keys, "\x01"))
	}
	return b.String()
}

// buildPlan creates the sessions that compute layout with strategy s;
// derive allows derived statistics.
func buildPlan(stages []*stage, layout pipeline.StatsLayout, s Strategy, derive bool, threads int) (*plan, error) {
	perStage := make([][]*tensorStats, len(stages))
	for _, name := range slices.Sorted(maps.Keys(layout)) {
		specs := layout[name]
		if len(specs) == 0 {
			continue
		}
		ts, err := newTensorStats(name, specs)
		if err != nil {
			return nil, err
		}
		found := false
		for i, st := range stages {
			if st.catalog.kind[name] != 0 {
				if et := st.catalog.elemType[name]; !isFloat(et) {
					return nil, fmt.Errorf("%w: statistics layout: tensor %q is %s; statistics need a float32 tensor",
						ErrBadStats, name, model.ElemTypeName(et))
				}
				perStage[i] = append(perStage[i], ts)
				found = true
				break
			}
		}
		if !found {
			where := "the model"
			if len(stages) > 1 {
				where = "any stage of the cascade"
			}
			// What the name may have meant: the first output of the node
			// of that name (layouts name tensors), else the closest tensor.
			var hint string
			var tensors []string
			for _, st := range stages {
				for _, t := range slices.Sorted(maps.Keys(st.catalog.kind)) {
					if n := st.catalog.producer[t]; hint == "" && n != nil && n.GetName() == name && n.GetOutput()[0] != "" {
						hint = fmt.Sprintf(" (it is the name of a %s node: statistics layouts name tensors; its first output is %q)", n.GetOpType(), n.GetOutput()[0])
					}
					tensors = append(tensors, t)
				}
			}
			if near := model.Suggest(name, tensors); hint == "" && near != "" {
				hint = fmt.Sprintf("; did you mean %q?", near)
			}
			return nil, fmt.Errorf("%w: statistics layout: tensor %q is not in %s%s", ErrUnknownTensor, name, where, hint)
		}
	}
	p := &plan{}
	p.newExact = func() (*plan, error) { return buildPlan(stages, layout, StrategyGo, false, threads) }
	for i, st := range stages {
		sp, err := buildStagePlan(st, perStage[i], s, derive, threads)
		if err != nil {
			p.close()
			return nil, err
		}
		p.stages = append(p.stages, sp)
	}
	return p, nil
}

// reluSource returns the input of the Relu producing tensor, if any.
func (c *tensorCatalog) reluSource(tensor string) (string, bool) {
	n := c.producer[tensor]
	if n == nil || n.GetOpType() != "Relu" || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") || len(n.GetInput()) != 1 {
		return "", false
	}
	return n.GetInput()[0], true
}

// derivable picks the statistics of stats computable from another observed
// tensor: a Relu output whose input is observed (and not derived itself)
// with every channel axis it needs. It returns derived tensor → source.
func derivable(cat *tensorCatalog, stats []*tensorStats) map[string]string {
	byName := map[string]*tensorStats{}
	for _, ts := range stats {
		byName[ts.name] = ts
	}
	candidate := func(ts *tensorStats) (string, bool) {
		src, ok := cat.reluSource(ts.name)
		if !ok || !ts.reducible() || cat.kind[ts.name] != kindActivation {
			return "", false
		}
		s := byName[src]
		if s == nil || !isFloat(cat.elemType[src]) || !isFloat(cat.elemType[ts.name]) {
			return "", false
		}
		for _, a := range ts.axes {
			if !slices.Contains(s.axes, a) {
				return "", false
			}
		}
		return src, true
	}
	out := map[string]string{}
	for _, ts := range stats {
		if src, ok := candidate(ts); ok {
			if _, srcDerived := candidate(byName[src]); !srcDerived {
				out[ts.name] = src
			}
		}
	}
	return out
}

func isFloat(et int32) bool { return et == 0 || et == onnxFloat }

func buildStagePlan(st *stage, stats []*tensorStats, s Strategy, derive bool, threads int) (*stagePlan, error) {
	sp := &stagePlan{st: st}
	cat := st.catalog
	derived := map[string]string{}
	if derive {
		derived = derivable(cat, stats)
	}
	sources := map[string]bool{}
	for _, src := range derived {
		sources[src] = true
	}
	outputs := slices.Clone(st.outputs)
	outIndex := map[string]int{}
	for i, o := range outputs {
		outIndex[o.Name] = i
	}
	var extraOutputs []*onnxpb.ValueInfoProto
	var extraInits []*onnxpb.TensorProto
	after := map[string][]*onnxpb.NodeProto{}
	addOutput := func(name string, et int32) int {
		extraOutputs = append(extraOutputs, model.TensorOutput(name, et))
		outputs = append(outputs, pipeline.TensorInfo{Name: name, DType: pipeline.DType(max(et, onnxFloat))})
		outIndex[name] = len(outputs) - 1
		return len(outputs) - 1
	}
	used := map[string]bool{}
	unique := func(prefix string) string {
		name := prefix
		for i := 1; cat.kind[name] != 0 || used[name]; i++ {
			name = fmt.Sprintf("%s_%d", prefix, i)
		}
		used[name] = true
		return name
	}
	shapes := map[int]string{} // Reshape targets by channel axis
	reshape := func(tensor string, axis int, prefix string) string {
		target, ok := shapes[axis]
		if !ok {
			dims := make([]int64, axis+2) // [0 ... 0 -1]: keep axes 0..axis, flatten the rest
			dims[len(dims)-1] = -1
			target = unique(fmt.Sprintf("fleetcal_stats/shape%d", axis))
			extraInits = append(extraInits, model.Int64Initializer(target, dims))
			shapes[axis] = target
		}
		out := unique(fmt.Sprintf("%s/reshape%d", prefix, axis))
		after[tensor] = append(after[tensor], model.NewNode("Reshape", out, []string{tensor, target}, []string{out}))
		return out
	}
	reduce := func(tensor, op, in, out string, axes []int64) int {
		axesInput := int64(18)
		if op == "ReduceSum" {
			axesInput = 13
		}
		out = unique(out)
		after[tensor] = append(after[tensor], reduceNode(st.opset, axesInput, op, in, out, axes, &extraInits))
		return addOutput(out, onnxFloat)
	}
	for k, ts := range stats {
		if src, ok := derived[ts.name]; ok {
			sp.derived = append(sp.derived, derivedStat{ts: ts, src: src})
			continue
		}
		keep := sources[ts.name]
		kind := cat.kind[ts.name]
		if kind == kindInput {
			sp.full = append(sp.full, fullStat{ts: ts, out: -1, input: ts.name, keep: keep})
			continue
		}
		if i, ok := outIndex[ts.name]; ok {
			sp.full = append(sp.full, fullStat{ts: ts, out: i, keep: keep})
			continue
		}
		et := cat.elemType[ts.name]
		if s != StrategyInGraph || !ts.reducible() || kind != kindActivation || !isFloat(et) {
			sp.full = append(sp.full, fullStat{ts: ts, out: addOutput(ts.name, et), keep: keep})
			continue
		}
		prefix := unique(fmt.Sprintf("fleetcal_stats/%d", k))
		rs := reducedStat{ts: ts, min: -1, max: -1, keep: keep}
		flat := reshape(ts.name, 0, prefix)
		rs.sum = reduce(ts.name, "ReduceSum", flat, prefix+"/sum", []int64{1})
		if len(ts.axes) == 0 {
			rs.min = reduce(ts.name, "ReduceMin", flat, prefix+"/min", []int64{1})
			rs.max = reduce(ts.name, "ReduceMax", flat, prefix+"/max", []int64{1})
		}
		for _, a := range ts.axes {
			in, axes := flat, []int64{1}
			if a > 0 {
				// [N, d1..da, rest]: reduce every axis but 0 and a.
				in = reshape(ts.name, a, prefix)
				axes = axes[:0]
				for i := 1; i < a; i++ {
					axes = append(axes, int64(i))
				}
				axes = append(axes, int64(a+1))
			}
			rs.chans = append(rs.chans, reducedChan{
				axis: a,
				min:  reduce(ts.name, "ReduceMin", in, fmt.Sprintf("%s/cmin%d", prefix, a), axes),
				max:  reduce(ts.name, "ReduceMax", in, fmt.Sprintf("%s/cmax%d", prefix, a), axes),
			})
		}
		sp.reduced = append(sp.reduced, rs)
	}
	if len(extraOutputs) == 0 {
		sp.sess = st.plain
		return sp, nil
	}
	data, err := marshalModel(model.Augment(st.proto, after, extraOutputs, extraInits))
	if err != nil {
		return nil, err
	}
	sess, err := newSession(data, st.inputs, outputs, threads)
	if err != nil {
		return nil, fmt.Errorf("stage %s: statistics model: %w", st.label(), err)
	}
	sp.sess, sp.owned = sess, true
	return sp, nil
}

// label names a stage in errors: its name and file.
func (st *stage) label() string {
	if st.path != "" {
		return fmt.Sprintf("%q (%s)", st.name, st.path)
	}
	return fmt.Sprintf("%q", st.name)
}

// reduceNode is a Reduce op over axes without keepdims: axes is an
// attribute before opset axesInput and an input (added to inits) from then on.
func reduceNode(opset, axesInput int64, op, in, out string, axes []int64, inits *[]*onnxpb.TensorProto) *onnxpb.NodeProto {
	if opset >= axesInput {
		ax := out + "/axes"
		*inits = append(*inits, model.Int64Initializer(ax, axes))
		return model.NewNode(op, out, []string{in, ax}, []string{out}, model.IntAttr("keepdims", 0))
	}
	return model.NewNode(op, out, []string{in}, []string{out}, model.IntsAttr("axes", axes), model.IntAttr("keepdims", 0))
}
