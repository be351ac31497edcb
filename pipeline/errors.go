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
