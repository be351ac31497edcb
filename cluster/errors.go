package cluster

import (
	"errors"
	"fmt"
)

// Sentinel errors of the cluster package; they are wrapped with the URL,
// shard, worker or sample they are about.
var (
	// ErrConnect: the NATS server could not be reached or refused the client.
	ErrConnect = errors.New("cannot connect to NATS")
	// ErrAuth: the NATS server refused the credentials.
	ErrAuth = errors.New("authorization refused")
	// ErrNoModel: Predict was called before SetModel.
	ErrNoModel = errors.New("no model set")
	// ErrNoWorker: no worker took or progressed a shard within the idle timeout.
	ErrNoWorker = errors.New("no worker progress")
	// ErrDeadLetter: a single-sample shard failed on every delivery.
	ErrDeadLetter = errors.New("shard failed on every delivery")
	// ErrRefused: a worker refused a shard it cannot run the way the
	// coordinator asked (another ONNX Runtime version).
	ErrRefused = errors.New("shard refused")
	// ErrSetup: a worker could not prepare a shard for a reason that may
	// be its own or passing (the run's data folder it cannot see, a NATS
	// error fetching the model); splitting the shard would not help, but
	// another delivery, maybe to another worker, may.
	ErrSetup = errors.New("worker cannot prepare the shard")
	// ErrDeterministic: a shard failed in a way any worker would repeat
	// (the model ONNX Runtime refuses, a statistic that cannot be computed,
	// a sample of the wrong shape or dtype, a data file that does not
	// decode). It is reported on its first delivery and ends Predict at
	// once; the error also matches the engine, pipeline, data or model
	// sentinel the worker saw (see deterministicCauses).
	ErrDeterministic = errors.New("shard fails the same on every worker")
	// ErrBadResult: a worker's result that cannot be used: bad envelope,
	// checksum mismatch, undecodable statistics or outputs.
	ErrBadResult = errors.New("bad shard result")
	// ErrBadMessage: a shard message a worker cannot decode.
	ErrBadMessage = errors.New("bad shard message")
	// ErrBadSpec: an invalid RunSpec, option or command-line setting.
	ErrBadSpec = errors.New("invalid configuration")
	// ErrRunEnded: Predict after Engine.End.
	ErrRunEnded = errors.New("the run has ended")
)

// ShardError is a failure of one shard, as reported across the wire: the
// shard's key (see sharding.Shard.Key), the worker that reported it ("" when
// no worker did, e.g. every delivery timed out) and the cause.
type ShardError struct {
	Shard  string
	Worker string
	Err    error
}

func (e *ShardError) Error() string {
	if e.Worker == "" {
		return fmt.Sprintf("shard %s: %v", e.Shard, e.Err)
	}
	return fmt.Sprintf("shard %s (worker %s): %v", e.Shard, e.Worker, e.Err)
}

func (e *ShardError) Unwrap() error { return e.Err }

// remoteError is an error message received from a worker. It matches the
// sentinel the worker tagged it with (if any), and for a deterministic
// failure the sentinel of its cause, under errors.Is.
type remoteError struct {
	msg   string
	kind  error
	cause error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.kind, e.cause} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
