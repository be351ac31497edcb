package pipeline

// BatchSampler visits SubsetIndices (or 0..N-1 when nil) in batches of
// BatchSize, the last batch possibly shorter (POT's BatchSampler).
type BatchSampler struct {
	BatchSize     int
	SubsetIndices []int
	N             int
}

// NewBatchSampler samples n items in batches of batchSize; subset, when not
// nil, lists the indices to visit in order.
func NewBatchSampler(n, batchSize int, subset []int) *BatchSampler {
	if batchSize < 1 {
		batchSize = 1
	}
	return &BatchSampler{BatchSize: batchSize, SubsetIndices: subset, N: n}
}

// Indices is the ordered list of sample indices visited.
func (s *BatchSampler) Indices() []int {
	if s.SubsetIndices != nil {
		return s.SubsetIndices
	}
	idx := make([]int, s.N)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// Batches splits Indices into batches of BatchSize.
func (s *BatchSampler) Batches() [][]int {
	idx := s.Indices()
	bs := max(s.BatchSize, 1)
	var out [][]int
	for len(idx) > 0 {
		n := min(bs, len(idx))
		out = append(out, idx[:n:n])
		idx = idx[n:]
	}
	return out
}
