package engine

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// Registered statistics of the tests: each has a built-in twin (or a
// plain loop in the test) to be checked against.
func init() {
	// test_absmax: the built-in abs_max, per sample.
	pipeline.RegisterStatistic("test_absmax", pipeline.Statistic{Compute: func(t pipeline.Tensor) ([]float64, error) {
		m := 0.0
		for _, v := range t.Data.([]float32) {
			m = max(m, math.Abs(float64(v)))
		}
		return []float64{m}, nil
	}})
	// test_chanmax: the built-in channel_max@1, per sample (a vector).
	pipeline.RegisterStatistic("test_chanmax", pipeline.Statistic{Compute: func(t pipeline.Tensor) ([]float64, error) {
		c, inner := int(t.Shape[1]), int(pipeline.NumElements(t.Shape[2:]))
		out := make([]float64, c)
		for k := range c {
			out[k] = math.Inf(-1)
			for _, v := range t.Data.([]float32)[k*inner : (k+1)*inner] {
				out[k] = max(out[k], float64(v))
			}
			if out[k] == 0 {
				out[k] = 0 // +0, as the built-in
			}
		}
		return out, nil
	}})
	// test_positive: the number of positive values, summed exactly.
	pipeline.RegisterStatistic("test_positive", pipeline.Statistic{Merge: reduce.FoldSum, Compute: func(t pipeline.Tensor) ([]float64, error) {
		n := 0
		for _, v := range t.Data.([]float32) {
			if v > 0 {
				n++
			}
		}
		return []float64{float64(n)}, nil
	}})
	// test_max: the largest value, folded as max(max) is.
	pipeline.RegisterStatistic("test_max", pipeline.Statistic{Merge: reduce.FoldMax, Compute: func(t pipeline.Tensor) ([]float64, error) {
		return []float64{float64(slices.Max(t.Data.([]float32)))}, nil
	}})
	// test_vandal overwrites what it is given (a Compute may sort in place).
	pipeline.RegisterStatistic("test_vandal", pipeline.Statistic{Compute: func(t pipeline.Tensor) ([]float64, error) {
		d := t.Data.([]float32)
		slices.Sort(d)
		clear(d[:len(d)/2])
		return []float64{float64(d[len(d)-1])}, nil
	}})
	pipeline.RegisterStatistic("test_fails", pipeline.Statistic{Compute: func(t pipeline.Tensor) ([]float64, error) {
		return nil, errors.New("cannot")
	}})
	pipeline.RegisterStatistic("test_nan", pipeline.Statistic{Compute: func(t pipeline.Tensor) ([]float64, error) {
		return []float64{math.NaN()}, nil
	}})
	pipeline.RegisterStatistic("test_two", pipeline.Statistic{Merge: reduce.FoldMin, Compute: func(t pipeline.Tensor) ([]float64, error) {
		return []float64{1, 2}, nil
	}})
}

// TestCustomStatistics: registered statistics give their built-in twins'
// values bit for bit, on the model input and on activations (relu_0_out
// is the output of a Relu whose input is observed too, which the built-ins
// derive), batched or not, with either strategy and parallel requests.
func TestCustomStatistics(t *testing.T) {
	l := randomSamples(9, "input", []int64{1, 3, 16, 16}, 7)
	custom := []pipeline.StatSpec{{Kind: "test_absmax"}, {Kind: "test_chanmax"}, {Kind: "test_positive"}, {Kind: "test_max"}}
	builtin := []pipeline.StatSpec{{Kind: pipeline.StatAbsMax}, {Kind: pipeline.StatChannelMax, Axis: 1}, {Kind: pipeline.StatMax, Fold: reduce.FoldMax}}
	tensors := []string{"input", "conv_0_out", "relu_0_out"}
	layout := pipeline.StatsLayout{}
	for _, name := range tensors {
		layout[name] = slices.Concat(custom, builtin)
	}
	for _, tc := range []struct {
		name  string
		batch int
		opts  Options
	}{
		{"one by one", 1, Options{}},
		{"batches of 4, 2 requests", 4, Options{Requests: 2}},
		{"in graph", 2, Options{Strategy: StrategyInGraph}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, l, tc.opts, "convnet_op13.onnx")
			res, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layout, Sampler: pipeline.NewBatchSampler(l.Len(), tc.batch, nil)})
			if err != nil {
				t.Fatal(err)
			}
			s := res.Stats
			for _, name := range tensors {
				for _, twin := range [][2]pipeline.StatSpec{{custom[0], builtin[0]}, {custom[1], builtin[1]}} {
					got, want := s.Get(name, twin[0].Key()), s.Get(name, twin[1].Key())
					if got == nil || want == nil || got.Len() != l.Len() || !got.Equal(want) {
						t.Errorf("%s: %s: got %v, want %s's %v", name, twin[0].Kind, got, twin[1].Key(), want)
					}
				}
				got, want := s.Fold(name, "test_max"), s.Fold(name, builtin[2].Key())
				if got == nil || got.Op() != reduce.FoldMax || got.Count() != uint64(l.Len()) {
					t.Fatalf("%s: fold test_max: %+v", name, got)
				}
				gv, _ := got.Value()
				wv, _ := want.Value()
				if gv != wv {
					t.Errorf("%s: test_max %g, max(max) %g", name, gv, wv)
				}
			}
			// The positive inputs, counted here (the data is random, so
			// the count is not a round number that a bug could hit).
			n := 0
			for _, smp := range l.samples {
				for _, v := range smp.Inputs["input"].Data.([]float32) {
					if v > 0 {
						n++
					}
				}
			}
			f := s.Fold("input", "test_positive")
			if f == nil || f.Op() != reduce.FoldSum || f.Sum().Float64() != float64(n) {
				t.Errorf("test_positive on the input: %+v, want a sum of %d", f, n)
			}
		})
	}
}

