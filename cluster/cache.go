package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// Cache bounds: runs (with their downloaded data), engines per run (ONNX
// Runtime sessions), decoded model stages.
const (
	maxRuns          = 4
	maxEnginesPerRun = 2
	maxModels        = 8
)

// cache holds what a worker reuses between shards: run specs and their
// data, data loaders, engines and decoded models. Each entry is built once
// by the first shard that needs it; others wait for it. Entries in use are
// never evicted.
type cache struct {
	w   *Worker
	res *resources

	mu     sync.Mutex
	clock  uint64
	runs   map[string]*runEntry // by "<run>@<revision>"
	models map[string]*modelEntry
	tmp    *downloadDir // download root, created on first use

	digests digestCache // of the data files checked (verifyData)
}

// flight is the build state of an entry.
type flight struct {
	ready chan struct{}
	err   error
}

func newFlight() flight { return flight{ready: make(chan struct{})} }

// wait waits for the entry to be built, or for ctx.
func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.ready:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type runEntry struct {
	flight
	key    string
	spec   runWire
	source pipeline.DataSource   // spec.DataSource decoded
	ann    *pipeline.Annotations // spec.Annotations resolved
	tmpDir string
	refs   int
	used   uint64
	// forgotten: the run ended while a shard used it (forget); the last
	// release drops it.
	forgotten bool
	loaders   map[string]*loaderEntry
	engines   map[string]*engineEntry
}

type loaderEntry struct {
	flight
	loader pipeline.DataLoader
}

type engineEntry struct {
	flight
	eng  *engine.Engine
	refs int
	used uint64
}

type modelEntry struct {
	flight
	proto *onnxpb.ModelProto
	used  uint64
}

func newCache(w *Worker) *cache {
	return &cache{w: w, runs: map[string]*runEntry{}, models: map[string]*modelEntry{}}
}

// acquire returns the engine and loader for a shard; release must be
// called when the shard is done with them.
func (c *cache) acquire(ctx context.Context, job *shardMsg) (*engine.Engine, pipeline.DataLoader, func(), error) {
	run, err := c.run(ctx, job)
	if err != nil {
		return nil, nil, nil, err
	}
	releaseRun := func() {
		c.mu.Lock()
		c.release(run)
		c.mu.Unlock()
	}
	stages := make([]*model.Stage, len(job.Model.Stages))
	for i, s := range job.Model.Stages {
		p, err := c.model(ctx, s)
		if err != nil {
			releaseRun()
			return nil, nil, nil, err
		}
		stages[i] = &model.Stage{Name: s.Name, Path: s.Path, Proto: p}
	}
	var inputs []pipeline.TensorInfo
	for _, v := range model.Inputs(stages[0].Proto) {
		inputs = append(inputs, pipeline.TensorInfo{Name: v.Name, DType: pipeline.DType(v.ElemType), Shape: v.Shape})
	}
	sig := inputSignature(inputs)
	loader, err := c.loader(ctx, run, sig, inputs)
	if err != nil {
		releaseRun()
		return nil, nil, nil, err
	}
	ent, err := c.engine(ctx, run, job.Model.key()+"|"+sig, loader, job.Model, stages)
	if err != nil {
		releaseRun()
		return nil, nil, nil, err
	}
	return ent.eng, loader, func() {
		c.mu.Lock()
		ent.refs--
		c.release(run)
		c.mu.Unlock()
	}, nil
}

func inputSignature(inputs []pipeline.TensorInfo) string {
	var b strings.Builder
	for _, in := range inputs {
		fmt.Fprintf(&b, "%s:%d:%v;", in.Name, in.DType, in.Shape)
	}
	return b.String()
}

