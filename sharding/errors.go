package sharding

import "errors"

// Sentinel errors of the sharding package; wrap them with context.
var (
	// ErrShardSize: a shard size below 1.
	ErrShardSize = errors.New("shard size must be at least 1")
	// ErrDuplicateIndex: the same sample index listed twice in a plan.
	ErrDuplicateIndex = errors.New("duplicate sample index")
	// ErrNegativeIndex: a sample index below 0.
	ErrNegativeIndex = errors.New("negative sample index")
	// ErrBadKey: a string that is not a shard key made by Shard.Key.
	ErrBadKey = errors.New("bad shard key")
)
