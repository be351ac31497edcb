package sharding

import (
	"fmt"
	"strconv"
	"strings"
)

// Shard is a unit of calibration work: sample indices in sampler order.
//
// ID is the shard's position in the original plan (0, 1, ...). Path is the
// split history since that plan: one byte '0' (first half) or '1' (second
// half) per Split, empty for a shard of the plan itself. (ID, Path) is a pure
// function of the plan and the splits, and distinct for distinct shards.
type Shard struct {
	ID      int
	Path    string
	Indices []int
}

// Key names the shard in NATS KeyValue keys and subjects: the ID followed by
// each step of the path, dot-separated ("12", "12.0", "12.0.1").
func (s Shard) Key() string {
	var b strings.Builder
	b.Grow(20 + 2*len(s.Path))
	b.WriteString(strconv.Itoa(s.ID))
	for i := 0; i < len(s.Path); i++ {
		b.WriteByte('.')
		b.WriteByte(s.Path[i])
	}
	return b.String()
}

// String is the shard's key and size, for logs.
func (s Shard) String() string {
	return fmt.Sprintf("shard %s (%d samples)", s.Key(), len(s.Indices))
}

// Plan splits indices, in order, into shards of shardSize indices; the last
// shard may be shorter. Shard i has ID i and an empty Path. Plan copies the
// indices: the shards do not alias the argument. It rejects a shardSize below
// 1 and a negative or repeated index; an empty list gives an empty plan.
func Plan(indices []int, shardSize int) ([]Shard, error) {
	if shardSize < 1 {
		return nil, fmt.Errorf("plan shards: %w: got %d", ErrShardSize, shardSize)
	}
	seen := make(map[int]int, len(indices))
	for pos, i := range indices {
		if i < 0 {
			return nil, fmt.Errorf("plan shards: position %d: %w: %d", pos, ErrNegativeIndex, i)
		}
		if first, dup := seen[i]; dup {
			return nil, fmt.Errorf("plan shards: %w: %d at positions %d and %d", ErrDuplicateIndex, i, first, pos)
		}
		seen[i] = pos
	}
	if len(indices) == 0 {
		return nil, nil
	}
	all := make([]int, len(indices))
	copy(all, indices)
	shards := make([]Shard, 0, (len(all)+shardSize-1)/shardSize)
	for start := 0; start < len(all); start += shardSize {
		end := min(start+shardSize, len(all))
		shards = append(shards, Shard{ID: len(shards), Indices: all[start:end:end]})
	}
	return shards, nil
}

// Split re-plans s into two halves: a holds the first ⌈n/2⌉ indices and has
// Path s.Path+"0", b the rest and Path s.Path+"1"; both keep s.ID. A shard
// of fewer than two indices cannot be split: ok is false and a, b are zero.
// The halves are fresh copies; s is not changed.
func Split(s Shard) (a, b Shard, ok bool) {
	n := len(s.Indices)
	if n < 2 {
		return Shard{}, Shard{}, false
	}
	mid := (n + 1) / 2
	first := append([]int(nil), s.Indices[:mid]...)
	second := append([]int(nil), s.Indices[mid:]...)
	return Shard{ID: s.ID, Path: s.Path + "0", Indices: first},
		Shard{ID: s.ID, Path: s.Path + "1", Indices: second}, true
}

// ParseKey is the inverse of Shard.Key: it returns the ID and Path of the
// shard a key names. The key must be in the form Key writes: a decimal ID
// without sign or leading zeros, then zero or more ".0" or ".1".
func ParseKey(key string) (id int, path string, err error) {
	head, rest, _ := strings.Cut(key, ".")
	if head == "" || (len(head) > 1 && head[0] == '0') {
		return 0, "", fmt.Errorf("parse shard key %q: %w", key, ErrBadKey)
	}
	for i := 0; i < len(head); i++ {
		if head[i] < '0' || head[i] > '9' {
			return 0, "", fmt.Errorf("parse shard key %q: %w", key, ErrBadKey)
		}
	}
	id, err = strconv.Atoi(head)
	if err != nil {
		return 0, "", fmt.Errorf("parse shard key %q: %w: %v", key, ErrBadKey, err)
	}
	if len(key) == len(head) {
		return id, "", nil
	}
	// rest is "d.d.d...": single digits 0 or 1 separated by dots.
	if len(rest)%2 != 1 {
		return 0, "", fmt.Errorf("parse shard key %q: %w", key, ErrBadKey)
	}
	p := make([]byte, 0, (len(rest)+1)/2)
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if i%2 == 1 {
			if c != '.' {
				return 0, "", fmt.Errorf("parse shard key %q: %w", key, ErrBadKey)
			}
			continue
		}
		if c != '0' && c != '1' {
			return 0, "", fmt.Errorf("parse shard key %q: %w", key, ErrBadKey)
		}
		p = append(p, c)
	}
	return id, string(p), nil
}