// run returns the run entry of a shard, fetching the spec (and the shipped
// data) the first time. The caller holds a reference.
func (c *cache) run(ctx context.Context, job *shardMsg) (*runEntry, error) {
	key := fmt.Sprintf("%s@%d", job.Run, job.RunRev)
	c.mu.Lock()
	r, ok := c.runs[key]
	if !ok {
		r = &runEntry{flight: newFlight(), key: key, loaders: map[string]*loaderEntry{}, engines: map[string]*engineEntry{}}
		c.runs[key] = r
	}
	r.refs++
	c.clock++
	r.used = c.clock
	c.mu.Unlock()
	if !ok {
		r.err = c.loadRun(ctx, job, r)
		c.mu.Lock()
		if r.err != nil {
			delete(c.runs, key)
		} else {
			c.evictRuns()
		}
		c.mu.Unlock()
		close(r.ready)
	}
	if err := r.wait(ctx); err != nil {
		c.mu.Lock()
		c.release(r)
		c.mu.Unlock()
		return nil, err
	}
	return r, nil
}

func (c *cache) loadRun(ctx context.Context, job *shardMsg, r *runEntry) error {
	ent, err := c.res.runs.Get(ctx, job.Run)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("run %s: %w: no spec in %s", job.Run, errRunEnded, RunsBucket)
	}
	if err != nil {
		return fmt.Errorf("run %s: spec: %w", job.Run, err)
	}
	if ent.Revision() != job.RunRev {
		return fmt.Errorf("run %s: spec revision %d, the shard wants %d (the run was restarted)", job.Run, ent.Revision(), job.RunRev)
	}
	if err := unseal(job.key, purposeRun, job.Run, ent.Value(), &r.spec); err != nil {
		return fmt.Errorf("run %s: spec: %w", job.Run, err)
	}
	if r.spec.RunID != job.Run {
		return fmt.Errorf("run %s: spec: %w: it is run %q's", job.Run, ErrBadMessage, r.spec.RunID)
	}
	if len(r.spec.Files) == 0 {
		if err := r.decodeSource(""); err != nil {
			return err
		}
		start := time.Now()
		if err := verifyData(ctx, r.spec.Data, r.source, r.ann, &c.digests); err != nil {
			return fmt.Errorf("run %s: %w (workers without the coordinator's files: quantize --ship-data)", job.Run, err)
		}
		if r.spec.Data != nil {
			c.w.log.Info("data files match the coordinator's", "run", job.Run, "files", len(r.spec.Data.Files), "seconds", time.Since(start).Seconds())
		}
		return nil
	}
	c.mu.Lock()
	if c.tmp == nil {
		d, err := newDownloadDir(c.w.opts.TempDir)
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("run %s: download folder: %w", job.Run, err)
		}
		c.tmp = d
	}
	root := c.tmp.path
	c.mu.Unlock()
	dir, err := os.MkdirTemp(root, job.Run+"-")
	if err != nil {
		return fmt.Errorf("run %s: download folder: %w", job.Run, err)
	}
	start := time.Now()
	if err := download(ctx, c.res.data, r.spec.Files, dir); err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("run %s: %w", job.Run, err)
	}
	c.w.log.Info("downloaded run data", "run", job.Run, "files", len(r.spec.Files), "seconds", time.Since(start).Seconds())
	r.tmpDir = dir
	return r.decodeSource(dir)
}

// decodeSource decodes the run's data source through the registry, its
// relative paths (shipped data) resolved against dir. A type this worker
// binary does not register is a setup failure: another worker may have it.
func (r *runEntry) decodeSource(dir string) error {
	src, err := r.spec.DataSource.decode(dir)
	if errors.Is(err, pipeline.ErrUnknownDataSource) {
		return fmt.Errorf("run %s: this worker binary does not register the data source type (data.Register before worker.Main): %w", r.spec.RunID, err)
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", r.spec.RunID, err)
	}
	r.source = src
	if a := r.spec.Annotations; a != nil && a.Path != "" {
		r.ann = &pipeline.Annotations{Path: pipeline.ResolvePath(dir, a.Path)}
	}
	return nil
}

