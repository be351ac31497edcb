package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// RunSpec tells workers how to open the data of a run.
type RunSpec struct {
	// RunID names the run in subjects and keys: letters, digits, '-' and
	// '_', at most 64. Default: a random id.
	RunID string
	// DataSource is the run's data: a config's engine.data_source as
	// pipeline.LoadConfig decodes it, or a data source built in Go (such as
	// a data.Config). Workers receive its type name and JSON and decode it
	// through their own registry, so every worker binary registers its type
	// (the built-in ones: by importing package data, as cmd/worker does).
	// Its files must be the same on every worker (relative paths: under
	// each worker's working directory), unless ShipData is set.
	DataSource pipeline.DataSource
	// Annotations is the config's engine.annotations (nil: none).
	Annotations *pipeline.Annotations
	// ShipData puts the data files (DataSource.Files: for package data's
	// types, the data_source folder, recursively, or the folder of a
	// data_source file; and the annotations file) in the Object Store;
	// workers download them and read their copy (DataSource.Rebase).
	ShipData bool
	// SkipInvalidSamples makes workers skip samples holding NaN or Inf
	// (engine.skip_invalid_samples); Predict lists them in Skipped.
	SkipInvalidSamples bool
	// SameHost says that every worker reads this machine's files (local
	// workers of an embedded server that does not listen): the data files
	// are then not hashed for workers to compare (see verifyData).
	SameHost bool
	// Postprocess names a function registered with
	// pipeline.RegisterPostprocess that workers run on each sample's outputs
	// before sending them to the coordinator's metric (POT's
	// postprocess_output): every worker binary must register it (see
	// package worker). Empty: none.
	Postprocess string
	// Len is the number of samples of the data set; Predict needs it only
	// when PredictOptions.Sampler is nil, and checks indices against it
	// when set.
	Len int
}

// EngineOptions configures the coordinator side.
type EngineOptions struct {
	// ShardSize is the number of samples per shard (default 16). It is
	// rounded up to a multiple of the sampler's batch size so that shards
	// hold whole batches.
	ShardSize int
	// AckWait is how long a worker may stay silent on a shard before it is
	// redelivered (default 30s); workers heartbeat every AckWait/3.
	AckWait time.Duration
	// MaxDeliver is the number of deliveries of a shard before it is
	// dead-lettered: split in two, or reported when it holds one sample
	// (default 4). Failures any worker would repeat are final on the first
	// delivery (ErrDeterministic).
	MaxDeliver int
	// RetryDelay is how long a failed shard waits before its redelivery
	// (default 250ms).
	RetryDelay time.Duration
	// IdleTimeout fails a Predict during which no worker took or progressed
	// any shard for that long (default max(60s, 2×AckWait); negative: never).
	IdleTimeout time.Duration
	// ORTVersion is the ONNX Runtime version workers must run; default
	// engine.Version() of this process ("" when it has none: any version).
	ORTVersion string
	// Metrics, when set, receives the coordinator's metrics.
	Metrics *CoordinatorMetrics
	// Log receives progress and warnings (default: discarded).
	Log *slog.Logger
	// Resume makes the run resumable: Predict ids are derived from the run
	// id and what each Predict computes (not from a random nonce), results
	// are read back from ResultsBucket before shards are published, and
	// partials stay in the object store until their Predict ends. A
	// coordinator started again with the same RunSpec.RunID (and secret) on
	// the same NATS server after one died finds the results the dead one's
	// shards stored, publishes only the shards without one, and gives the
	// same bits. Off, a Predict never reads a result it did not ask for.
	Resume bool
	// Secret is the fleet secret the coordinator shares with its workers
	// (at least MinSecretLen bytes; required). Run specs, shards and results
	// are authenticated with a key derived from it (runKey); results
	// without a valid MAC are dropped (see package doc).
	Secret string
}

// Engine is the coordinator side of the cluster: a pipeline.Engine whose
// Predict runs the shards of the sampler on workers and merges their
// partial statistics. SetModel and Predict may be called from several
// goroutines.
type Engine struct {
	nc     *nats.Conn
	res    *resources
	stream jetstream.Stream
	spec   RunSpec
	opts   EngineOptions
	log    *slog.Logger
	m      *CoordinatorMetrics
	nonce  string
	// resumeIDs counts the Predicts of each content digest (Resume).
	idMu      sync.Mutex
	resumeIDs map[string]int
	seq       atomic.Uint64
	key       []byte // runKey(opts.Secret, spec.RunID)
	keyID     string

	runMu  sync.Mutex
	runRev uint64 // revision of the run spec in RunsBucket, 0 until put
	ended  atomic.Bool

	modelMu sync.RWMutex
	model   *modelRef
	nodes   *pipeline.NodeIndex // the model's, for layouts naming nodes

	// copies publishes every shard that many extra times (tests of
	// duplicate results).
	copies int

	cpuMu sync.Mutex
	cpus  map[string]engine.CPU // worker name → CPU, from accepted results
}

