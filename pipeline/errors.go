package pipeline

import "errors"

// Sentinel errors of the pipeline package; wrap them with context.
var (
	// ErrBadTensor: a tensor whose type or element count does not match its shape.
	ErrBadTensor = errors.New("bad tensor")
	// ErrIndexOutOfRange: a sample index outside [0, Len()).
	ErrIndexOutOfRange = errors.New("sample index out of range")
)