// evictRuns drops the least recently used idle runs beyond maxRuns. c.mu is held.
func (c *cache) evictRuns() {
	for len(c.runs) > maxRuns {
		var victim *runEntry
		for _, r := range c.runs {
			if r.refs == 0 && isReady(&r.flight) && (victim == nil || r.used < victim.used) {
				victim = r
			}
		}
		if victim == nil {
			return
		}
		delete(c.runs, victim.key)
		c.dropRun(victim)
	}
}

// dropRun closes a run's engines and removes its downloads. c.mu is held
// and the run is unused.
func (c *cache) dropRun(r *runEntry) {
	for _, e := range r.engines {
		if isReady(&e.flight) && e.eng != nil {
			_ = e.eng.Close()
		}
	}
	if r.tmpDir != "" {
		_ = os.RemoveAll(r.tmpDir)
	}
}

func isReady(f *flight) bool {
	select {
	case <-f.ready:
		return true
	default:
		return false
	}
}

// model returns a decoded model stage, fetching and verifying it the first time.
func (c *cache) model(ctx context.Context, s stageRef) (*onnxpb.ModelProto, error) {
	c.mu.Lock()
	m, ok := c.models[s.Digest]
	if !ok {
		m = &modelEntry{flight: newFlight()}
		c.models[s.Digest] = m
	}
	c.clock++
	m.used = c.clock
	c.mu.Unlock()
	if !ok {
		m.proto, m.err = c.fetchModel(ctx, s)
		c.mu.Lock()
		if m.err != nil {
			delete(c.models, s.Digest)
		} else {
			c.evictModels()
		}
		c.mu.Unlock()
		close(m.ready)
	}
	if err := m.wait(ctx); err != nil {
		return nil, err
	}
	return m.proto, nil
}

func (c *cache) fetchModel(ctx context.Context, s stageRef) (*onnxpb.ModelProto, error) {
	start := time.Now()
	b, err := getObject(ctx, c.res.models, s.Digest)
	if err != nil {
		return nil, fmt.Errorf("model stage %s: object store %s: get %s: %w", s.Name, ModelsBucket, s.Digest, err)
	}
	if got := sum(b); got != s.Digest {
		return nil, fmt.Errorf("model stage %s: %w: SHA-256 %s, want %s", s.Name, ErrBadResult, got, s.Digest)
	}
	p, err := model.LoadBytes(s.Name, b)
	if err != nil {
		return nil, fmt.Errorf("model stage %s: %w", s.Name, err)
	}
	c.w.m.ModelFetchSeconds.Observe(time.Since(start).Seconds())
	return p, nil
}

// evictModels drops the least recently used decoded models beyond maxModels.
func (c *cache) evictModels() {
	for len(c.models) > maxModels {
		var victim string
		var oldest uint64
		for d, m := range c.models {
			if isReady(&m.flight) && (victim == "" || m.used < oldest) {
				victim, oldest = d, m.used
			}
		}
		if victim == "" {
			return
		}
		delete(c.models, victim)
	}
}

// loader returns the run's data loader for a model with these inputs.
func (c *cache) loader(ctx context.Context, r *runEntry, sig string, inputs []pipeline.TensorInfo) (pipeline.DataLoader, error) {
	c.mu.Lock()
	l, ok := r.loaders[sig]
	if !ok {
		l = &loaderEntry{flight: newFlight()}
		r.loaders[sig] = l
	}
	c.mu.Unlock()
	if !ok {
		l.loader, l.err = c.openLoader(ctx, r, inputs)
		if l.err != nil {
			c.mu.Lock()
			delete(r.loaders, sig)
			c.mu.Unlock()
		}
		close(l.ready)
	}
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.loader, nil
}

func (c *cache) openLoader(ctx context.Context, r *runEntry, inputs []pipeline.TensorInfo) (pipeline.DataLoader, error) {
	l, err := r.source.Open(ctx, inputs, r.ann)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", r.spec.RunID, err)
	}
	if c.w.opts.WrapLoader != nil {
		l = c.w.opts.WrapLoader(l)
	}
	return l, nil
}

