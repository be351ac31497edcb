package sharding

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"
	"testing/quick"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		indices []int
		size    int
		want    [][]int
	}{
		{"empty", nil, 3, nil},
		{"one shard exact", []int{0, 1, 2}, 3, [][]int{{0, 1, 2}}},
		{"one shard short", []int{5, 6}, 3, [][]int{{5, 6}}},
		{"last shorter", []int{7, 3, 9, 4, 1}, 2, [][]int{{7, 3}, {9, 4}, {1}}},
		{"size one", []int{4, 2, 0}, 1, [][]int{{4}, {2}, {0}}},
		{"keeps sampler order", []int{9, 8, 7, 6}, 2, [][]int{{9, 8}, {7, 6}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Plan(tc.indices, tc.size)
			if err != nil {
				t.Fatalf("Plan(%v, %d): %v", tc.indices, tc.size, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Plan(%v, %d) = %v, want %d shards %v", tc.indices, tc.size, got, len(tc.want), tc.want)
			}
			for i, s := range got {
				if s.ID != i || s.Path != "" || !slices.Equal(s.Indices, tc.want[i]) {
					t.Errorf("Plan(%v, %d)[%d] = %+v, want {ID: %d, Indices: %v}", tc.indices, tc.size, i, s, i, tc.want[i])
				}
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name    string
		indices []int
		size    int
		want    error
	}{
		{"zero size", []int{1}, 0, ErrShardSize},
		{"negative size", []int{1}, -4, ErrShardSize},
		{"duplicate", []int{1, 2, 1}, 2, ErrDuplicateIndex},
		{"negative index", []int{1, -2}, 2, ErrNegativeIndex},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Plan(tc.indices, tc.size); !errors.Is(err, tc.want) {
				t.Fatalf("Plan(%v, %d): err = %v, want %v", tc.indices, tc.size, err, tc.want)
			}
		})
	}
}

func TestPlanDoesNotAlias(t *testing.T) {
	in := []int{1, 2, 3, 4}
	shards, err := Plan(in, 2)
	if err != nil {
		t.Fatal(err)
	}
	in[0] = 99
	if shards[0].Indices[0] != 1 {
		t.Fatalf("shard 0 follows a change of the input: %v", shards[0].Indices)
	}
	// Appending to one shard must not overwrite the next.
	_ = append(shards[0].Indices, 77)
	if shards[1].Indices[0] != 3 {
		t.Fatalf("append to shard 0 overwrote shard 1: %v", shards[1].Indices)
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		in   Shard
		a, b Shard
		ok   bool
		keyA string
		keyB string
	}{
		{"even", Shard{ID: 12, Indices: []int{1, 2, 3, 4}},
			Shard{ID: 12, Path: "0", Indices: []int{1, 2}}, Shard{ID: 12, Path: "1", Indices: []int{3, 4}}, true, "12.0", "12.1"},
		{"odd: first half larger", Shard{ID: 3, Path: "1", Indices: []int{5, 6, 7}},
			Shard{ID: 3, Path: "10", Indices: []int{5, 6}}, Shard{ID: 3, Path: "11", Indices: []int{7}}, true, "3.1.0", "3.1.1"},
		{"two", Shard{ID: 0, Indices: []int{8, 9}},
			Shard{ID: 0, Path: "0", Indices: []int{8}}, Shard{ID: 0, Path: "1", Indices: []int{9}}, true, "0.0", "0.1"},
		{"one sample", Shard{ID: 4, Indices: []int{8}}, Shard{}, Shard{}, false, "", ""},
		{"empty", Shard{ID: 4}, Shard{}, Shard{}, false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b, ok := Split(tc.in)
			if ok != tc.ok {
				t.Fatalf("Split(%+v) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if !ok {
				return
			}
			if !sameShard(a, tc.a) || !sameShard(b, tc.b) {
				t.Fatalf("Split(%+v) = %+v, %+v; want %+v, %+v", tc.in, a, b, tc.a, tc.b)
			}
			if a.Key() != tc.keyA || b.Key() != tc.keyB {
				t.Fatalf("Split(%+v) keys = %q, %q; want %q, %q", tc.in, a.Key(), b.Key(), tc.keyA, tc.keyB)
			}
		})
	}
}

func TestSplitDoesNotAlias(t *testing.T) {
	s := Shard{ID: 1, Indices: []int{1, 2, 3, 4}}
	a, b, _ := Split(s)
	a.Indices[0], b.Indices[0] = 10, 30
	_ = append(a.Indices, 50)
	if !slices.Equal(s.Indices, []int{1, 2, 3, 4}) {
		t.Fatalf("writing the halves changed the parent: %v", s.Indices)
	}
}

func sameShard(a, b Shard) bool {
	return a.ID == b.ID && a.Path == b.Path && slices.Equal(a.Indices, b.Indices)
}

func TestKey(t *testing.T) {
	tests := []struct {
		s    Shard
		want string
	}{
		{Shard{ID: 0}, "0"},
		{Shard{ID: 12}, "12"},
		{Shard{ID: 12, Path: "0"}, "12.0"},
		{Shard{ID: 120, Path: "011"}, "120.0.1.1"},
	}
	for _, tc := range tests {
		if got := tc.s.Key(); got != tc.want {
			t.Errorf("Shard{ID: %d, Path: %q}.Key() = %q, want %q", tc.s.ID, tc.s.Path, got, tc.want)
		}
		id, path, err := ParseKey(tc.want)
		if err != nil || id != tc.s.ID || path != tc.s.Path {
			t.Errorf("ParseKey(%q) = %d, %q, %v; want %d, %q, nil", tc.want, id, path, err, tc.s.ID, tc.s.Path)
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, key := range []string{
		"", ".", "1.", ".1", "01", "-1", "+1", "1.2", "1..0", "1.0.", "1.00", "a", "1.0.x",
		"99999999999999999999999", "1 ", "1/0",
	} {
		if _, _, err := ParseKey(key); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q): err = %v, want ErrBadKey", key, err)
		}
	}
}

// natsKey is the character set of NATS KeyValue keys, without a leading or
// trailing dot (from the nats.go kv.go validKeyRe).
var natsKey = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// TestSplitsPartition: after any sequence of splits, the live shards hold
// every planned index exactly once, in sampler order when read in plan order,
// and every shard ever made has its own valid key.
func TestSplitsPartition(t *testing.T) {
	f := func(seed uint64, n16 uint16, size8, splits8 uint8) bool {
		r := rand.New(rand.NewPCG(seed, 7))
		n, size, splits := int(n16)%500, int(size8)%40+1, int(splits8)
		indices := r.Perm(n * 2)[:n]
		live, err := Plan(indices, size)
		if err != nil {
			t.Fatalf("Plan(%d indices, %d): %v", n, size, err)
		}
		keys := map[string]bool{}
		for _, s := range live {
			keys[s.Key()] = true
		}
		for range splits {
			if len(live) == 0 {
				break
			}
			i := r.IntN(len(live))
			a, b, ok := Split(live[i])
			if !ok {
				if len(live[i].Indices) > 1 {
					t.Logf("seed %d: Split refused a shard of %d", seed, len(live[i].Indices))
					return false
				}
				continue
			}
			for _, h := range []Shard{a, b} {
				if keys[h.Key()] {
					t.Logf("seed %d: key %q made twice", seed, h.Key())
					return false
				}
				keys[h.Key()] = true
			}
			// Halves replace their parent in place: sampler order is kept.
			live = slices.Replace(live, i, i+1, a, b)
		}
		var all []int
		for _, s := range live {
			if !natsKey.MatchString(s.Key()) {
				t.Logf("seed %d: key %q is not a NATS KV key", seed, s.Key())
				return false
			}
			id, path, err := ParseKey(s.Key())
			if err != nil || id != s.ID || path != s.Path {
				t.Logf("seed %d: ParseKey(%q) = %d, %q, %v", seed, s.Key(), id, path, err)
				return false
			}
			all = append(all, s.Indices...)
		}
		if !slices.Equal(all, indices) {
			t.Logf("seed %d n %d size %d: shards hold %v, want %v", seed, n, size, all, indices)
			return false
		}
		return true
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

// TestSplitDeterministic: the same plan and split history give the same shards.
func TestSplitDeterministic(t *testing.T) {
	run := func() []Shard {
		shards, _ := Plan([]int{9, 1, 8, 2, 7, 3, 6, 4, 5}, 4)
		a, b, _ := Split(shards[1])
		c, d, _ := Split(b)
		return []Shard{shards[0], a, c, d, shards[2]}
	}
	x, y := run(), run()
	for i := range x {
		if !sameShard(x[i], y[i]) {
			t.Fatalf("run 1 shard %d = %+v, run 2 = %+v", i, x[i], y[i])
		}
	}
	want := []string{"0", "1.0", "1.1.0", "1.1.1", "2"}
	for i, s := range x {
		if s.Key() != want[i] {
			t.Fatalf("shard %d key = %q, want %q", i, s.Key(), want[i])
		}
	}
}

func FuzzParseKey(f *testing.F) {
	for _, k := range []string{"0", "12", "12.0", "12.0.1", "01", "1.2", ""} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		id, path, err := ParseKey(key)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("ParseKey(%q): err = %v, want ErrBadKey", key, err)
			}
			return
		}
		if got := (Shard{ID: id, Path: path}).Key(); got != key {
			t.Fatalf("ParseKey(%q) = %d, %q; Key() of that = %q", key, id, path, got)
		}
	})
}
