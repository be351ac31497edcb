package qmath

import "errors"

// Sentinel errors of the qmath package. Every error returned by the package
// wraps one of them, prefixed with what was being computed.
var (
	// ErrNonFinite: a NaN or ±Inf where a finite number is required.
	ErrNonFinite = errors.New("non-finite value")
	// ErrInvalidRange: a range with min > max, or one whose scale does not fit a float32.
	ErrInvalidRange = errors.New("invalid range")
	// ErrInvalidSpec: a Spec whose levels, bits or signedness do not make sense.
	ErrInvalidSpec = errors.New("invalid quantization spec")
	// ErrZeroScale: a scale that is zero, negative, NaN or infinite.
	ErrZeroScale = errors.New("scale must be positive and finite")
	// ErrShape: slice lengths, a shape or an axis that do not agree.
	ErrShape = errors.New("shape mismatch")
	// ErrUnknownName: an unknown preset, statistic type or aggregator name.
	ErrUnknownName = errors.New("unknown name")
	// ErrOutlierProb: an outlier probability outside [0, 0.5).
	ErrOutlierProb = errors.New("outlier probability outside [0, 0.5)")
	// ErrEmpty: an aggregation over no values, or missing statistics.
	ErrEmpty = errors.New("no values")
)
