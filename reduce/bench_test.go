package reduce

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchSizes are the shapes of a calibration pass: tensors observed, shards,
// samples per shard, histogram bins.
var benchSizes = []struct {
	name                     string
	tensors, shards, samples int
	bins                     int
}{
	{"Small", 10, 8, 4, 256},
	{"Medium", 50, 32, 8, 2048},
	{"Large", 200, 64, 16, 2048},
}

// benchShards builds one Set per shard: per tensor, per-sample min and max
// and a histogram of |x|, as a worker returns them.
func benchShards(b *testing.B, tensors, shards, samples, bins int) []*Set {
	b.Helper()
	r := rand.New(rand.NewPCG(40, 41))
	vs := make([]float32, 256)
	out := make([]*Set, shards)
	for s := range out {
		set := NewSet()
		for tn := range tensors {
			name := fmt.Sprintf("layer%03d/output", tn)
			h, err := set.EnsureHist(name, "abs_hist", 0, 8, bins)
			if err != nil {
				b.Fatal(err)
			}
			for i := range samples {
				idx := s*samples + i
				_ = set.Add(name, "min", idx, []float64{r.NormFloat64()})
				_ = set.Add(name, "max", idx, []float64{r.NormFloat64()})
				for j := range vs {
					vs[j] = float32(r.ExpFloat64())
				}
				h.AddFloat32s(vs)
			}
		}
		out[s] = set
	}
	return out
}

// BenchmarkSetMerge merges every shard's Set into an empty one, in order, as
// the coordinator does; bytes are the shards' encoded sizes.
func BenchmarkSetMerge(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			shards := benchShards(b, sz.tensors, sz.shards, sz.samples, sz.bins)
			var n int64
			for _, s := range shards {
				enc, _ := s.MarshalBinary()
				n += int64(len(enc))
			}
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				acc := NewSet()
				for _, s := range shards {
					if err := acc.Merge(s); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkDecode decodes one shard's Set.
func BenchmarkDecode(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			enc, err := benchShards(b, sz.tensors, 1, sz.samples, sz.bins)[0].MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMarshal encodes one shard's Set.
func BenchmarkMarshal(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			s := benchShards(b, sz.tensors, 1, sz.samples, sz.bins)[0]
			enc, _ := s.MarshalBinary()
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.MarshalBinary(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddFloat32s counts one activation of 1 K, 64 K and 1 M values.
func BenchmarkAddFloat32s(b *testing.B) {
	r := rand.New(rand.NewPCG(42, 43))
	for _, sz := range []struct {
		name string
		n    int
	}{{"Small", 1 << 10}, {"Medium", 1 << 16}, {"Large", 1 << 20}} {
		b.Run(sz.name, func(b *testing.B) {
			vs := make([]float32, sz.n)
			for i := range vs {
				vs[i] = float32(r.NormFloat64() * 2)
			}
			h, err := NewHistogram(-8, 8, 2048)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(4 * len(vs)))
			for b.Loop() {
				h.AddFloat32s(vs)
			}
		})
	}
}

// BenchmarkEntropyThreshold runs the KL search on a 2048-bin histogram.
func BenchmarkEntropyThreshold(b *testing.B) {
	r := rand.New(rand.NewPCG(44, 45))
	h, _ := NewHistogram(0, 16, 2048)
	vs := make([]float32, 1<<16)
	for i := range vs {
		vs[i] = float32(r.ExpFloat64())
	}
	h.AddFloat32s(vs)
	for b.Loop() {
		if _, err := EntropyThreshold(h, 128); err != nil {
			b.Fatal(err)
		}
	}
}
