package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// Options configures an Engine.
type Options struct {
	// Threads is ONNX Runtime's intra-op thread count per inference (default 1).
	Threads int
	// Requests is the number of inferences run in parallel (default 1).
	Requests int
	// Postprocess, when set, rewrites each sample's outputs before the metric
	// sees them (POT's postprocess_output); meta is the sample's Metadata.
	// It is called for one sample at a time, in sample-index order.
	Postprocess func(outputs map[string]pipeline.Tensor, meta map[string]any) (map[string]pipeline.Tensor, error)
	// SkipInvalidSamples skips samples whose data holds NaN or Inf (errors
	// wrapping pipeline.ErrInvalidSample) instead of failing; Predict lists
	// them in PredictResult.Skipped.
	SkipInvalidSamples bool
	// AllowNonFiniteInputs feeds NaN/Inf input values to the model instead
	// of rejecting the sample; statistics then count and exclude them.
	AllowNonFiniteInputs bool
	// Strategy chooses how min/max-like statistics are computed; the zero
	// value picks the default. Other values exist for benchmarks.
	Strategy Strategy
}

// Engine runs a model with ONNX Runtime over a DataLoader and collects
// statistics on its activations (POT's IEEngine). Predict may be called
// from several goroutines; SetModel and Close wait for running Predicts.
type Engine struct {
	loader pipeline.DataLoader
	opts   Options

	mu     sync.RWMutex // SetModel and Close (write) against Predict (read)
	closed bool
	cur    *modelState // the model of SetModel
}

// modelState is a model loaded into ONNX Runtime: the sessions of its
// stages, the plans built on them and the runners of finished Predicts.
type modelState struct {
	stages []*stage
	nodes  *pipeline.NodeIndex   // for layouts naming nodes
	fed    []pipeline.TensorInfo // inputs that come from samples
	batch  bool                  // samples of a batch can be concatenated along axis 0

	planMu sync.Mutex
	plans  map[string]*plan

	// idle holds the runners of finished Predicts, so that later ones reuse
	// their output buffers (allocating large tensors costs page faults).
	idleMu sync.Mutex
	idle   []map[*Session]*runner
}

var _ pipeline.Engine = (*Engine)(nil)

// New returns an engine reading samples from loader. It calls Init.
func New(loader pipeline.DataLoader, opts Options) (*Engine, error) {
	if loader == nil {
		return nil, errors.New("engine: nil data loader")
	}
	if err := Init(); err != nil {
		return nil, err
	}
	opts.Threads = max(opts.Threads, 1)
	opts.Requests = max(opts.Requests, 1)
	return &Engine{loader: loader, opts: opts}, nil
}

// DataLen is the number of samples of the engine's data loader
// (pipeline.DataLener: algorithms take it when AlgorithmEnv.DataLen is 0).
func (e *Engine) DataLen() int { return e.loader.Len() }

// SetModel loads every stage of m into ONNX Runtime. For a cascade, the
// stages run in order and each stage's outputs feed the inputs of later
// stages by name; the samples provide the other inputs. An error names the
// stage and file ONNX Runtime rejected. When ctx ends first, the sessions
// made are released and the engine keeps its model.
func (e *Engine) SetModel(ctx context.Context, m *model.CompressedModel) error {
	ms, err := e.load(ctx, m)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		ms.close()
		return fmt.Errorf("engine: %w", ErrClosed)
	}
	if e.cur != nil {
		e.cur.close()
	}
	e.cur = ms
	return nil
}

// load creates the sessions of every stage of m.
func (e *Engine) load(ctx context.Context, m *model.CompressedModel) (*modelState, error) {
	if m == nil || len(m.Models()) == 0 {
		return nil, fmt.Errorf("%w: empty model", ErrBadModel)
	}
	ms := &modelState{batch: true, plans: map[string]*plan{}}
	produced := map[string]bool{}
	for _, mst := range m.Models() {
		if err := ctx.Err(); err != nil {
			ms.close()
			return nil, err
		}
		st := &stage{name: mst.Name, path: mst.Path, proto: mst.Proto}
		if mst.Proto.GetGraph() == nil {
			ms.close()
			return nil, fmt.Errorf("stage %s: %w: no graph", st.label(), ErrBadModel)
		}
		data, err := marshalModel(mst.Proto)
		if err != nil {
			ms.close()
			return nil, fmt.Errorf("stage %s: %w: %v", st.label(), ErrBadModel, err)
		}
		st.catalog = newCatalog(mst.Proto)
		st.opset = model.OpsetVersion(mst.Proto)
		st.inputs, st.outputs = graphIO(mst.Proto)
		if st.plain, err = newSession(data, st.inputs, st.outputs, e.opts.Threads); err != nil {
			ms.close()
			return nil, fmt.Errorf("stage %s: %w", st.label(), err)
		}
		ms.stages = append(ms.stages, st)
		for _, in := range st.inputs {
			if len(in.Shape) == 0 || in.Shape[0] >= 0 {
				ms.batch = false
			}
			if !produced[in.Name] && !slices.ContainsFunc(ms.fed, func(f pipeline.TensorInfo) bool { return f.Name == in.Name }) {
				ms.fed = append(ms.fed, in)
			}
		}
		for _, o := range st.outputs {
			produced[o.Name] = true
		}
	}
	protos := make([]*onnxpb.ModelProto, len(ms.stages))
	for i, st := range ms.stages {
		protos[i] = st.proto
	}
	ms.nodes = pipeline.NewNodeIndex(protos)
	return ms, nil
}

