package pipeline

import "errors"

// Sentinel errors of the pipeline package; wrap them with context.
var (
	// ErrBadTensor: a tensor whose type or element count does not match its shape.
	ErrBadTensor = errors.New("bad tensor")
	// ErrIndexOutOfRange: a sample index outside [0, Len()).
	ErrIndexOutOfRange = errors.New("sample index out of range")
)

// ErrInvalidSample marks a sample whose data holds NaN or ±Inf. Engines
// fail on it, or skip it when asked to (engine.skip_invalid_samples).
var ErrInvalidSample = errors.New("invalid sample")

// Errors of data sources, shared by every implementation (package data
// re-exports them under its own names).
var (
	// ErrUnknownDataSource: a data_source type nobody registered.
	ErrUnknownDataSource = errors.New("unknown data source type")
	// ErrBadDataConfig: a data_source or annotations entry that cannot be
	// used (unknown key, bad option value).
	ErrBadDataConfig = errors.New("bad data source config")
	// ErrBadDataFile: a data file that is not in the format it claims.
	ErrBadDataFile = errors.New("bad file")
	// ErrSampleMismatch: a sample whose shape, dtype or inputs do not fit
	// the model.
	ErrSampleMismatch = errors.New("sample does not fit the model")
	// ErrMissingAnnotation: a sample without a label in the annotations.
	ErrMissingAnnotation = errors.New("missing annotation")
)

// ErrUnknownMetric: a metric name nobody registered.
var ErrUnknownMetric = errors.New("unknown metric")
