package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/pipeline"
)

// wireVersion is the version of every JSON message below; a worker refuses
// a shard of another version. Version 2: layouts carry StatSpec.Fold and
// results are reduce's wire version 2 (folds). Version 3: the run's data
// source travels as its registered type name and JSON (sourceWire).
const wireVersion = 3

// runWire is a run as stored in RunsBucket under its id: what a worker
// needs to open the data.
type runWire struct {
	V     int    `json:"v"`
	RunID string `json:"run_id"`
	// DataSource is RunSpec.DataSource by type name and JSON; with Files,
	// its paths are relative to the worker's download folder.
	DataSource sourceWire `json:"data_source"`
	// Annotations is RunSpec.Annotations; with Files, relative to the
	// download folder.
	Annotations *pipeline.Annotations `json:"annotations,omitempty"`
	// Files are the shipped data files (RunSpec.ShipData).
	Files []shippedFile `json:"files,omitempty"`
	// Postprocess names the registered function workers run on outputs
	// (RunSpec.Postprocess).
	Postprocess string `json:"postprocess,omitempty"`
	// SkipInvalid: skip samples holding NaN or Inf (RunSpec.SkipInvalidSamples).
	SkipInvalid bool `json:"skip_invalid,omitempty"`
	// Data lists the files the data source and annotations read, with
	// their size and SHA-256, as the coordinator sees them; a worker whose
	// files differ refuses the run (see verifyData). Empty with Files
	// (shipped data is verified on download) and with RunSpec.SameHost.
	Data *dataManifest `json:"data,omitempty"`
}