// takeRunners returns a set of idle runners, or a new empty one.
func (ms *modelState) takeRunners() map[*Session]*runner {
	ms.idleMu.Lock()
	defer ms.idleMu.Unlock()
	if n := len(ms.idle); n > 0 {
		r := ms.idle[n-1]
		ms.idle = ms.idle[:n-1]
		return r
	}
	return map[*Session]*runner{}
}

// putRunners makes runners available to the next Predict.
func (ms *modelState) putRunners(r map[*Session]*runner) {
	ms.idleMu.Lock()
	defer ms.idleMu.Unlock()
	ms.idle = append(ms.idle, r)
}

// close destroys the sessions of the model; no Predict may be using it.
func (ms *modelState) close() {
	ms.idleMu.Lock()
	for _, rs := range ms.idle {
		for _, r := range rs {
			r.close()
		}
	}
	ms.idle = nil
	ms.idleMu.Unlock()
	ms.planMu.Lock()
	for k, p := range ms.plans {
		p.close()
		delete(ms.plans, k)
	}
	ms.planMu.Unlock()
	for _, st := range ms.stages {
		_ = st.plain.Close()
	}
	ms.stages, ms.fed = nil, nil
}

// Close destroys every ONNX Runtime session of the engine.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil {
		e.cur.close()
		e.cur = nil
	}
	e.closed = true
	return nil
}

// planFor returns the (cached) plan computing layout on ms.
func (e *Engine) planFor(ms *modelState, layout pipeline.StatsLayout) (*plan, error) {
	s := e.opts.Strategy.resolve()
	key := layoutKey(layout, s)
	ms.planMu.Lock()
	defer ms.planMu.Unlock()
	if p, ok := ms.plans[key]; ok {
		return p, nil
	}
	p, err := buildPlan(ms.stages, layout, s, true, e.opts.Threads)
	if err != nil {
		return nil, err
	}
	ms.plans[key] = p
	return p, nil
}

// Predict runs the model over the samples of opts.Sampler, in parallel
// requests, updating opts.Metric in sample-index order and collecting the
// statistics of opts.StatsLayout per sample. The result does not depend on
// Options.Requests. The first error stops the pass and names the sample;
// when ctx ends, Predict returns ctx.Err().
func (e *Engine) Predict(ctx context.Context, opts pipeline.PredictOptions) (pipeline.PredictResult, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return pipeline.PredictResult{}, fmt.Errorf("engine: %w", ErrClosed)
	}
	ms := e.cur
	if opts.Model != nil {
		// A model of this call only: its sessions live as long as the call.
		var err error
		if ms, err = e.load(ctx, opts.Model); err != nil {
			return pipeline.PredictResult{}, err
		}
		defer ms.close()
	}
	if ms == nil {
		return pipeline.PredictResult{}, fmt.Errorf("engine: %w", ErrNoModel)
	}
	// A layout may name nodes (their first output), as POT's does.
	asked := opts.StatsLayout
	layout, aliases := ms.nodes.Resolve(asked)
	p, err := e.planFor(ms, layout)
	if err != nil {
		return pipeline.PredictResult{}, err
	}
	sampler := opts.Sampler
	if sampler == nil {
		sampler = pipeline.NewBatchSampler(e.loader.Len(), 1, nil)
	}
	batches := sampler.Batches()
	order, err := e.checkIndices(batches)
	if err != nil {
		return pipeline.PredictResult{}, err
	}
	if opts.Metric != nil {
		opts.Metric.Reset()
	}
	col := &collector{metric: opts.Metric, progress: opts.Progress, total: len(order)}
	if opts.Metric != nil {
		col.feed = pipeline.NewMetricFeed(opts.Metric, order, pipeline.MetricFeedOptions{
			PerSample: opts.MetricPerSample, Postprocess: e.opts.Postprocess, WrapError: sampleErr})
	}
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	workers := make([]*worker, min(e.opts.Requests, len(batches)))
	for i := range workers {
		w := &worker{e: e, m: ms, p: p, col: col, set: reduce.NewSet(), runners: ms.takeRunners()}
		workers[i] = w
		g.Go(func() error {
			defer ms.putRunners(w.runners)
			for {
				b := int(next.Add(1) - 1)
				if b >= len(batches) {
					return nil
				}
				if err := gctx.Err(); err != nil {
					return err
				}
				if err := w.item(gctx, batches[b]); err != nil {
					return err
				}
				col.done(len(batches[b]))
			}
		})
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return pipeline.PredictResult{}, ctx.Err()
	}
	if err != nil {
		return pipeline.PredictResult{}, err
	}
	slices.Sort(col.skipped)
	res := pipeline.PredictResult{Stats: reduce.NewSet(), Samples: len(order) - len(col.skipped),
		Skipped: col.skipped}
	if col.feed != nil {
		res.PerSample = col.feed.PerSample()
	}
	for _, w := range workers {
		if err := res.Stats.Merge(w.set); err != nil {
			return pipeline.PredictResult{}, err
		}
	}
	if opts.Metric != nil {
		res.Metrics = opts.Metric.AvgValue()
	}
	aliases.Apply(res.Stats, asked)
	return res, nil
}

