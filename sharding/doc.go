// Package sharding plans how a calibration pass is cut into shards: the units
// of work the coordinator puts on the work queue and a worker runs in one go.
//
// A plan is a pure function of the sampler's subset_indices and a shard size.
// Shards keep the order of the indices and every index lands in exactly one
// shard:
//
//	shards, err := sharding.Plan([]int{7, 3, 9, 4, 1}, 2)
//	// shards[0] = {ID: 0, Indices: [7 3]}   Key() "0"
//	// shards[1] = {ID: 1, Indices: [9 4]}   Key() "1"
//	// shards[2] = {ID: 2, Indices: [1]}     Key() "2"
//
// A shard that keeps failing (a worker killed on it again and again, a poison
// sample) is re-planned into two halves with Split. A half remembers where it
// comes from: its ID is the ID of the shard in the original plan and its Path
// is the list of halves taken since (0 the first half, 1 the second), so its
// Key is unique among every shard of the plan and of any sequence of splits:
//
//	a, b, ok := sharding.Split(shards[0])
//	// a = {ID: 0, Path: "0", Indices: [7]}   Key() "0.0"
//	// b = {ID: 0, Path: "1", Indices: [3]}   Key() "0.1"
//	_, _, ok = sharding.Split(a)              // ok == false: one sample left
//
// Halving a failing shard isolates a poison sample in at most ⌈log2(size)⌉
// splits, after which the coordinator can report the sample index.
//
// Keys are made of digits and dots only, so they are valid NATS KeyValue keys
// and subject tokens; ParseKey turns a key back into (ID, Path). Because the
// key names the exact set of samples, "the first result stored under a key
// wins" is safe: two results under one key are two results of the same work.
// The union of the live shards after any sequence of splits is still the
// plan's index list, each index once; statistics merged from them are
// bit-identical to an unsplit run (see package reduce).
//
// The package is pure: no NATS, no cgo, no clock and no randomness. It must
// never import cluster/, engine/ or nats.go.
package sharding