// noteCPU records the CPU a worker reported with a result.
func (e *Engine) noteCPU(worker string, cpu engine.CPU) {
	e.cpuMu.Lock()
	defer e.cpuMu.Unlock()
	if e.cpus == nil {
		e.cpus = map[string]engine.CPU{}
	}
	e.cpus[worker] = cpu
}

// WorkerCPUs maps each worker that delivered a result to the CPU it
// reported (see engine.CPU): a mixed fleet shows here. Results do not
// depend on it.
func (e *Engine) WorkerCPUs() map[string]engine.CPU {
	e.cpuMu.Lock()
	defer e.cpuMu.Unlock()
	return maps.Clone(e.cpus)
}

var _ pipeline.ConcurrentEngine = (*Engine)(nil)

// ConcurrentPredicts is 2: a second Predict carrying its model keeps the
// workers busy while the first one's last shards finish (its tail) and
// while they fetch the next model and build its session.
func (e *Engine) ConcurrentPredicts() int { return 2 }

// NewEngine creates (or updates) the stream, consumer and buckets on the
// NATS server of nc and returns a coordinator for the run.
func NewEngine(nc *nats.Conn, spec RunSpec, opts EngineOptions) (*Engine, error) {
	if nc == nil {
		return nil, fmt.Errorf("cluster engine: %w: nil NATS connection", ErrBadSpec)
	}
	nonce := randomID(4)
	if spec.RunID == "" {
		spec.RunID = "run-" + randomID(6)
	}
	if !idPattern.MatchString(spec.RunID) {
		return nil, fmt.Errorf("cluster engine: %w: run id %q: use 1 to 64 letters, digits, '-' or '_'", ErrBadSpec, spec.RunID)
	}
	if spec.DataSource == nil {
		return nil, fmt.Errorf("cluster engine: %w: data_source is required", ErrBadSpec)
	}
	if err := checkSpec(spec); err != nil {
		return nil, fmt.Errorf("cluster engine: %w", err)
	}
	if spec.Len < 0 {
		return nil, fmt.Errorf("cluster engine: %w: negative data set length %d", ErrBadSpec, spec.Len)
	}
	if err := checkSecret(opts.Secret); err != nil {
		return nil, fmt.Errorf("cluster engine: %w", err)
	}
	if opts.ShardSize < 0 || opts.MaxDeliver < 0 || opts.AckWait < 0 || opts.RetryDelay < 0 {
		return nil, fmt.Errorf("cluster engine: %w: shard size, max deliver, ack wait and retry delay must not be negative", ErrBadSpec)
	}
	if opts.ShardSize == 0 {
		opts.ShardSize = 16
	}
	if opts.AckWait == 0 {
		opts.AckWait = 30 * time.Second
	}
	if opts.AckWait < 100*time.Millisecond {
		return nil, fmt.Errorf("cluster engine: %w: ack wait %s is below 100ms", ErrBadSpec, opts.AckWait)
	}
	if opts.MaxDeliver == 0 {
		opts.MaxDeliver = 4
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 250 * time.Millisecond
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = max(60*time.Second, 2*opts.AckWait)
	}
	if opts.ORTVersion == "" {
		opts.ORTVersion = engine.Version()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewCoordinatorMetrics(prometheus.NewRegistry())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster engine: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	res, st, err := createResources(ctx, js, opts.AckWait, opts.MaxDeliver)
	if err != nil {
		return nil, fmt.Errorf("cluster engine: %w", err)
	}
	key := runKey(opts.Secret, spec.RunID)
	return &Engine{
		nc: nc, res: res, stream: st, spec: spec, opts: opts,
		log: opts.Log.With("run", spec.RunID), m: opts.Metrics, nonce: nonce,
		key: key, keyID: keyID(key),
	}, nil
}

// DataLen is RunSpec.Len, the number of samples of the run's data set
// (pipeline.DataLener: algorithms take it when AlgorithmEnv.DataLen is 0).
func (e *Engine) DataLen() int { return e.spec.Len }

// RunID is the run's id (RunSpec.RunID, or the one generated).
func (e *Engine) RunID() string { return e.spec.RunID }

// randomID is n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SetModel puts every stage of m in the Object Store, named by the SHA-256
// of its bytes (skipped when already there), and makes m the model of
// later Predicts. When ctx ends (an interrupt) the upload stops and
// SetModel returns ctx's error; the engine keeps its model. An upload is
// bounded by modelUploadTimeout.
func (e *Engine) SetModel(ctx context.Context, m *model.CompressedModel) error {
	ctx, cancel := context.WithTimeout(ctx, modelUploadTimeout)
	defer cancel()
	ref, err := e.upload(ctx, m)
	if err != nil {
		return err
	}
	e.modelMu.Lock()
	e.model, e.nodes = ref, nodeIndex(m)
	e.modelMu.Unlock()
	return nil
}

// modelUploadTimeout bounds SetModel's upload.
const modelUploadTimeout = 10 * time.Minute

// nodeIndex indexes the graphs of m's stages (pipeline.NodeIndex).
func nodeIndex(m *model.CompressedModel) *pipeline.NodeIndex {
	var stages []*onnxpb.ModelProto
	for _, st := range m.Models() {
		stages = append(stages, st.Proto)
	}
	return pipeline.NewNodeIndex(stages)
}

// upload stores every stage of m in the models bucket (unless stored
// already) and returns the reference shards carry.
func (e *Engine) upload(ctx context.Context, m *model.CompressedModel) (*modelRef, error) {
	if m == nil || len(m.Models()) == 0 {
		return nil, errors.New("cluster engine: set model: empty model")
	}
	ref := &modelRef{Name: m.Name, Cascade: m.IsCascade()}
	for _, st := range m.Models() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		b, err := model.Marshal(st.Proto)
		if err != nil {
			return nil, fmt.Errorf("cluster engine: set model: stage %s: %w", st.Name, err)
		}
		digest := sum(b)
		if err := e.putModel(ctx, digest, b); err != nil {
			return nil, fmt.Errorf("cluster engine: set model: stage %s: %w", st.Name, err)
		}
		e.m.ModelUploadSeconds.Observe(time.Since(start).Seconds())
		ref.Stages = append(ref.Stages, stageRef{Name: st.Name, Digest: digest, Size: len(b), Path: st.Path})
	}
	return ref, nil
}

