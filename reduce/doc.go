// Package reduce holds fleetcal's mergeable statistics: the partial results a
// worker computes on its shard and the coordinator merges exactly. Whatever
// the number of workers, the shard size and the order in which shards
// finish, the merged statistics are the same bits, so the quantized model is
// the same bytes.
//
// # Per-sample values
//
// A PerSample keeps one vector of values per sample index; merging two is a
// union of disjoint index sets, and every aggregate is computed after sorting
// by index:
//
//	a, b := reduce.NewPerSample(1), reduce.NewPerSample(1)
//	a.Add(0, []float64{-1.5})
//	b.Add(1, []float64{2.25})
//	if err := a.Merge(b); err != nil { ... }   // a now holds samples 0 and 1
//
// # Folds
//
// Where the aggregate over samples is the min, the max or the mean of the
// per-sample values, a Fold keeps only the running min or max, or the exact
// sum (ExactSum, an integer number of 2^-1074 that no rounding touches),
// and the count: its size does not depend on the number of samples, and
// merged in any order it gives the same bits. The mean is the exact sum
// divided by the count, rounded once:
//
//	s := reduce.NewSet()
//	s.AddFold("conv1_out", "sum(max)", reduce.FoldSum, 3.5)  // one sample's max
//	mean, err := s.Fold("conv1_out", "sum(max)").Value()
//
// The median and the outlier-trimmed aggregates need every value: they stay
// PerSamples, whose memory grows with the samples.
//
// # Histograms
//
// A Histogram counts values in N equal bins over fixed edges [lo, hi), plus
// underflow, overflow and NaN counts. Counts are uint64, so merging is exact,
// and its memory is N×8 bytes however many values it has seen. Edges must be
// the same on every worker; they are fixed by a first pass:
//
//  1. pass 1 collects per-sample abs_max (a PerSample) for each tensor;
//  2. the coordinator merges them and fixes each tensor's range, e.g.
//     [0, max|x|) in 2048 bins;
//  3. pass 2 sends those edges with the shards; each worker fills
//     Set.EnsureHist(tensor, "abs_hist", 0, max, 2048).AddFloat32s(|x|);
//  4. the coordinator merges the Sets and estimates the range.
//
// Step 4 in code:
//
//	h := set.Hist("conv1_out", "abs_hist")
//	t, err := reduce.EntropyThreshold(h, 128)   // TensorRT's KL calibration
//	p, err := reduce.Percentile(h, 99.999)      // or a percentile of |x|
//
// A value equal to max lands in the overflow count, which the estimators
// read as a value at hi, so no nudging of hi is needed. Bin assignment is a
// pure function of the value and the edges, computed without fused
// multiply-adds, so workers on amd64 and arm64 agree bit for bit.
//
// # Sets and the wire
//
// A Set groups PerSamples, Histograms and Folds by tensor name and statistic key
// and counts the non-finite values seen on each tensor. Set.Merge is
// commutative and associative. MarshalBinary and Decode are the Set's wire
// encoding (magic "FCRS", version byte 2, then sorted, length-prefixed
// sections; see wire.go): the same Set always gives the same bytes, and the
// decoder rejects anything else with ErrCorrupt without trusting a count
// the input cannot hold:
//
//	b, err := set.MarshalBinary()   // worker: publish b for its shard
//	part, err := reduce.Decode(b)   // coordinator
//	err = total.Merge(part)
//
// The package is pure: it must never import cgo, NATS or the clock.
package reduce
