package reduce

import "errors"

// Sentinel errors of the reduce package.
var (
	// ErrIncompatible: operands of a merge with different shapes.
	ErrIncompatible = errors.New("incompatible statistics")
	// ErrDuplicateSample: the same sample index observed twice.
	ErrDuplicateSample = errors.New("duplicate sample index")
)
