package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

func TestChannelMean(t *testing.T) {
	// A [1,2,2] tensor: channel 0 holds 1, 2; channel 1 holds 4 and NaN,
	// which is left out, so its mean is 4.
	data := []float32{1, 2, 4, float32(math.NaN())}
	ts, err := newTensorStats("x", []pipeline.StatSpec{{Kind: pipeline.StatChannelMean, Axis: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if ts.reducible() {
		t.Fatal("channel_mean cannot come from in-graph ReduceMin/ReduceMax")
	}
	var r sampleResult
	var buf [2][]float32
	if err := ts.computeGo(data, []int64{1, 2, 2}, &r, &buf); err != nil {
		t.Fatal(err)
	}
	var got []float64
	if err := ts.emit(&r, func(s pipeline.StatSpec, v []float64) error {
		if key := s.Key(); key != "channel_mean@1" {
			t.Errorf("key %q, want channel_mean@1", key)
		}
		got = v
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 1.5 || got[1] != 4 {
		t.Fatalf("channel means = %v, want [1.5 4]", got)
	}
	// A channel with no finite value yields no statistic for the sample.
	if err := ts.computeGo([]float32{1, float32(math.Inf(1))}, []int64{1, 2, 1}, &r, &buf); err != nil {
		t.Fatal(err)
	}
	emitted := false
	_ = ts.emit(&r, func(pipeline.StatSpec, []float64) error { emitted = true; return nil })
	if emitted {
		t.Fatal("a channel without finite values must not produce a mean")
	}
}

// TestChannelMeanFiniteBits checks that the interleaved sum of finite data
// has the bits of the one-channel-at-a-time sum, on values of very different
// magnitudes (where the order of float64 additions shows).
func TestChannelMeanFiniteBits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, shape := range [][]int64{{1, 7, 5, 3}, {3, 9, 11}, {2, 4, 0}, {1, 1, 1}, {2, 3}, {4, 5, 6, 7}} {
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64() * math.Exp2(float64(r.IntN(60)-30)))
		}
		for axis := range shape {
			want := channelMean(data, shape, axis)
			got := channelMeanFinite(data, shape, axis)
			for c := range want {
				if math.Float64bits(got[c]) != math.Float64bits(want[c]) {
					t.Fatalf("shape %v axis %d channel %d: %v, want %v", shape, axis, c, got[c], want[c])
				}
			}
		}
	}
}

// TestChannelMeanVectorBits: the AVX2 sums (eight and sixteen channels at a
// time, an element count per channel that is or is not a multiple of 8,
// several blocks before the axis) have the bits of channelMean, on values
// of very different magnitudes; so has the portable loop they replace.
func TestChannelMeanVectorBits(t *testing.T) {
	if !haveAVX2 {
		t.Log("no AVX2 on this CPU: only the portable loop is checked")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, shape := range [][]int64{{1, 8, 8}, {1, 16, 3, 5}, {2, 24, 9}, {3, 40, 17}, {1, 33, 64}, {1, 9, 1, 8}, {2, 17, 1}} {
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64() * math.Exp2(float64(r.IntN(60)-30)))
		}
		want := channelMean(data, shape, 1)
		for _, vector := range []bool{true, false} {
			got := channelMeanFiniteVec(data, shape, 1, vector && haveAVX2)
			for c := range want {
				if math.Float64bits(got[c]) != math.Float64bits(want[c]) {
					t.Fatalf("shape %v (vector %v) channel %d: %v, want %v", shape, vector, c, got[c], want[c])
				}
			}
		}
	}
}

// BenchmarkChannelMeanFinite is the per-channel mean of one ppocr_det-like
// activation ([1,24,64,64]: 24 channels of 4096 values), with the AVX2 sums
// (when the CPU has them) and with the portable loop, which give the same
// bits (TestChannelMeanVectorBits).
//
//	go test ./engine -run XXX -bench ChannelMeanFinite -count 6
func BenchmarkChannelMeanFinite(b *testing.B) {
	shape := []int64{1, 24, 64, 64}
	data := make([]float32, 24*64*64)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	for _, bc := range []struct {
		name   string
		vector bool
	}{{"AVX2", true}, {"Portable", false}} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.vector && !haveAVX2 {
				b.Skip("no AVX2 on this CPU")
			}
			b.SetBytes(int64(4 * len(data)))
			for b.Loop() {
				channelMeanFiniteVec(data, shape, 1, bc.vector)
			}
		})
	}
}
