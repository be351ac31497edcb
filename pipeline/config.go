package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is POT's configuration file: the model, the engine with its data
// and metric, and the compression algorithms. Sub-sections that other
// packages own (data_source, annotations, metric, algorithm params) stay raw
// here and are decoded, just as strictly, by their owners.
type Config struct {
	Model       ModelConfig       `json:"model"`
	Engine      EngineConfig      `json:"engine"`
	Compression CompressionConfig `json:"compression"`
	// Dir is the folder of the config file; relative paths resolve against it.
	Dir string `json:"-"`
}

// ModelConfig is POT's model section: one model, or a cascade of stages.
type ModelConfig struct {
	ModelName string         `json:"model_name"`
	Model     string         `json:"model"`
	Weights   string         `json:"weights"`
	Cascade   []CascadeStage `json:"cascade"`
}

// CascadeStage is one named model of a cascade. Its own DataSource, when
// set, overrides the engine's for calibrating this stage.
type CascadeStage struct {
	Name       string          `json:"name"`
	Model      string          `json:"model"`
	Weights    string          `json:"weights"`
	DataSource json.RawMessage `json:"data_source"`
}

// EngineConfig is POT's engine section.
type EngineConfig struct {
	Type        string          `json:"type"`
	DataSource  json.RawMessage `json:"data_source"`
	Annotations json.RawMessage `json:"annotations"`
	Metric      json.RawMessage `json:"metric"`
	// Threads is ONNX Runtime's intra-op thread count per request (default 1).
	Threads int `json:"threads"`
	// Requests is the number of inferences run in parallel (default 1).
	Requests int `json:"requests"`
	// SkipInvalidSamples skips calibration samples holding NaN or Inf
	// instead of failing, and reports how many were skipped.
	SkipInvalidSamples bool `json:"skip_invalid_samples"`
}

// CompressionConfig is POT's compression section.
type CompressionConfig struct {
	TargetDevice string            `json:"target_device"`
	Algorithms   []AlgorithmConfig `json:"algorithms"`
}

// AlgorithmConfig names an algorithm and holds its raw parameters.
type AlgorithmConfig struct {
	Name   string          `json:"name"`
	Params json.RawMessage `json:"params"`
}

// Engine types and target devices fleetcal accepts.
var (
	EngineTypes   = []string{"onnxruntime"}
	TargetDevices = []string{"ANY", "CPU"}
)

// LoadConfig reads a JSON or YAML config file strictly and validates it.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(raw, filepath.Ext(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.Dir = abs
	return cfg, nil
}

// ParseConfig decodes a config from JSON, or from YAML when ext is ".yaml"
// or ".yml", and validates it.
func ParseConfig(raw []byte, ext string) (*Config, error) {
	if e := strings.ToLower(ext); e == ".yaml" || e == ".yml" {
		var err error
		if raw, err = yamlToJSON(raw); err != nil {
			return nil, err
		}
	}
	if err := CheckDuplicateKeys(raw); err != nil {
		return nil, err
	}
	var cfg Config
	if err := DecodeStrict(raw, &cfg, ""); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// ErrConfig marks an invalid configuration.
var ErrConfig = errors.New("invalid config")

// Validate checks what can be checked without opening files.
func (c *Config) Validate() error {
	m := c.Model
	switch {
	case m.Model == "" && len(m.Cascade) == 0:
		return fmt.Errorf("%w: model: set \"model\" (a .onnx file) or \"cascade\"", ErrConfig)
	case m.Model != "" && len(m.Cascade) > 0:
		return fmt.Errorf("%w: model: \"model\" and \"cascade\" are exclusive", ErrConfig)
	}
	seen := map[string]bool{}
	for i, s := range m.Cascade {
		if s.Name == "" || s.Model == "" {
			return fmt.Errorf("%w: model.cascade[%d]: \"name\" and \"model\" are required", ErrConfig, i)
		}
		if seen[s.Name] {
			return fmt.Errorf("%w: model.cascade[%d]: stage name %q used twice", ErrConfig, i, s.Name)
		}
		seen[s.Name] = true
	}
	if c.Engine.Type != "" && !contains(EngineTypes, c.Engine.Type) {
		return fmt.Errorf("%w: engine.type: unknown engine %q; valid: %s", ErrConfig, c.Engine.Type, strings.Join(EngineTypes, ", "))
	}
	if c.Engine.Threads < 0 || c.Engine.Requests < 0 {
		return fmt.Errorf("%w: engine: threads and requests must not be negative", ErrConfig)
	}
	if d := c.Compression.TargetDevice; d != "" && !contains(TargetDevices, strings.ToUpper(d)) {
		return fmt.Errorf("%w: compression.target_device: %q is not supported; valid: %s", ErrConfig, d, strings.Join(TargetDevices, ", "))
	}
	for i, a := range c.Compression.Algorithms {
		if a.Name == "" {
			return fmt.Errorf("%w: compression.algorithms[%d]: \"name\" is required", ErrConfig, i)
		}
	}
	return nil
}

// Resolve makes path absolute against the config's folder.
func (c *Config) Resolve(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(c.Dir, path)
}

// ModelName is model_name, or the model file's base name without extension.
func (c *Config) ModelName() string {
	if c.Model.ModelName != "" {
		return c.Model.ModelName
	}
	if c.Model.Model != "" {
		return strings.TrimSuffix(filepath.Base(c.Model.Model), filepath.Ext(c.Model.Model))
	}
	return "model"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func yamlToJSON(raw []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonable turns YAML's decoded values into values encoding/json accepts.
func jsonable(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			t[k] = j
		}
		return t, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("yaml: key %v is not a string", k)
			}
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[ks] = j
		}
		return out, nil
	case []any:
		for i, e := range t {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			t[i] = j
		}
		return t, nil
	}
	return v, nil
}