// checkIndices rejects indices out of range or visited twice and returns
// every index visited, ascending.
func (e *Engine) checkIndices(batches [][]int) ([]int, error) {
	n := e.loader.Len()
	var order []int
	for _, b := range batches {
		for _, i := range b {
			if i < 0 || i >= n {
				return nil, fmt.Errorf("sampler: sample %d: %w (data set has %d samples)", i, pipeline.ErrIndexOutOfRange, n)
			}
			order = append(order, i)
		}
	}
	slices.Sort(order)
	for i := 1; i < len(order); i++ {
		if order[i] == order[i-1] {
			return nil, fmt.Errorf("sampler: sample %d visited twice", order[i])
		}
	}
	return order, nil
}

// checkSample validates a sample's inputs against the model inputs it
// feeds and returns its number of rows (the common size of its inputs'
// axis 0), or -1 when the sample cannot be concatenated with others.
func (e *Engine) checkSample(ms *modelState, s pipeline.Sample) (int, error) {
	rows, scalar := -1, false
	for i, info := range ms.fed {
		t, ok := s.Inputs[info.Name]
		if !ok {
			return 0, badInput("input %q missing (model inputs: %s)", info.Name, infoNames(ms.fed))
		}
		if err := checkInput(info, t); err != nil {
			return 0, err
		}
		if !e.opts.AllowNonFiniteInputs {
			if err := checkFinite(info.Name, t); err != nil {
				return 0, err
			}
		}
		switch {
		case len(t.Shape) == 0:
			scalar = true // a 0-d input has no batch axis
		case i == 0:
			rows = int(t.Shape[0])
		case rows != int(t.Shape[0]):
			rows = -1
		}
	}
	if len(s.Inputs) != len(ms.fed) {
		for name := range s.Inputs {
			if !slices.ContainsFunc(ms.fed, func(f pipeline.TensorInfo) bool { return f.Name == name }) {
				return 0, badInput("input %q is not a model input (model inputs: %s)", name, infoNames(ms.fed))
			}
		}
	}
	if !ms.batch || rows < 1 || scalar {
		rows = -1
	}
	return rows, nil
}

// checkFinite rejects float inputs holding NaN or ±Inf, naming the first.
func checkFinite(name string, t pipeline.Tensor) error {
	bad := func(i int, v float64) error {
		return fmt.Errorf("input %q: %v at element %d: %w", name, v, i, pipeline.ErrInvalidSample)
	}
	switch d := t.Data.(type) {
	case []float32:
		if _, _, finite := minMaxC(d); finite {
			return nil // the usual case, vectorized
		}
		for i, v := range d {
			if math.Float32bits(v)&absMask >= expAllOnes {
				return bad(i, float64(v))
			}
		}
	case []float64:
		for i, v := range d {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return bad(i, v)
			}
		}
	}
	return nil
}

// inputError is a bad-input error whose message does not repeat "bad
// input": it matches ErrBadInput with errors.Is, and unwraps to its cause.
type inputError struct {
	msg string
	err error
}

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrBadInput }
func (e *inputError) Unwrap() error        { return e.err }

// badInput formats an inputError; a %w verb sets its cause.
func badInput(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &inputError{msg: err.Error(), err: errors.Unwrap(err)}
}

// sampleErr prefixes err with the sample index and, if known, its file.
func sampleErr(index int, meta map[string]any, err error) error {
	if p, ok := meta["path"]; ok {
		return fmt.Errorf("sample %d (%v): %w", index, p, err)
	}
	return fmt.Errorf("sample %d: %w", index, err)
}

// collector delivers outputs to the metric in sample-index order (a
// pipeline.MetricFeed) and reports progress.
type collector struct {
	mu       sync.Mutex
	metric   pipeline.Metric
	feed     *pipeline.MetricFeed // nil without a metric
	progress func(done, total int)
	total    int
	finished int
	err      error // the first postprocess or metric error: no more updates
	skipped  []int // samples left out as invalid
}

// deliver hands over a sample's outputs and updates the metric with every
// sample now in sequence.
func (c *collector) deliver(index int, out pipeline.FeedItem) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.err = c.feed.Add(index, out)
	return c.err
}

// skip records an invalid sample left out of the pass.
func (c *collector) skip(index int) error {
	c.mu.Lock()
	c.skipped = append(c.skipped, index)
	c.mu.Unlock()
	if c.metric == nil {
		return nil
	}
	return c.deliver(index, pipeline.FeedItem{Skip: true})
}

// done records n more samples done and calls the progress callback.
func (c *collector) done(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished += n
	if c.progress != nil {
		c.progress(c.finished, c.total)
	}
}
