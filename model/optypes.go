package model

import (
	"maps"
	"slices"
	"strings"
	"sync"
)

// knownOpTypes are the operator types fleetcal knows: the ai.onnx ones it
// infers types for or upgrades across opsets, and the com.microsoft ones
// it infers.
var knownOpTypes = sync.OnceValue(func() []string {
	set := map[string]bool{}
	for _, m := range []map[string]rule{typeRules, msTypeRules} {
		for k := range m {
			set[k] = true
		}
	}
	for k := range upgradeTable {
		set[k] = true
	}
	for k := range quantizableOps {
		set[k] = true
	}
	return slices.Sorted(maps.Keys(set))
})

// IsKnownOpType reports whether opType is an operator type fleetcal knows
// (ONNX's, and the com.microsoft ones ONNX Runtime fuses); names are
// case-sensitive, as in ONNX.
func IsKnownOpType(opType string) bool {
	_, ok := slices.BinarySearch(knownOpTypes(), opType)
	return ok
}

// SuggestOpType returns the known operator type closest to opType (the same
// letters in another case, else at most a third of its letters changed),
// or "" when none is that close.
func SuggestOpType(opType string) string {
	return Suggest(opType, knownOpTypes())
}

// Suggest returns the candidate closest to name (the same letters in
// another case, else at most a third of its letters changed; the first
// of equally close ones), or "" when none is that close: the "did you
// mean" of an unknown name.
func Suggest(name string, candidates []string) string {
	best, bestD := "", len(name)/3+1
	for _, k := range candidates {
		if strings.EqualFold(k, name) {
			return k
		}
		if d := editDistance(strings.ToLower(k), strings.ToLower(name)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is Levenshtein's distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
