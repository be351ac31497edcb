package pipeline

import (
	"context"
	"fmt"
)

// SliceLoader is a DataLoader over samples held in memory, for data a
// program makes itself (and for tests).
type SliceLoader []Sample

// Len is the number of samples.
func (l SliceLoader) Len() int { return len(l) }

// Item returns sample i; it is safe for concurrent use.
func (l SliceLoader) Item(ctx context.Context, i int) (Sample, error) {
	if err := ctx.Err(); err != nil {
		return Sample{}, err
	}
	if i < 0 || i >= len(l) {
		return Sample{}, fmt.Errorf("sample %d: %w (data set has %d samples)", i, ErrIndexOutOfRange, len(l))
	}
	return l[i], nil
}
