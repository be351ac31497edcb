package cluster

import (
	"errors"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// deterministicCauses are the sentinels of failures that the same shard
// repeats on any worker: the model, statistics layout and data are the
// same everywhere (the model travels by SHA-256; the data is the run's).
// Retrying such a failure, or splitting its shard, only delays the error
// and repeats it in the logs, so a worker reports it on the first delivery
// under the name here, and the coordinator's error matches the sentinel.
//
// Left out on purpose, and so retried: failures that may be the worker's
// own or passing. NATS errors; ONNX Runtime sessions that fail for a
// reason it does not blame on the model (engine.ErrSession); a data folder
// or file the worker cannot open (a mount missing on one machine), an
// unknown data source type or statistic (a worker binary without the
// user's loader or statistic: another worker may have it),
// a data set of another length (pipeline.ErrIndexOutOfRange); ONNX Runtime
// errors while running a sample (kindSample: the shard is split to find
// the sample).
var deterministicCauses = []struct {
	name string
	err  error
}{
	// The model: ONNX Runtime refuses it (type or shape check, unknown
	// operator or opset), or it does not decode.
	{"bad_model", engine.ErrBadModel},
	{"not_onnx", model.ErrNotONNX},
	{"truncated_model", model.ErrTruncated},
	{"no_graph", model.ErrNoGraph},
	{"graph_cycle", model.ErrCycle},
	{"bad_model_tensor", model.ErrTensor},
	{"unsupported_domain", model.ErrUnsupportedDomain},
	{"cannot_upgrade", model.ErrCannotUpgrade},
	// The statistics layout.
	{"unknown_tensor", engine.ErrUnknownTensor},
	{"bad_statistic", engine.ErrBadStats},
	// A sample: missing input, wrong shape or dtype, NaN or Inf.
	{"bad_input", engine.ErrBadInput},
	{"bad_tensor", pipeline.ErrBadTensor},
	{"invalid_sample", pipeline.ErrInvalidSample},
	// The data source: its config, a file that does not decode, samples
	// that do not fit the model, a missing label.
	{"bad_data_config", pipeline.ErrBadDataConfig},
	{"bad_file", pipeline.ErrBadDataFile},
	{"sample_mismatch", pipeline.ErrSampleMismatch},
	{"missing_annotation", pipeline.ErrMissingAnnotation},
}

// classify returns the kind of a failure, and for a deterministic one the
// name of its cause; fallback is the kind of anything else (kindSetup for
// failures preparing the shard, kindSample for failures running it).
func classify(err error, fallback string) (kind, cause string) {
	if errors.Is(err, ErrDataMismatch) {
		return kindRefused, causeDataMismatch
	}
	// Before ErrBadStats, which wraps it: a statistic this worker binary
	// does not register is the worker's own failure, not the layout's (the
	// coordinator checked the layout against its own registry).
	if errors.Is(err, pipeline.ErrUnknownStatistic) {
		return kindSetup, ""
	}
	for _, c := range deterministicCauses {
		if errors.Is(err, c.err) {
			if c.err == pipeline.ErrInvalidSample {
				return kindInvalid, c.name
			}
			return kindDeterministic, c.name
		}
	}
	for _, e := range []error{engine.ErrClosed, engine.ErrNoModel, engine.ErrLibrary, engine.ErrSession, pipeline.ErrIndexOutOfRange} {
		if errors.Is(err, e) {
			return kindSetup, ""
		}
	}
	return fallback, ""
}

// causeDataMismatch is the cause of a refusal for data files that differ
// from the coordinator's (ErrDataMismatch).
const causeDataMismatch = "data_mismatch"

// causeError returns the sentinel named by a deterministic failure's cause
// (nil when unknown, e.g. from a newer worker).
func causeError(name string) error {
	for _, c := range deterministicCauses {
		if c.name == name {
			return c.err
		}
	}
	return nil
}
