package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
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
	// When 0, NewAlgorithm takes it from Data, else from an Engine that
	// implements DataLener (the ONNX Runtime and cluster engines do).
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

// DataLener is implemented by engines that know how many samples their
// data loader holds.
type DataLener interface {
	DataLen() int
}

// fillDataLen sets env.DataLen from env.Data or the engine when it is 0; an
// engine that cannot say is an error naming the field.
func fillDataLen(env *AlgorithmEnv) error {
	if env.DataLen != 0 || env.Engine == nil {
		return nil
	}
	dl, ok := env.Engine.(DataLener)
	switch {
	case env.Data != nil:
		env.DataLen = env.Data.Len()
	case ok:
		env.DataLen = dl.DataLen()
	default:
		return fmt.Errorf("%w: AlgorithmEnv.DataLen is 0 and the engine (%T) does not say how many samples it holds: set DataLen to its data loader's Len()", ErrConfig, env.Engine)
	}
	if env.DataLen <= 0 {
		return fmt.Errorf("%w: AlgorithmEnv.DataLen is 0 and the engine (%T) reports %d samples: an empty data set, or an engine not told its length (cluster.RunSpec.Len)", ErrConfig, env.Engine, env.DataLen)
	}
	return nil
}

// AlgorithmFactory builds an algorithm from its raw params (decode them with
// DecodeStrict so an unknown parameter is an error naming it).
type AlgorithmFactory func(params json.RawMessage, env AlgorithmEnv) (Algorithm, error)

var algorithms = NewRegistry[AlgorithmFactory]("pipeline: algorithm")

// RegisterAlgorithm makes an algorithm available to Create by name. It
// panics when the name is already taken: that is a programming error.
func RegisterAlgorithm(name string, f AlgorithmFactory) {
	algorithms.Register(name, f)
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
func AlgorithmNames() []string { return algorithms.Names() }

// NewAlgorithm builds one registered algorithm.
func NewAlgorithm(name string, params json.RawMessage, env AlgorithmEnv) (Algorithm, error) {
	f, ok := algorithms.Get(name)
	if !ok {
		return nil, unknownAlgorithm(name)
	}
	if err := fillDataLen(&env); err != nil {
		return nil, fmt.Errorf("algorithm %s: %w", name, err)
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

// importAll is the import that registers the built-in algorithms.
const importAll = `import _ "github.com/fleetcal/fleetcal/algorithms/all"`

// unknownAlgorithm lists the valid names, or says how to register the
// built-ins when none is registered.
func unknownAlgorithm(name string) error {
	names := AlgorithmNames()
	if len(names) == 0 {
		return fmt.Errorf("%w: unknown algorithm %q: no algorithm is registered; register the built-in ones with %s", ErrConfig, name, importAll)
	}
	return fmt.Errorf("%w: unknown algorithm %q; valid: %s", ErrConfig, name, strings.Join(names, ", "))
}

// AlgorithmError is an error of Create about one of its configs: Index is
// its position in the list (a config file's compression.algorithms[Index]).
type AlgorithmError struct {
	Index int
	Err   error
}

func (e *AlgorithmError) Error() string {
	return fmt.Sprintf("algorithm config %d: %v", e.Index, e.Err)
}
func (e *AlgorithmError) Unwrap() error { return e.Err }

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

// Create builds a pipeline from a list of algorithm configs (POT's
// create_pipeline); unknown names and parameters are errors. An error about
// one config is an *AlgorithmError holding its index. The built-in
// algorithms are registered by importing algorithms/all:
//
//	import _ "github.com/fleetcal/fleetcal/algorithms/all"
func Create(configs []AlgorithmConfig, env AlgorithmEnv) (*Pipeline, error) {
	if len(configs) == 0 {
		if len(AlgorithmNames()) == 0 {
			return nil, fmt.Errorf("%w: no algorithm config given, and no algorithm is registered: register the built-in ones with %s", ErrConfig, importAll)
		}
		return nil, fmt.Errorf("%w: no algorithm config given; valid algorithms: %s", ErrConfig, strings.Join(AlgorithmNames(), ", "))
	}
	p := New(env.Engine)
	for i, c := range configs {
		a, err := NewAlgorithm(c.Name, c.Params, env)
		if err != nil {
			return nil, &AlgorithmError{Index: i, Err: err}
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
			if err := p.engine.SetModel(ctx, m); err != nil {
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
