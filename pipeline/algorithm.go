package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetcal/fleetcal/model"
)

// Algorithm transforms a model (POT's Algorithm). It collects the statistics
// it needs through the Engine it was created with.
type Algorithm interface {
	Name() string
	Run(ctx context.Context, m *model.CompressedModel) (*model.CompressedModel, error)
}

// Reporter is implemented by algorithms with details for report.json.
type Reporter interface {
	Report() any
}

// AlgorithmEnv is what an algorithm is built with besides its parameters.
type AlgorithmEnv struct {
	Engine       Engine
	TargetDevice string
	// DataLen is the number of samples the engine's data loader holds.
	DataLen int
	Log     *slog.Logger
	// Progress, when set, reports progress of long passes by stage name.
	Progress func(stage string, done, total int)
	// Metric is the config's engine.metric (nil without one, or without
	// annotations); accuracy-driven algorithms evaluate with it.
	Metric Metric
	// Data is the engine's data loader, read on this machine (nil when the
	// caller has none): latency-aware steps time models on one sample.
	Data DataLoader
	// Threads is the config's engine.threads (0: ONNX Runtime's default).
	Threads int
}

// AlgorithmFactory builds an algorithm from its raw params (decode them with
// DecodeStrict so an unknown parameter is an error naming it).
type AlgorithmFactory func(params json.RawMessage, env AlgorithmEnv) (Algorithm, error)

var (
	algoMu       sync.RWMutex
	algoRegistry = map[string]AlgorithmFactory{}
)

// RegisterAlgorithm makes an algorithm available to Create by name. It
// panics when the name is already taken: that is a programming error.
func RegisterAlgorithm(name string, f AlgorithmFactory) {
	algoMu.Lock()
	defer algoMu.Unlock()
	if _, dup := algoRegistry[name]; dup {
		panic(fmt.Sprintf("pipeline: algorithm %q registered twice", name))
	}
	algoRegistry[name] = f
}

// RegisterAlgorithmParams registers an algorithm whose parameters decode
// strictly into P (unknown keys are errors naming them):
//
//	func init() { pipeline.RegisterAlgorithmParams(Name, New) }
func RegisterAlgorithmParams[P any, A Algorithm](name string, build func(P, AlgorithmEnv) (A, error)) {
	RegisterAlgorithm(name, func(raw json.RawMessage, env AlgorithmEnv) (Algorithm, error) {
		var p P
		if err := DecodeStrict(raw, &p, "params"); err != nil {
			return nil, err
		}
		a, err := build(p, env)
		if err != nil {
			return nil, err
		}
		return a, nil
	})
}

// AlgorithmNames lists the registered algorithms, sorted.
func AlgorithmNames() []string {
	algoMu.RLock()
	defer algoMu.RUnlock()
	return slices.Sorted(maps.Keys(algoRegistry))
}

// NewAlgorithm builds one registered algorithm.
func NewAlgorithm(name string, params json.RawMessage, env AlgorithmEnv) (Algorithm, error) {
	algoMu.RLock()
	f, ok := algoRegistry[name]
	algoMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: unknown algorithm %q; valid: %s", ErrConfig, name, strings.Join(AlgorithmNames(), ", "))
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	a, err := f(params, env)
	if err != nil {
		return nil, fmt.Errorf("algorithm %s: %w", name, err)
	}
	return a, nil
}

// Pipeline runs algorithms one after the other (POT's Pipeline).
type Pipeline struct {
	engine  Engine
	algos   []Algorithm
	reports []AlgorithmReport
}

// AlgorithmReport is one algorithm's entry in report.json.
type AlgorithmReport struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Details any     `json:"details,omitempty"`
}

// New returns a pipeline running algos with engine.
func New(engine Engine, algos ...Algorithm) *Pipeline {
	return &Pipeline{engine: engine, algos: algos}
}

// Create builds a pipeline from the config's algorithm list (POT's
// create_pipeline); unknown names and parameters are errors.
func Create(configs []AlgorithmConfig, env AlgorithmEnv) (*Pipeline, error) {
	if len(configs) == 0 {
		return nil, fmt.Errorf("%w: compression.algorithms is empty; valid algorithms: %s", ErrConfig, strings.Join(AlgorithmNames(), ", "))
	}
	p := New(env.Engine)
	for i, c := range configs {
		a, err := NewAlgorithm(c.Name, c.Params, env)
		if err != nil {
			return nil, fmt.Errorf("compression.algorithms[%d]: %w", i, err)
		}
		p.algos = append(p.algos, a)
	}
	return p, nil
}

// Algorithms returns the pipeline's algorithms in order.
func (p *Pipeline) Algorithms() []Algorithm { return p.algos }

// Run applies every algorithm to m in order and returns the result. The
// engine's model is set to the input of each algorithm.
func (p *Pipeline) Run(ctx context.Context, m *model.CompressedModel) (*model.CompressedModel, error) {
	p.reports = p.reports[:0]
	for _, a := range p.algos {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p.engine != nil {
			if err := p.engine.SetModel(m); err != nil {
				return nil, fmt.Errorf("%s: set model: %w", a.Name(), err)
			}
		}
		start := time.Now()
		out, err := a.Run(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name(), err)
		}
		r := AlgorithmReport{Name: a.Name(), Seconds: time.Since(start).Seconds()}
		if rep, ok := a.(Reporter); ok {
			r.Details = rep.Report()
		}
		p.reports = append(p.reports, r)
		m = out
	}
	return m, nil
}

// Reports returns what each algorithm of the last Run reported.
func (p *Pipeline) Reports() []AlgorithmReport { return p.reports }