// shippedFile is one data file in DataBucket.
type shippedFile struct {
	Object string `json:"object"`
	Path   string `json:"path"` // slash-separated, relative to the download folder
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// modelRef names a model by the digests of its stages in ModelsBucket.
type modelRef struct {
	Name    string     `json:"name"`
	Cascade bool       `json:"cascade,omitempty"`
	Stages  []stageRef `json:"stages"`
}

type stageRef struct {
	Name   string `json:"name"`
	Digest string `json:"sha256"`
	Size   int    `json:"size"`
	// Path is the file the coordinator loaded the stage from: workers name
	// it in errors, as the coordinator's own engine would.
	Path string `json:"path,omitempty"`
}

// key identifies the model for caches.
func (m modelRef) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q %v", m.Name, m.Cascade)
	for _, s := range m.Stages {
		fmt.Fprintf(h, " %q %s", s.Name, s.Digest)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// shardMsg is the work-queue message of one shard.
type shardMsg struct {
	V       int    `json:"v"`
	Run     string `json:"run"`
	RunRev  uint64 `json:"run_rev"`
	Predict string `json:"predict"`
	Shard   string `json:"shard"`
	// Attempt is "" for a shard's first publication and a random token for
	// each republication after a rejected result: the result goes under
	// resultKey(Predict, Shard, Attempt), a key nobody could fill ahead.
	Attempt string `json:"attempt,omitempty"`
	// KeyID names the run key (keyID): a worker holding another secret
	// hands the shard back.
	KeyID   string               `json:"key_id"`
	Indices []int                `json:"indices"`
	Model   modelRef             `json:"model"`
	Layout  pipeline.StatsLayout `json:"layout,omitempty"`
	// BatchSize is the sampler's batch size; the worker batches the
	// shard's indices the same way.
	BatchSize int `json:"batch_size"`
	// ORT is the ONNX Runtime version the coordinator expects ("" any).
	ORT string `json:"ort,omitempty"`
	// Outputs asks for every sample's model outputs (the metric needs them).
	Outputs bool `json:"outputs,omitempty"`
	// AckWaitMS, MaxDeliver and RetryDelayMS mirror the consumer's
	// settings: heartbeats every AckWait/3, the last delivery is final.
	AckWaitMS    int64 `json:"ack_wait_ms"`
	MaxDeliver   int   `json:"max_deliver"`
	RetryDelayMS int64 `json:"retry_delay_ms"`

	// key is the run key, once the worker has checked the message with it.
	key []byte
}

// resultKey is where the shard's result goes (and what its MAC binds).
func (m *shardMsg) resultKey() string { return resultKey(m.Predict, m.Shard, m.Attempt) }

func (m *shardMsg) ackWait() time.Duration { return time.Duration(m.AckWaitMS) * time.Millisecond }
func (m *shardMsg) retryDelay() time.Duration {
	return time.Duration(m.RetryDelayMS) * time.Millisecond
}

// validate rejects a message a worker must not run.
func (m *shardMsg) validate() error {
	switch {
	case m.V != wireVersion:
		return fmt.Errorf("%w: version %d, this worker speaks %d", ErrBadMessage, m.V, wireVersion)
	case !idPattern.MatchString(m.Run) || m.Predict == "" || m.Shard == "":
		return fmt.Errorf("%w: missing run, predict or shard", ErrBadMessage)
	case len(m.Indices) == 0:
		return fmt.Errorf("%w: shard %s: no samples", ErrBadMessage, m.Shard)
	case len(m.Model.Stages) == 0:
		return fmt.Errorf("%w: shard %s: no model", ErrBadMessage, m.Shard)
	case m.BatchSize < 1 || m.AckWaitMS < 1 || m.MaxDeliver < 1:
		return fmt.Errorf("%w: shard %s: batch size, ack wait and max deliver must be positive", ErrBadMessage, m.Shard)
	}
	for _, i := range m.Indices {
		if i < 0 {
			return fmt.Errorf("%w: shard %s: negative sample index %d", ErrBadMessage, m.Shard, i)
		}
	}
	return nil
}

// event is a worker's progress note on the core subject of a predict.
// Events are hints for metrics, logs and the idle timeout; results and
// final failures travel through ResultsBucket.
type event struct {
	Kind      string `json:"kind"` // eventStart, eventBeat, eventRetry, eventDuplicate
	Shard     string `json:"shard"`
	Worker    string `json:"worker"`
	Delivered uint64 `json:"delivered,omitempty"`
	Err       string `json:"error,omitempty"`
}

const (
	eventStart     = "start"
	eventBeat      = "beat"
	eventRetry     = "retry"
	eventDuplicate = "duplicate"
)

// Error kinds of a failure. Deterministic kinds (deterministicKind) are
// final on the first delivery; the others are retried until MaxDeliver.
const (
	// kindSample: the shard's computation failed in a way that may be
	// passing or tied to one of its samples (an ONNX Runtime run error, a
	// sample file that cannot be read); the coordinator splits the shard to
	// isolate the sample.
	kindSample = "sample"
	// kindSetup: the worker could not set up for a reason that may be its
	// own or passing (NATS, the data folder it sees); splitting would not
	// help.
	kindSetup = "setup"
	// kindRefused: the worker cannot run the shard as asked.
	kindRefused = "refused"
	// kindInvalid: a sample holds NaN or Inf (pipeline.ErrInvalidSample);
	// deterministic.
	kindInvalid = "invalid"
	// kindDeterministic: any worker would fail the same way; the envelope's
	// Cause names the sentinel (deterministicCauses).
	kindDeterministic = "deterministic"
)

// deterministicKind reports whether a failure of that kind is final on its
// first delivery.
func deterministicKind(kind string) bool { return kind == kindDeterministic || kind == kindInvalid }

// blob is a byte payload of a result: inline, or an object in
// PartialsBucket; SHA256 and Size verify it either way.
type blob struct {
	Inline []byte `json:"inline,omitempty"`
	Object string `json:"object,omitempty"`
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
}

// envelope is the value stored under "<predict>.<shard>" in ResultsBucket:
// a result (Stats, Outputs) or a final failure (Error, Kind).
type envelope struct {
	V      int    `json:"v"`
	Worker string `json:"worker"`
	// CPU is the worker's processor and the features that decide ONNX
	// Runtime's INT8 kernels.
	CPU     *engine.CPU `json:"cpu,omitempty"`
	Samples int         `json:"samples"`
	Seconds float64     `json:"seconds,omitempty"`
	Stats   *blob       `json:"stats,omitempty"`
	Outputs *blob       `json:"outputs,omitempty"`
	Error   string      `json:"error,omitempty"`
	Kind    string      `json:"kind,omitempty"`
	// Cause names the sentinel of a deterministic failure (see
	// deterministicCauses).
	Cause string `json:"cause,omitempty"`
	// Skipped lists the shard's samples left out as invalid.
	Skipped []int `json:"skipped,omitempty"`
}

// sum is the hex SHA-256 of b.
func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
