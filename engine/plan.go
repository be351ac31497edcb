package engine

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// Strategy is how min/max-like statistics (min, max, abs_max, channel_min,
// channel_max) are computed. Mean and quantiles are always computed in Go
// from the whole activation.
type Strategy int

const (
	// StrategyAuto is the default: currently StrategyGo, the faster of the
	// two on the benchmark (see bench_test.go).
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
	base       []byte // the serialized model
	catalog    *tensorCatalog
	opset      int64
	inputs     []pipeline.TensorInfo
	outputs    []pipeline.TensorInfo
	plain      *Session // no statistics
}

// plan is the sessions that compute one StatsLayout with one Strategy.
type plan struct {
	stages []*stagePlan
	// fallback computes the same statistics with StrategyGo; used for
	// samples holding NaN or ±Inf when the strategy is in-graph.
	fallbackOnce sync.Once
	fallback     *plan
	fallbackErr  error
	newFallback  func() (*plan, error)
}

// stagePlan is one stage's session and the statistics read from its outputs.
type stagePlan struct {
	st      *stage
	sess    *Session
	owned   bool // sess belongs to the plan (not the stage's plain session)
	full    []fullStat
	reduced []reducedStat
}

// fullStat is a tensor reduced in Go: session output out, or the stage input
// named input when out < 0.
type fullStat struct {
	ts    *tensorStats
	out   int
	input string
}

// reducedStat is a tensor reduced in the graph: per-row min and max (out
// indices; -1 when derived from the first channel axis), per-row sum (NaN
// detector) and per-row channel min and max for each axis of ts.axes.
type reducedStat struct {
	ts       *tensorStats
	min, max int
	sum      int
	chans    []reducedChan
}

type reducedChan struct{ axis, min, max int }

func (p *plan) close() {
	for _, sp := range p.stages {
		if sp.owned {
			_ = sp.sess.Close()
		}
	}
	if p.fallback != nil {
		p.fallback.close()
	}
}

// fallbackPlan returns the StrategyGo plan for the same layout.
func (p *plan) fallbackPlan() (*plan, error) {
	p.fallbackOnce.Do(func() { p.fallback, p.fallbackErr = p.newFallback() })
	return p.fallback, p.fallbackErr
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

// buildPlan creates the sessions that compute layout with strategy s.
func buildPlan(stages []*stage, layout pipeline.StatsLayout, s Strategy, threads int) (*plan, error) {
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
			return nil, fmt.Errorf("%w: statistics layout: tensor %q is not in %s", ErrUnknownTensor, name, where)
		}
	}
	p := &plan{}
	p.newFallback = func() (*plan, error) { return buildPlan(stages, layout, StrategyGo, threads) }
	for i, st := range stages {
		sp, err := buildStagePlan(st, perStage[i], s, threads)
		if err != nil {
			p.close()
			return nil, err
		}
		p.stages = append(p.stages, sp)
	}
	return p, nil
}

func buildStagePlan(st *stage, stats []*tensorStats, s Strategy, threads int) (*stagePlan, error) {
	sp := &stagePlan{st: st}
	outputs := slices.Clone(st.outputs)
	outIndex := map[string]int{}
	for i, o := range outputs {
		outIndex[o.Name] = i
	}
	extra := &onnxpb.GraphProto{}
	addOutput := func(name string, et int32) int {
		extra.Output = append(extra.Output, floatOutput(name, et))
		outputs = append(outputs, pipeline.TensorInfo{Name: name, DType: pipeline.DType(max(et, onnxFloat))})
		outIndex[name] = len(outputs) - 1
		return len(outputs) - 1
	}
	cat := st.catalog
	shapes := map[int]string{} // Reshape targets by channel axis (-1: flatten)
	reshape := func(tensor string, axis int, prefix string) string {
		target, ok := shapes[axis]
		if !ok {
			dims := make([]int64, max(axis, 0)+2)
			dims[len(dims)-1] = -1
			target = cat.uniqueName(fmt.Sprintf("fleetcal_stats/shape%d", axis))
			extra.Initializer = append(extra.Initializer, int64Initializer(target, dims))
			shapes[axis] = target
		}
		out := cat.uniqueName(prefix + fmt.Sprintf("/reshape%d", axis))
		extra.Node = append(extra.Node, node("Reshape", out, []string{tensor, target}, []string{out}))
		return out
	}
	reduce := func(op, in, out string, axes []int64) int {
		axesInput := int64(18)
		if op == "ReduceSum" {
			axesInput = 13
		}
		out = cat.uniqueName(out)
		reduceNode(extra, st.opset, axesInput, op, in, out, axes)
		return addOutput(out, onnxFloat)
	}
	for k, ts := range stats {
		kind := cat.kind[ts.name]
		if kind == kindInput {
			sp.full = append(sp.full, fullStat{ts: ts, out: -1, input: ts.name})
			continue
		}
		if i, ok := outIndex[ts.name]; ok {
			sp.full = append(sp.full, fullStat{ts: ts, out: i})
			continue
		}
		et := cat.elemType[ts.name]
		if s != StrategyInGraph || !ts.reducible() || kind != kindActivation || (et != 0 && et != onnxFloat) {
			sp.full = append(sp.full, fullStat{ts: ts, out: addOutput(ts.name, et)})
			continue
		}
		prefix := cat.uniqueName(fmt.Sprintf("fleetcal_stats/%d", k))
		rs := reducedStat{ts: ts, min: -1, max: -1}
		flat := reshape(ts.name, 0, prefix)
		rs.sum = reduce("ReduceSum", flat, prefix+"/sum", []int64{1})
		if len(ts.axes) == 0 {
			rs.min = reduce("ReduceMin", flat, prefix+"/min", []int64{1})
			rs.max = reduce("ReduceMax", flat, prefix+"/max", []int64{1})
		}
		for _, a := range ts.axes {
			in, axes := flat, []int64{1}
			if a > 0 {
				in = reshape(ts.name, a, prefix)
				axes = axes[:0]
				for i := 1; i < a; i++ {
					axes = append(axes, int64(i))
				}
				axes = append(axes, int64(a+1))
			}
			rs.chans = append(rs.chans, reducedChan{
				axis: a,
				min:  reduce("ReduceMin", in, fmt.Sprintf("%s/cmin%d", prefix, a), axes),
				max:  reduce("ReduceMax", in, fmt.Sprintf("%s/cmax%d", prefix, a), axes),
			})
		}
		sp.reduced = append(sp.reduced, rs)
	}
	if len(extra.Output) == 0 {
		sp.sess = st.plain
		return sp, nil
	}
	data, err := appendToGraph(st.base, extra)
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

// reduceNode appends a Reduce op over axes without keepdims: axes is an
// attribute before opset axesInput and an input from then on.
func reduceNode(g *onnxpb.GraphProto, opset, axesInput int64, op, in, out string, axes []int64) {
	if opset >= axesInput {
		ax := out + "/axes"
		g.Initializer = append(g.Initializer, int64Initializer(ax, axes))
		g.Node = append(g.Node, node(op, out, []string{in, ax}, []string{out}, intAttr("keepdims", 0)))
		return
	}
	g.Node = append(g.Node, node(op, out, []string{in}, []string{out}, intsAttr("axes", axes), intAttr("keepdims", 0)))
}
