package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/model"
)

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"unknown top key", `{"model": {"model": "a.onnx"}, "engin": {}}`, `unknown key "engin"; valid keys: compression, engine, model`},
		{"unknown nested key", `{"model": {"model": "a.onnx", "wieghts": "x"}}`, `model: unknown key "wieghts"; valid keys: cascade, model, model_name, weights`},
		{"unknown key in cascade", `{"model": {"cascade": [{"name": "a", "model": "a.onnx", "x": 1}]}}`, `model.cascade[0]: unknown key "x"`},
		{"wrong type", `{"model": {"model": "a.onnx"}, "engine": {"threads": "two"}}`, `engine.threads: want int, got JSON string`},
		{"no model", `{"engine": {}}`, `set "model"`},
		{"both model and cascade", `{"model": {"model": "a.onnx", "cascade": [{"name": "s", "model": "s.onnx"}]}}`, `exclusive`},
		{"duplicate stage", `{"model": {"cascade": [{"name": "s", "model": "a.onnx"}, {"name": "s", "model": "b.onnx"}]}}`, `stage name "s" used twice`},
		{"bad engine", `{"model": {"model": "a.onnx"}, "engine": {"type": "openvino"}}`, `unknown engine "openvino"; valid: onnxruntime`},
		{"bad device", `{"model": {"model": "a.onnx"}, "compression": {"target_device": "GPU"}}`, `"GPU" is not supported; valid: ANY, CPU`},
		{"not an object", `[1]`, `config: want an object`},
		{"algorithm without name", `{"model": {"model": "a.onnx"}, "compression": {"algorithms": [{"params": {}}]}}`, `compression.algorithms[0]: "name" is required`},
		{"duplicate top key", `{"model": {"model": "a.onnx"}, "model": {"model": "b.onnx"}}`, `model: key given twice (JSON would keep the last one silently); remove one`},
		{"duplicate nested key", `{"model": {"model": "a.onnx"}, "engine": {"threads": 1, "threads": 2}}`, `engine.threads: key given twice`},
		{"duplicate key in params", `{"model": {"model": "a.onnx"}, "compression": {"algorithms": [{"name": "DefaultQuantization"},
			{"name": "MinMaxQuantization", "params": {"preset": "mixed", "preset": "performance"}}]}}`, `compression.algorithms[1].params.preset: key given twice`},
		{"duplicate key in data_source", `{"model": {"model": "a.onnx"}, "engine": {"data_source": {"path": "a", "path": "b"}}}`, `engine.data_source.path: key given twice`},
		{"duplicate yaml key", "model: {model: a.onnx}\nmodel: {model: b.onnx}\n", `"model" already defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ext := ".json"
			if strings.Contains(tc.name, "yaml") {
				ext = ".yaml"
			}
			_, err := ParseConfig([]byte(tc.json), ext)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig(%s): err = %v, want it to contain %q", tc.json, err, tc.want)
			}
		})
	}
}

type nopAlgo struct{ name string }

func (a nopAlgo) Name() string { return a.name }
func (a nopAlgo) Run(_ context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	return m, nil
}

func TestCreateRejectsUnknownAlgorithmsAndParams(t *testing.T) {
	RegisterAlgorithm("TestNop", func(params json.RawMessage, env AlgorithmEnv) (Algorithm, error) {
		var p struct {
			Level int `json:"level"`
		}
		if err := DecodeStrict(params, &p, "params"); err != nil {
			return nil, err
		}
		return nopAlgo{"TestNop"}, nil
	})
	if _, err := Create([]AlgorithmConfig{{Name: "TestNop", Params: json.RawMessage(`{"level": 2}`)}}, AlgorithmEnv{}); err != nil {
		t.Fatal(err)
	}
	_, err := Create([]AlgorithmConfig{{Name: "NoSuchQuantization"}}, AlgorithmEnv{})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `unknown algorithm "NoSuchQuantization"; valid: `) || !strings.Contains(err.Error(), "TestNop") {
		t.Fatalf("unknown algorithm: err = %v", err)
	}
	_, err = Create([]AlgorithmConfig{{Name: "TestNop", Params: json.RawMessage(`{"levle": 2}`)}}, AlgorithmEnv{})
	if err == nil || !strings.Contains(err.Error(), `params: unknown key "levle"; valid keys: level`) {
		t.Fatalf("unknown param: err = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering TestNop twice did not panic")
		}
	}()
	RegisterAlgorithm("TestNop", nil)
}

func TestBatchSampler(t *testing.T) {
	got := NewBatchSampler(5, 2, nil).Batches()
	if len(got) != 3 || len(got[2]) != 1 || got[2][0] != 4 {
		t.Fatalf("batches of 5 by 2 = %v", got)
	}
	got = NewBatchSampler(10, 3, []int{9, 1, 4}).Batches()
	if len(got) != 1 || got[0][0] != 9 || got[0][2] != 4 {
		t.Fatalf("subset batches = %v", got)
	}
}

func TestSliceLoader(t *testing.T) {
	l := SliceLoader{{Annotation: 7}}
	if s, err := l.Item(t.Context(), 0); err != nil || s.Annotation != 7 {
		t.Fatalf("Item(0) = %v, %v", s, err)
	}
	if _, err := l.Item(t.Context(), 1); !errors.Is(err, ErrIndexOutOfRange) {
		t.Fatalf("Item(1) of 1 sample: err = %v, want ErrIndexOutOfRange", err)
	}
}
