package engine

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// statTensors are activations of convnet_op13 (names from
// testdata/models/gen_models.py), a graph input and a graph output.
var statTensors = []string{
	"input", "conv_0_out", "bn_0_out", "relu_0_out", "conv_1_out", "maxpool_0_out",
	"conv_2_out", "globalaveragepool_0_out", "flatten_0_out", "logits",
}

var minMaxSpecs = []pipeline.StatSpec{
	{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}, {Kind: pipeline.StatAbsMax},
	{Kind: pipeline.StatChannelMin, Axis: 1}, {Kind: pipeline.StatChannelMax, Axis: 1},
}

// foldSpecs are the folds of the default range estimators and their
// symmetric variants (qmath.Estimator.StatSpec).
var foldSpecs = []pipeline.StatSpec{
	{Kind: pipeline.StatMin, Fold: reduce.FoldSum}, {Kind: pipeline.StatMax, Fold: reduce.FoldSum},
	{Kind: pipeline.StatMin, Fold: reduce.FoldMin}, {Kind: pipeline.StatMax, Fold: reduce.FoldMax},
	{Kind: pipeline.StatAbsMax, Fold: reduce.FoldSum}, {Kind: pipeline.StatAbsMax, Fold: reduce.FoldMax},
}

// compareFolds checks that every fold of specs in got equals, bit for bit,
// the same fold of the per-sample values in got.
func compareFolds(t *testing.T, got *reduce.Set, tensors []string, specs []pipeline.StatSpec) {
	t.Helper()
	for _, name := range tensors {
		for _, s := range specs {
			f := got.Fold(name, s.Key())
			ps := got.Get(name, pipeline.StatSpec{Kind: s.Kind}.Key())
			if f == nil || ps == nil {
				t.Errorf("%s %s: fold %v, per-sample %v", name, s.Key(), f, ps)
				continue
			}
			want := reduce.NewFold(s.Fold)
			for _, v := range ps.Column(0) {
				_ = want.Add(v)
			}
			if !f.Equal(want) {
				gv, _ := f.Value()
				wv, _ := want.Value()
				t.Errorf("%s %s: fold of %d samples = %v, per-sample values fold to %v of %d", name, s.Key(), f.Count(), gv, wv, want.Count())
			}
		}
	}
}

func layoutOf(tensors []string, specs []pipeline.StatSpec) pipeline.StatsLayout {
	l := pipeline.StatsLayout{}
	for _, t := range tensors {
		l[t] = specs
	}
	return l
}