// engine returns the run's engine for a model, creating its sessions the
// first time. The caller holds a reference on the result.
func (c *cache) engine(ctx context.Context, r *runEntry, key string, loader pipeline.DataLoader, ref modelRef, stages []*model.Stage) (*engineEntry, error) {
	c.mu.Lock()
	e, ok := r.engines[key]
	if !ok {
		e = &engineEntry{flight: newFlight()}
		r.engines[key] = e
	}
	e.refs++
	c.clock++
	e.used = c.clock
	c.mu.Unlock()
	if !ok {
		e.eng, e.err = c.newEngine(loader, ref, stages, &r.spec)
		c.mu.Lock()
		if e.err != nil {
			delete(r.engines, key)
		} else {
			c.evictEngines(r)
		}
		c.mu.Unlock()
		close(e.ready)
	}
	if err := e.wait(ctx); err != nil {
		c.mu.Lock()
		e.refs--
		c.mu.Unlock()
		return nil, err
	}
	return e, nil
}

func (c *cache) newEngine(loader pipeline.DataLoader, ref modelRef, stages []*model.Stage, spec *runWire) (*engine.Engine, error) {
	opts := engine.Options{Threads: c.w.opts.Threads, Requests: 1, SkipInvalidSamples: spec.SkipInvalid}
	if spec.Postprocess != "" {
		// A worker binary without the user's function: retried elsewhere
		// (kind setup), as an unknown data source type is.
		f, err := pipeline.LookupPostprocess(spec.Postprocess)
		if err != nil {
			return nil, fmt.Errorf("run %s: this worker binary does not register the postprocess (pipeline.RegisterPostprocess before worker.Main): %w", spec.RunID, err)
		}
		opts.Postprocess = f
	}
	eng, err := engine.New(loader, opts)
	if err != nil {
		return nil, err
	}
	// Not a shard's ctx: the engine is shared by every shard waiting on it.
	if err := eng.SetModel(context.Background(), model.NewCompressedModel(ref.Name, ref.Cascade, stages...)); err != nil {
		_ = eng.Close()
		return nil, err
	}
	return eng, nil
}

// evictEngines closes the least recently used idle engines of r beyond
// maxEnginesPerRun. c.mu is held.
func (c *cache) evictEngines(r *runEntry) {
	for len(r.engines) > maxEnginesPerRun {
		var victim string
		var oldest uint64
		for k, e := range r.engines {
			if e.refs == 0 && isReady(&e.flight) && (victim == "" || e.used < oldest) {
				victim, oldest = k, e.used
			}
		}
		if victim == "" {
			return
		}
		_ = r.engines[victim].eng.Close()
		delete(r.engines, victim)
	}
}

// close releases every engine and download; the worker is stopping.
func (c *cache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, r := range c.runs {
		if isReady(&r.flight) {
			c.dropRun(r)
		}
		delete(c.runs, k)
	}
	if c.tmp != nil {
		c.tmp.remove()
		c.tmp = nil
	}
}

// forget drops the idle entries of a run that is gone (sessions and
// downloaded data); entries in use go when their shards release them and
// the run is evicted.
func (c *cache) forget(run string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, r := range c.runs {
		if !strings.HasPrefix(k, run+"@") {
			continue
		}
		if r.refs == 0 && isReady(&r.flight) {
			delete(c.runs, k)
			c.dropRun(r)
		} else {
			// A shard being stopped still holds it: its release drops it.
			r.forgotten = true
		}
	}
}

// release drops a reference to r, and r itself when it was forgotten
// (its run ended) and this was the last. c.mu is held.
func (c *cache) release(r *runEntry) {
	r.refs--
	if r.refs == 0 && r.forgotten && isReady(&r.flight) && c.runs[r.key] == r {
		delete(c.runs, r.key)
		c.dropRun(r)
	}
}
