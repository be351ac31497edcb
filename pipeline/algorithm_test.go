package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/model"
)

// withRegistry runs f with the algorithm registry replaced by reg.
func withRegistry(t *testing.T, reg map[string]AlgorithmFactory, f func()) {
	t.Helper()
	algorithms.mu.Lock()
	saved := algorithms.m
	algorithms.m = reg
	algorithms.mu.Unlock()
	defer func() {
		algorithms.mu.Lock()
		algorithms.m = saved
		algorithms.mu.Unlock()
	}()
	f()
}

func TestNothingRegisteredSaysHowToRegister(t *testing.T) {
	withRegistry(t, map[string]AlgorithmFactory{}, func() {
		const want = `register the built-in ones with import _ "github.com/fleetcal/fleetcal/algorithms/all"`
		_, err := Create([]AlgorithmConfig{{Name: "DefaultQuantization"}}, AlgorithmEnv{})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `unknown algorithm "DefaultQuantization": no algorithm is registered; `+want) {
			t.Errorf("Create: err = %v", err)
		}
		if _, err := Create(nil, AlgorithmEnv{}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("Create(nil): err = %v", err)
		}
	})
}

// A Go caller gets no config-file key in errors: the index is in an
// *AlgorithmError.
func TestCreateErrorsNameNoConfigKey(t *testing.T) {
	withRegistry(t, map[string]AlgorithmFactory{"A": nopFactory}, func() {
		_, err := Create([]AlgorithmConfig{{Name: "A"}, {Name: "B"}}, AlgorithmEnv{})
		var ae *AlgorithmError
		if !errors.As(err, &ae) || ae.Index != 1 || !errors.Is(err, ErrConfig) {
			t.Fatalf("err = %v, want an *AlgorithmError of index 1", err)
		}
		if want := `algorithm config 1: invalid config: unknown algorithm "B"; valid: A`; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
		if strings.Contains(err.Error(), "compression") {
			t.Errorf("err = %q names a config key", err)
		}
	})
}

// plainEngine is an Engine that does not know its data set's size.
type plainEngine struct{}

func (plainEngine) SetModel(context.Context, *model.CompressedModel) error { return nil }
func (plainEngine) Predict(context.Context, PredictOptions) (PredictResult, error) {
	return PredictResult{}, nil
}

// lenEngine knows it (pipeline.DataLener).
type lenEngine struct {
	plainEngine
	n int
}

func (e lenEngine) DataLen() int { return e.n }

func nopFactory(_ json.RawMessage, env AlgorithmEnv) (Algorithm, error) {
	return lenAlgo{env.DataLen}, nil
}

type lenAlgo struct{ n int }

func (lenAlgo) Name() string { return "A" }
func (lenAlgo) Run(_ context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	return m, nil
}

func TestDataLenFromEngine(t *testing.T) {
	withRegistry(t, map[string]AlgorithmFactory{"A": nopFactory}, func() {
		for _, tc := range []struct {
			name string
			env  AlgorithmEnv
			want int    // DataLen the algorithm is built with
			err  string // or the error
		}{
			{"given", AlgorithmEnv{Engine: lenEngine{n: 5}, DataLen: 3}, 3, ""},
			{"from the engine", AlgorithmEnv{Engine: lenEngine{n: 5}}, 5, ""},
			{"from the loader", AlgorithmEnv{Engine: plainEngine{}, Data: SliceLoader{{}, {}}}, 2, ""},
			{"no engine", AlgorithmEnv{}, 0, ""},
			{"engine cannot say", AlgorithmEnv{Engine: plainEngine{}}, 0,
				"algorithm A: invalid config: AlgorithmEnv.DataLen is 0 and the engine (pipeline.plainEngine) does not say how many samples it holds"},
			{"empty", AlgorithmEnv{Engine: lenEngine{n: 0}}, 0, "algorithm A: invalid config: AlgorithmEnv.DataLen is 0 and the engine (pipeline.lenEngine) reports 0 samples"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a, err := NewAlgorithm("A", nil, tc.env)
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("err = %v, want %q", err, tc.err)
					}
					return
				}
				if err != nil || a.(lenAlgo).n != tc.want {
					t.Fatalf("NewAlgorithm = %v, %v; want DataLen %d", a, err, tc.want)
				}
			})
		}
	})
}

func TestPostprocessRegistry(t *testing.T) {
	if _, err := LookupPostprocess("test-none"); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `unknown postprocess "test-none"; valid: `) {
		t.Errorf("unknown postprocess: err = %v", err)
	}
	RegisterPostprocess("test-double", func(out map[string]Tensor, _ map[string]any) (map[string]Tensor, error) {
		y := out["y"].Data.([]float32)
		return map[string]Tensor{"y": {Shape: out["y"].Shape, Data: []float32{2 * y[0]}}}, nil
	})
	f, err := LookupPostprocess("test-double")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f(map[string]Tensor{"y": {Shape: []int64{1}, Data: []float32{1.5}}}, nil)
	if err != nil || got["y"].Data.([]float32)[0] != 3 {
		t.Errorf("postprocess = %v, %v; want y = 3", got, err)
	}
	if !slices.Contains(PostprocessNames(), "test-double") {
		t.Errorf("PostprocessNames() = %v", PostprocessNames())
	}
	defer func() {
		if recover() == nil {
			t.Error("registering test-double twice did not panic")
		}
	}()
	RegisterPostprocess("test-double", f)
}