// referenceStats runs every sample alone through convnet_op13 with the
// tensors as graph outputs and reduces them with refStats: tensor → key →
// sample index → values.
func referenceStats(t *testing.T, l *sliceLoader, tensors []string) map[string]map[string][][]float64 {
	t.Helper()
	s, err := NewSession(withOutputs(loadProto(t, "convnet_op13.onnx"), tensors...), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ref := map[string]map[string][][]float64{}
	for _, name := range tensors {
		ref[name] = map[string][][]float64{}
	}
	for i, smp := range l.samples {
		outs, err := s.Run(t.Context(), smp.Inputs)
		if err != nil {
			t.Fatal(err)
		}
		outs["input"] = smp.Inputs["input"]
		for _, name := range tensors {
			o := outs[name]
			mn, mx, cmn, cmx, _ := refStats(o.Data.([]float32), o.Shape, 1)
			r := ref[name]
			for key, v := range map[string][]float64{
				"min": {mn}, "max": {mx}, "abs_max": {max(math.Abs(mn), math.Abs(mx))},
				"channel_min@1": cmn, "channel_max@1": cmx,
			} {
				if r[key] == nil {
					r[key] = make([][]float64, len(l.samples))
				}
				r[key][i] = v
			}
		}
	}
	return ref
}

// TestStatsExact: per-sample min, max, abs_max and channel min/max
// collected by Predict equal, bit for bit, a plain loop over the same
// tensors taken as model outputs, whatever the strategy, the number of
// requests and the batch size; their folds equal the folds of those
// per-sample values.
func TestStatsExact(t *testing.T) {
	const n = 100
	l := randomSamples(n, "input", []int64{1, 3, 16, 16}, 1)
	ref := referenceStats(t, l, statTensors)
	layout := layoutOf(statTensors, slices.Concat(minMaxSpecs, foldSpecs))
	var first *reduce.Set
	for _, tc := range []struct {
		model string
		batch int
	}{
		{"convnet_op13.onnx", 1},
		{"convnet_op13.onnx", 4}, // fixed batch of 1: samples run one by one
		{"convnet_dynamic.onnx", 4},
		{"convnet_dynamic.onnx", 7}, // a last batch of 2
	} {
		for _, s := range []Strategy{StrategyGo, StrategyInGraph} {
			for _, req := range []int{1, 2} {
				t.Run(fmt.Sprintf("%s/batch%d/%s/requests%d", tc.model, tc.batch, s, req), func(t *testing.T) {
					e, err := New(l, Options{Requests: req, Strategy: s})
					if err != nil {
						t.Fatal(err)
					}
					defer e.Close()
					if err := e.SetModel(t.Context(), loadModel(t, tc.model)); err != nil {
						t.Fatal(err)
					}
					res, err := e.Predict(t.Context(), pipeline.PredictOptions{
						StatsLayout: layout,
						Sampler:     pipeline.NewBatchSampler(n, tc.batch, nil),
					})
					if err != nil {
						t.Fatal(err)
					}
					if res.Samples != n || len(res.Stats.NonFinite) != 0 {
						t.Fatalf("samples %d, non-finite %v", res.Samples, res.Stats.NonFinite)
					}
					compareStats(t, res.Stats, ref)
					compareFolds(t, res.Stats, statTensors, foldSpecs)
					if first == nil {
						first = res.Stats
					} else if !sameSet(first, res.Stats) || !first.Equal(res.Stats) {
						t.Error("statistics differ from the first run")
					}
				})
			}
		}
	}
}

// compareStats checks every statistic of ref against got, bit for bit. A
// reference holding a NaN (no finite value to compute it from) must be
// absent.
func compareStats(t *testing.T, got *reduce.Set, ref map[string]map[string][][]float64) {
	t.Helper()
	for name, keys := range ref {
		for key, want := range keys {
			ps := got.Get(name, key)
			if ps == nil {
				t.Errorf("%s %s: missing", name, key)
				continue
			}
			n := 0
			for _, w := range want {
				if !slices.ContainsFunc(w, math.IsNaN) {
					n++
				}
			}
			if ps.Len() != n {
				t.Errorf("%s %s: %d samples, want %d", name, key, ps.Len(), n)
				continue
			}
			for i := range ps.Len() {
				idx, v := ps.At(i)
				w := want[idx]
				if len(v) != len(w) {
					t.Errorf("%s %s sample %d: %d values, want %d", name, key, idx, len(v), len(w))
					continue
				}
				for k := range v {
					if math.Float64bits(v[k]) != math.Float64bits(w[k]) {
						t.Errorf("%s %s sample %d [%d]: got %v, want %v", name, key, idx, k, v[k], w[k])
						break
					}
				}
			}
		}
	}
}

// sameSet reports whether two sets hold the same statistics, bit for bit.
func sameSet(a, b *reduce.Set) bool {
	if len(a.Stats) != len(b.Stats) || len(a.NonFinite) != len(b.NonFinite) {
		return false
	}
	for t, n := range a.NonFinite {
		if b.NonFinite[t] != n {
			return false
		}
	}
	for t, keys := range a.Stats {
		if len(keys) != len(b.Stats[t]) {
			return false
		}
		for k, ps := range keys {
			o := b.Get(t, k)
			if o == nil || !ps.Equal(o) {
				return false
			}
		}
	}
	return true
}

// TestComputeGo checks every statistic of one sample against direct
// formulas, with and without NaN/±Inf (fast and slow paths).
func TestComputeGo(t *testing.T) {
	shape := []int64{1, 3, 4, 5}
	base := make([]float32, 60)
	for i := range base {
		base[i] = float32(i%17)*0.75 - 6 // -6 .. 6
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name string
		bad  map[int]float32
	}{
		{"finite", nil},
		{"nan and inf", map[int]float32{0: nan, 7: inf, 33: -inf, 59: nan}},
		{"channel 1 all nan", func() map[int]float32 {
			m := map[int]float32{}
			for i := 20; i < 40; i++ {
				m[i] = nan
			}
			return m
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := slices.Clone(base)
			for i, v := range tc.bad {
				d[i] = v
			}
			ts, err := newTensorStats("x", []pipeline.StatSpec{
				{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}, {Kind: pipeline.StatAbsMax}, {Kind: pipeline.StatMean},
				{Kind: pipeline.StatQuantile, Q: 0.5}, {Kind: pipeline.StatQuantile, Q: 0.9},
				{Kind: pipeline.StatAbsQuantile, Q: 1}, {Kind: pipeline.StatChannelMin, Axis: 1},
				{Kind: pipeline.StatChannelMax, Axis: 1}, {Kind: pipeline.StatChannelMax, Axis: 3},
			})
			if err != nil {
				t.Fatal(err)
			}
			var r sampleResult
			var buf [2][]float32
			if err := ts.computeGo(d, shape, &r, &buf); err != nil {
				t.Fatal(err)
			}
			got := map[string][]float64{}
			_ = ts.emit(&r, func(s pipeline.StatSpec, v []float64) error { got[s.Key()] = v; return nil })
			// Reference: the finite values, sorted; numpy.quantile's linear rule.
			var fin []float64
			sum := 0.0
			for _, v := range d {
				if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
					fin = append(fin, float64(v))
					sum += float64(v)
				}
			}
			slices.Sort(fin)
			q := func(p float64) float64 {
				pos := p * float64(len(fin)-1)
				lo := int(pos)
				if lo+1 >= len(fin) {
					return fin[lo]
				}
				return fin[lo] + (fin[lo+1]-fin[lo])*(pos-float64(lo))
			}
			mn, mx, cmn, cmx, bad := refStats(d, shape, 1)
			_, _, _, cmx3, _ := refStats(d, shape, 3)
			want := map[string][]float64{
				"min": {mn}, "max": {mx}, "abs_max": {max(-mn, mx)}, "mean": {sum / float64(len(fin))},
				"quantile@0.5": {q(0.5)}, "quantile@0.9": {q(0.9)}, "abs_quantile@1": {max(-mn, mx)},
				"channel_min@1": cmn, "channel_max@1": cmx, "channel_max@3": cmx3,
			}
			for key, w := range want {
				if slices.ContainsFunc(w, math.IsNaN) {
					if got[key] != nil {
						t.Errorf("%s: %v, want none (a channel without finite values)", key, got[key])
					}
					continue
				}
				if !slices.Equal(got[key], w) {
					t.Errorf("%s: %v, want %v", key, got[key], w)
				}
			}
			if r.nonFinite != bad || int(bad) != len(tc.bad) {
				t.Errorf("non-finite %d, want %d", r.nonFinite, len(tc.bad))
			}
		})
	}
}

// TestStatsOpset18: from opset 18 the axes of ReduceMin/ReduceMax are an
// input; the in-graph strategy still gives the exact statistics.
func TestStatsOpset18(t *testing.T) {
	const n = 8
	l := randomSamples(n, "input", []int64{1, 3, 16, 16}, 18)
	tensors := []string{"conv_0_out", "relu_0_out", "maxpool_0_out", "logits"}
	ref := referenceStats(t, l, tensors)
	// convnet_op13's operators mean the same at opset 18 (IR version 8).
	p := loadProto(t, "convnet_op13.onnx")
	p.IrVersion = proto.Int64(8)
	p.OpsetImport[0].Version = proto.Int64(18)
	e := newEngine(t, l, Options{Strategy: StrategyInGraph})
	if err := e.SetModel(t.Context(), model.NewCompressedModel("op18", false, &model.Stage{Name: "op18", Proto: p})); err != nil {
		t.Fatal(err)
	}
	res, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layoutOf(tensors, minMaxSpecs)})
	if err != nil {
		t.Fatal(err)
	}
	compareStats(t, res.Stats, ref)
}
