package model

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Config describes the model to load (POT's model config: model_name, model,
// weights, or cascade). Relative paths resolve against BaseDir.
type Config struct {
	// Name is the model name (model_name); it defaults to Model's base name
	// without extension.
	Name string
	// Model is the .onnx file of a single model.
	Model string
	// Weights, if set, is the external-data file the model's external
	// tensors are read from, whatever location the model records.
	Weights string
	// Cascade lists the stages of a cascaded model, instead of Model.
	Cascade []StageConfig
	// BaseDir is the folder relative paths resolve against (the config
	// file's folder); "" means the working directory.
	BaseDir string
}

// StageConfig is one stage of a cascade.
type StageConfig struct {
	Name    string
	Model   string
	Weights string
}

func (c Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.BaseDir, p)
}

// Validate reports the first problem of c, wrapping ErrConfig.
func (c Config) Validate() error {
	switch {
	case c.Model == "" && len(c.Cascade) == 0:
		return fmt.Errorf("%w: neither model nor cascade is set", ErrConfig)
	case c.Model != "" && len(c.Cascade) > 0:
		return fmt.Errorf("%w: both model and cascade are set", ErrConfig)
	case c.Model == "" && c.Weights != "":
		return fmt.Errorf("%w: weights %q without model (set weights per cascade stage)", ErrConfig, c.Weights)
	}
	seen := map[string]bool{}
	for i, s := range c.Cascade {
		switch {
		case s.Name == "":
			return fmt.Errorf("%w: cascade stage %d has no name", ErrConfig, i)
		case !validFileName(s.Name):
			return fmt.Errorf("%w: cascade stage name %q cannot be a file name", ErrConfig, s.Name)
		case seen[s.Name]:
			return fmt.Errorf("%w: cascade stage name %q appears twice", ErrConfig, s.Name)
		case s.Model == "":
			return fmt.Errorf("%w: cascade stage %q has no model", ErrConfig, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// validFileName reports whether s can name a file inside a folder.
func validFileName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`+"\x00") && filepath.IsLocal(s)
}

// Load loads the model or the cascade cfg describes (POT's load_model).
// Each stage's proto is self-contained: external data is read in memory and
// Stage.ExternalData records that Save should write it out again.
func Load(cfg Config) (*CompressedModel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Model != "" {
		name := cfg.Name
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(cfg.Model), filepath.Ext(cfg.Model))
		}
		s, err := loadStage(name, cfg.resolve(cfg.Model), cfg.resolve(cfg.Weights))
		if err != nil {
			return nil, err
		}
		return NewCompressedModel(name, false, s), nil
	}
	stages := make([]*Stage, 0, len(cfg.Cascade))
	for _, sc := range cfg.Cascade {
		s, err := loadStage(sc.Name, cfg.resolve(sc.Model), cfg.resolve(sc.Weights))
		if err != nil {
			return nil, fmt.Errorf("cascade stage %q: %w", sc.Name, err)
		}
		stages = append(stages, s)
	}
	return NewCompressedModel(cfg.Name, true, stages...), nil
}

func loadStage(name, path, weights string) (*Stage, error) {
	p, ext, err := loadFile(path, weights)
	if err != nil {
		return nil, err
	}
	return &Stage{Name: name, Proto: p, Path: path, ExternalData: ext}, nil
}