// TestCustomStatisticGetsACopy: a registered statistic that rewrites its
// tensor does not change the built-in statistics of the same tensor.
func TestCustomStatisticGetsACopy(t *testing.T) {
	l := randomSamples(4, "input", []int64{1, 3, 16, 16}, 3)
	builtin := []pipeline.StatSpec{{Kind: pipeline.StatMin}, {Kind: pipeline.StatChannelMean, Axis: 1}, {Kind: pipeline.StatAbsMax}}
	run := func(extra ...pipeline.StatSpec) *reduce.Set {
		e := newEngine(t, l, Options{}, "convnet_op13.onnx")
		layout := pipeline.StatsLayout{}
		for _, name := range []string{"input", "conv_0_out"} {
			layout[name] = slices.Concat(extra, builtin)
		}
		res, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: layout})
		if err != nil {
			t.Fatal(err)
		}
		return res.Stats
	}
	want, got := run(), run(pipeline.StatSpec{Kind: "test_vandal"})
	for _, name := range []string{"input", "conv_0_out"} {
		for _, b := range builtin {
			if g, w := got.Get(name, b.Key()), want.Get(name, b.Key()); g == nil || !g.Equal(w) {
				t.Errorf("%s: %s with test_vandal beside it: %v, alone %v", name, b.Key(), g, w)
			}
		}
	}
}

// TestCustomStatisticErrors: an unknown name gets a suggestion before any
// inference; a failing or non-finite statistic names the tensor.
func TestCustomStatisticErrors(t *testing.T) {
	l := randomSamples(2, "input", []int64{1, 3, 16, 16}, 1)
	e := newEngine(t, l, Options{}, "convnet_op13.onnx")
	for _, tc := range []struct {
		spec    pipeline.StatSpec
		unknown bool
		want    string
	}{
		{pipeline.StatSpec{Kind: "test_absmx"}, true, `tensor "input": unknown statistic "test_absmx"; did you mean "test_absmax"? valid: abs_histogram, abs_max, `},
		{pipeline.StatSpec{Kind: "test_absmax", Axis: 1}, false, `statistic test_absmax: a registered statistic takes no Axis, Q, Lo, Hi, Bins or Fold`},
		{pipeline.StatSpec{Kind: "test_fails"}, false, `tensor "input": statistic test_fails: cannot`},
		{pipeline.StatSpec{Kind: "test_nan"}, false, `tensor "input": statistic test_nan returned NaN (shape [1 3 16 16]): results must be finite`},
		{pipeline.StatSpec{Kind: "test_two"}, false, `tensor "input": statistic test_two returned 2 values; its merge min folds one value per sample`},
	} {
		t.Run(string(tc.spec.Kind), func(t *testing.T) {
			_, err := e.Predict(t.Context(), pipeline.PredictOptions{StatsLayout: pipeline.StatsLayout{"input": {tc.spec}}})
			if !errors.Is(err, ErrBadStats) || errors.Is(err, pipeline.ErrUnknownStatistic) != tc.unknown || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant ErrBadStats (unknown statistic: %v) with %q", err, tc.unknown, tc.want)
			}
		})
	}
}

// TestRegisterStatisticPanics: registration mistakes are programming
// errors, found at init.
func TestRegisterStatisticPanics(t *testing.T) {
	ok := pipeline.Statistic{Compute: func(pipeline.Tensor) ([]float64, error) { return nil, nil }}
	for _, tc := range []struct {
		name string
		s    pipeline.Statistic
	}{
		{"nil compute", pipeline.Statistic{}},
		{"bad merge", pipeline.Statistic{Compute: ok.Compute, Merge: "median"}},
		{"max", ok},
		{"a@b", ok},
		{"test_absmax", ok},
		{"", ok},
	} {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterStatistic(%q, %+v) did not panic", tc.name, tc.s)
				}
			}()
			name := tc.name
			if name == "nil compute" || name == "bad merge" {
				name = "test_new"
			}
			pipeline.RegisterStatistic(name, tc.s)
		})
	}
}

// BenchmarkCustomStatistic is the cost of a registered statistic against
// its built-in twin: the per-sample abs_max of every float activation, as
// a Go function (test_absmax) or the vectorized built-in, and plain
// inference; one op is a pass over the same 64 samples, threads=1,
// requests=1. Compare ratios within one run (-count alternates them).
//
//	go test ./engine -run XXX -bench CustomStatistic -benchtime 3x -count 5
func BenchmarkCustomStatistic(b *testing.B) {
	name := "bench_cnn.onnx"
	if _, err := os.Stat(fixture(name)); err != nil {
		name = "convnet_op13.onnx"
	}
	p := loadProto(b, name)
	in, _ := graphIO(p)
	l := randomSamples(64, in[0].Name, in[0].Shape, 7)
	acts := floatActivations(p)
	for _, bc := range []struct {
		name   string
		layout pipeline.StatsLayout
	}{
		{"Plain", nil},
		{"BuiltinAbsMax", layoutOf(acts, []pipeline.StatSpec{{Kind: pipeline.StatAbsMax}})},
		{"CustomAbsMax", layoutOf(acts, []pipeline.StatSpec{{Kind: "test_absmax"}})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := New(l, Options{Threads: 1, Requests: 1})
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
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
