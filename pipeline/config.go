package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fleetcal/fleetcal/model"
)

// Config is POT's configuration file: the model, the engine with its data
// and metric, and the compression algorithms. It is decoded once, strictly
// (unknown keys are errors naming the key), and relative paths are resolved
// then, against the config file's folder: the model files here, the data
// source's and the annotations' in their typed values; data_source and
// metric are decoded through their registries. Algorithm params stay raw
// here and are decoded, just as strictly, by the algorithms' registry.
type Config struct {
	// Model is the model section (one model, or a cascade), its paths
	// resolved; Model.Name is model_name.
	Model model.Config
	// StageData holds the data_source of each cascade stage that names one,
	// by stage name: it overrides the engine's for calibrating that stage.
	StageData map[string]DataSource
	Engine    EngineConfig
	// Compression is the compression section.
	Compression CompressionConfig
	// Dir is the folder of the config file; relative paths resolved against
	// it ("" for ParseConfig: the working directory).
	Dir string
}

// EngineConfig is POT's engine section.
type EngineConfig struct {
	Type string
	// DataSource is engine.data_source decoded through the data source
	// registry (nil when absent).
	DataSource DataSource
	// Annotations is engine.annotations (nil when absent).
	Annotations *Annotations
	// Metric is engine.metric decoded through the metric registry (nil when
	// absent); Metric.New builds one.
	Metric MetricConfig
	// Threads is ONNX Runtime's intra-op thread count per request (default 1).
	Threads int
	// Requests is the number of inferences run in parallel (default 1).
	Requests int
	// SkipInvalidSamples skips calibration samples holding NaN or Inf
	// instead of failing, and reports how many were skipped.
	SkipInvalidSamples bool
}

// configJSON and the types below are the file's shape, decoded strictly
// before the typed values are built from them.
type configJSON struct {
	Model       modelJSON         `json:"model"`
	Engine      engineJSON        `json:"engine"`
	Compression CompressionConfig `json:"compression"`
}

type modelJSON struct {
	ModelName string      `json:"model_name"`
	Model     string      `json:"model"`
	Weights   string      `json:"weights"`
	Cascade   []stageJSON `json:"cascade"`
}

type stageJSON struct {
	Name       string          `json:"name"`
	Model      string          `json:"model"`
	Weights    string          `json:"weights"`
	DataSource json.RawMessage `json:"data_source"`
}

type engineJSON struct {
	Type               string          `json:"type"`
	DataSource         json.RawMessage `json:"data_source"`
	Annotations        json.RawMessage `json:"annotations"`
	Metric             json.RawMessage `json:"metric"`
	Threads            int             `json:"threads"`
	Requests           int             `json:"requests"`
	SkipInvalidSamples bool            `json:"skip_invalid_samples"`
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

// LoadConfig reads a JSON or YAML config file strictly, validates it and
// resolves its relative paths against the file's folder.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := parseConfig(raw, filepath.Ext(path), abs)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes a config from JSON, or from YAML when ext is ".yaml"
// or ".yml", and validates it; relative paths stay relative to the working
// directory. A data_source without a type (POT's plain "data_source":
// "calib/") has its type guessed from the files it names, so parsing it
// reads that folder.
func ParseConfig(raw []byte, ext string) (*Config, error) {
	return parseConfig(raw, ext, "")
}

func parseConfig(raw []byte, ext, dir string) (*Config, error) {
	if e := strings.ToLower(ext); e == ".yaml" || e == ".yml" {
		var err error
		if raw, err = yamlToJSON(raw); err != nil {
			return nil, err
		}
	}
	if err := CheckDuplicateKeys(raw); err != nil {
		return nil, err
	}
	var j configJSON
	if err := DecodeStrict(raw, &j, ""); err != nil {
		return nil, err
	}
	cfg := &Config{Dir: dir, Compression: j.Compression}
	m := j.Model
	cfg.Model = model.Config{Name: m.ModelName, Model: ResolvePath(dir, m.Model), Weights: ResolvePath(dir, m.Weights), BaseDir: dir}
	for _, s := range m.Cascade {
		cfg.Model.Cascade = append(cfg.Model.Cascade, model.StageConfig{Name: s.Name, Model: ResolvePath(dir, s.Model), Weights: ResolvePath(dir, s.Weights)})
	}
	e := j.Engine
	cfg.Engine = EngineConfig{Type: e.Type,
		Threads: e.Threads, Requests: e.Requests, SkipInvalidSamples: e.SkipInvalidSamples}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var ann Annotations
	if err := ann.decode(e.Annotations, "engine.annotations"); err != nil {
		return nil, err
	}
	if ann.Path != "" {
		cfg.Engine.Annotations = &Annotations{Path: ResolvePath(dir, ann.Path)}
	}
	var err error
	if present(e.Metric) {
		if cfg.Engine.Metric, err = DecodeMetric(e.Metric); err != nil {
			return nil, err
		}
	}
	if present(e.DataSource) {
		if cfg.Engine.DataSource, err = DecodeDataSource(e.DataSource, dir); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
	}
	for i, s := range m.Cascade {
		if !present(s.DataSource) {
			continue
		}
		ds, err := DecodeDataSource(s.DataSource, dir)
		if err != nil {
			return nil, fmt.Errorf("model.cascade[%d]: %w", i, err)
		}
		if cfg.StageData == nil {
			cfg.StageData = map[string]DataSource{}
		}
		cfg.StageData[s.Name] = ds
	}
	return cfg, nil
}

// present reports whether a raw entry is given (not absent, not null).
func present(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) > 0 && !isNull(raw)
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

// ModelName is model_name, or the model file's base name without extension.
func (c *Config) ModelName() string {
	if c.Model.Name != "" {
		return c.Model.Name
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
