package reduce

import "errors"

// Sentinel errors of the reduce package.
var (
	// ErrIncompatible: operands of a merge with different shapes, or
	// histograms with different edges.
	ErrIncompatible = errors.New("incompatible statistics")
	// ErrDuplicateSample: the same sample index observed twice.
	ErrDuplicateSample = errors.New("duplicate sample index")
	// ErrCorrupt: bytes that are not a wire encoding of a Set.
	ErrCorrupt = errors.New("corrupt statistics encoding")
	// ErrBadEdges: histogram edges that cannot be used (lo >= hi, not
	// finite, or too narrow for the number of bins).
	ErrBadEdges = errors.New("bad histogram edges")
	// ErrEmpty: an estimate asked of a histogram or a Fold with no values.
	ErrEmpty = errors.New("empty histogram")
	// ErrOutOfRange: an estimator parameter outside its domain.
	ErrOutOfRange = errors.New("parameter out of range")
	// ErrNonFinite: a NaN or ±Inf given to a Fold or an ExactSum.
	ErrNonFinite = errors.New("non-finite value")
)
