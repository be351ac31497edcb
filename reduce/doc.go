// Package reduce holds fleetcal's mergeable statistics: the partial results a
// worker computes on its shard and the coordinator merges exactly.
//
// A PerSample keeps one vector of values per sample index; merging two is a
// union of disjoint index sets, and every aggregate is computed after sorting
// by index, so the result does not depend on how samples were split into
// shards or in which order shards finished:
//
//	a, b := reduce.NewPerSample(1), reduce.NewPerSample(1)
//	a.Add(0, []float64{-1.5})
//	b.Add(1, []float64{2.25})
//	if err := a.Merge(b); err != nil { ... }   // a now holds samples 0 and 1
//
// A Set groups PerSamples by tensor name and statistic key and counts the
// non-finite values seen on each tensor.
//
// The package is pure: it must never import cgo, NATS or the clock.
package reduce