// putModel stores b under digest unless an object of that name and size
// is there already.
func (e *Engine) putModel(ctx context.Context, digest string, b []byte) error {
	info, err := e.res.models.GetInfo(ctx, digest)
	if err == nil && !info.Deleted && info.Size == uint64(len(b)) {
		return nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("object store %s: %w", ModelsBucket, err)
	}
	if _, err := e.res.models.PutBytes(ctx, digest, b); err != nil {
		return fmt.Errorf("object store %s: put %s: %w", ModelsBucket, digest, err)
	}
	return nil
}

// ensureRun stores the run spec (and the shipped data) once.
func (e *Engine) ensureRun(ctx context.Context) (uint64, error) {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if e.runRev != 0 {
		return e.runRev, nil
	}
	src, err := encodeSource(e.spec.DataSource)
	if err != nil {
		return 0, err
	}
	w := runWire{V: wireVersion, RunID: e.spec.RunID, DataSource: src, Annotations: e.spec.Annotations,
		SkipInvalid: e.spec.SkipInvalidSamples, Postprocess: e.spec.Postprocess}
	switch {
	case e.spec.ShipData:
		if err := e.shipData(ctx, &w); err != nil {
			return 0, err
		}
	case !e.spec.SameHost:
		start := time.Now()
		m, err := newManifest(ctx, e.spec.DataSource, e.spec.Annotations)
		if err != nil {
			return 0, err
		}
		w.Data = m
		e.log.Debug("hashed the data files", "files", len(m.Files), "seconds", time.Since(start).Seconds())
	}
	b, err := seal(e.key, purposeRun, e.spec.RunID, w)
	if err != nil {
		return 0, err
	}
	// Another engine of the same run may have stored the same spec: keep
	// its revision, so that workers keep their caches and its shards run.
	if ent, err := e.res.runs.Get(ctx, e.spec.RunID); err == nil && bytes.Equal(ent.Value(), b) {
		e.runRev = ent.Revision()
		return e.runRev, nil
	}
	rev, err := e.res.runs.Put(ctx, e.spec.RunID, b)
	if err != nil {
		return 0, fmt.Errorf("store run spec: %w", err)
	}
	e.runRev = rev
	return rev, nil
}
