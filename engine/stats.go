package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
)

// tensorStats is what to compute on one tensor, derived from its StatSpecs.
type tensorStats struct {
	name   string
	specs  []pipeline.StatSpec // unique by Key, sorted by Key
	axes   []int               // distinct channel axes, ascending
	minMax bool                // min, max or abs_max asked for
	mean   bool
	// meanAxes are the distinct axes of channel_mean statistics, ascending.
	meanAxes []int
	// hists are the histogram statistics.
	hists  []pipeline.StatSpec
	values bool // quantile: the finite values must be sorted
	abs    bool // abs_quantile: the finite |values| must be sorted
	// custom are the registered statistics (custom.go).
	custom []customStat
}

func newTensorStats(name string, specs []pipeline.StatSpec) (*tensorStats, error) {
	ts := &tensorStats{name: name}
	seen := map[string]bool{}
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %w", ErrBadStats, name, err)
		}
		if seen[s.Key()] {
			continue
		}
		seen[s.Key()] = true
		ts.specs = append(ts.specs, s)
		switch s.Kind {
		case pipeline.StatMin, pipeline.StatMax, pipeline.StatAbsMax:
			ts.minMax = true
		case pipeline.StatChannelMin, pipeline.StatChannelMax:
			if !slices.Contains(ts.axes, s.Axis) {
				ts.axes = append(ts.axes, s.Axis)
			}
		case pipeline.StatMean:
			ts.mean = true
		case pipeline.StatChannelMean:
			if !slices.Contains(ts.meanAxes, s.Axis) {
				ts.meanAxes = append(ts.meanAxes, s.Axis)
			}
		case pipeline.StatHistogram, pipeline.StatAbsHistogram:
			ts.hists = append(ts.hists, s)
		case pipeline.StatQuantile:
			ts.values = true
		case pipeline.StatAbsQuantile:
			ts.abs = true
		default:
			ts.addCustom(s)
		}
	}
	slices.SortFunc(ts.specs, func(a, b pipeline.StatSpec) int {
		switch ka, kb := a.Key(), b.Key(); {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	slices.Sort(ts.axes)
	slices.Sort(ts.meanAxes)
	return ts, nil
}

// reducible reports whether every statistic of ts can be computed from
// in-graph ReduceMin/ReduceMax results.
func (ts *tensorStats) reducible() bool {
	return !ts.mean && !ts.values && !ts.abs && len(ts.meanAxes) == 0 && len(ts.hists) == 0 && len(ts.custom) == 0
}

// sampleResult is one sample's statistics on one tensor.
type sampleResult struct {
	min, max  float64
	finite    int               // number of finite values
	nonFinite uint64            // number of NaN/±Inf values
	chanMin   map[int][]float64 // by axis
	chanMax   map[int][]float64 // by axis
	chanEmpty map[int]bool      // an axis with a channel holding no finite value
	mean      float64
	chanMean  map[int][]float64   // by axis; NaN for a channel without finite values
	hists     []*reduce.Histogram // one per ts.hists, this sample's counts
	sorted    []float32           // finite values, ascending (quantile)
	sortedAbs []float32           // |finite values|, ascending (abs_quantile)
	custom    [][]float64         // one per ts.custom, nil when nothing to record
}

// emit hands each statistic of r to add with its spec, in key order (a
// spec with a Fold gets one value, to fold). Statistics with no finite
// value to compute them from are skipped.
func (ts *tensorStats) emit(r *sampleResult, add func(s pipeline.StatSpec, v []float64) error) error {
	for _, s := range ts.specs {
		var v []float64
		switch s.Kind {
		case pipeline.StatMin:
			if r.finite > 0 {
				v = []float64{r.min}
			}
		case pipeline.StatMax:
			if r.finite > 0 {
				v = []float64{r.max}
			}
		case pipeline.StatAbsMax:
			if r.finite > 0 {
				v = []float64{max(math.Abs(r.min), math.Abs(r.max))}
			}
		case pipeline.StatChannelMin:
			if !r.chanEmpty[s.Axis] {
				v = r.chanMin[s.Axis]
			}
		case pipeline.StatChannelMax:
			if !r.chanEmpty[s.Axis] {
				v = r.chanMax[s.Axis]
			}
		case pipeline.StatMean:
			if r.finite > 0 {
				v = []float64{r.mean}
			}
		case pipeline.StatChannelMean:
			if m := r.chanMean[s.Axis]; m != nil && !slices.ContainsFunc(m, math.IsNaN) {
				v = m
			}
		case pipeline.StatQuantile:
			if len(r.sorted) > 0 {
				v = []float64{quantile(r.sorted, s.Q)}
			}
		case pipeline.StatAbsQuantile:
			if len(r.sortedAbs) > 0 {
				v = []float64{quantile(r.sortedAbs, s.Q)}
			}
		default:
			s, v = ts.emitCustom(s, r)
		}
		if v != nil {
			if err := add(s, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// canon returns v as float64 with -0 turned into +0, so that min and max do
// not depend on which of two equal zeros was seen first.
func canon(v float32) float64 {
	if v == 0 {
		return 0
	}
	return float64(v)
}

const absMask = 0x7fffffff
const expAllOnes = 0x7f800000 // |bits| >= this: ±Inf or NaN

// minMaxFinite returns the min and max of the finite values of data, their
// number and the number of non-finite values.
func minMaxFinite(data []float32) (mn, mx float32, n int, bad uint64) {
	mn, mx = float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range data {
		if math.Float32bits(v)&absMask >= expAllOnes {
			bad++
			continue
		}
		n++
		if v < mn {
			mn = v
		}
		if v > mx {
			mx = v
		}
	}
	return mn, mx, n, bad
}

// axisSplit returns the number of blocks before axis, the axis' size and the
// block length after it, for a row-major tensor of shape.
func axisSplit(shape []int64, axis int) (outer, size, inner int) {
	outer, inner = 1, 1
	for _, d := range shape[:axis] {
		outer *= int(d)
	}
	for _, d := range shape[axis+1:] {
		inner *= int(d)
	}
	return outer, int(shape[axis]), inner
}

// computeGo computes every statistic of ts on one sample's values, whose
// shape includes the sample's batch axis. buf is scratch space for quantiles;
// r's slices alias it until the next call.
func (ts *tensorStats) computeGo(data []float32, shape []int64, r *sampleResult, buf *[2][]float32) error {
	for _, a := range slices.Concat(ts.axes, ts.meanAxes) {
		if a >= len(shape) {
			return fmt.Errorf("%w: tensor %q: channel axis %d, tensor has rank %d (shape %s)",
				ErrBadStats, ts.name, a, len(shape), pipeline.ShapeString(shape))
		}
	}
	*r = sampleResult{}
	if err := ts.computeCustom(data, shape, r); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	// Fast path: vectorized min/max, which also tells whether every value
	// is finite.
	var mn, mx float32
	finite := true
	if len(ts.axes) == 0 {
		mn, mx, finite = minMaxC(data)
	} else {
		r.chanMin, r.chanMax, r.chanEmpty = map[int][]float64{}, map[int][]float64{}, map[int]bool{}
		for i, a := range ts.axes {
			outer, size, inner := axisSplit(shape, a)
			cmn, cmx, ok := channelMinMaxC(data, outer, size, inner)
			if !ok {
				finite = false
				break
			}
			if i == 0 {
				mn, mx = slices.Min(cmn), slices.Max(cmx)
			}
			r.chanMin[a], r.chanMax[a] = canonAll(cmn), canonAll(cmx)
		}
	}
	if finite {
		r.finite = len(data)
	} else {
		// Slow path: count NaN/±Inf and leave them out.
		mn, mx, r.finite, r.nonFinite = minMaxFinite(data)
		for _, a := range ts.axes {
			r.chanMin[a], r.chanMax[a], r.chanEmpty[a] = channelMinMax(data, shape, a)
		}
	}
	r.min, r.max = canon(mn), canon(mx)
	if ts.mean && r.finite > 0 {
		var sum float64
		for _, v := range data {
			if finite || math.Float32bits(v)&absMask < expAllOnes {
				sum += float64(v)
			}
		}
		r.mean = sum / float64(r.finite)
	}
	for _, hs := range ts.hists {
		h, err := reduce.NewHistogram(hs.Lo, hs.Hi, hs.Bins)
		if err != nil {
			return fmt.Errorf("%w: tensor %q: %v", ErrBadStats, ts.name, err)
		}
		if hs.Kind == pipeline.StatAbsHistogram {
			for _, v := range data {
				h.Add(math.Abs(float64(v)))
			}
		} else {
			h.AddFloat32s(data)
		}
		r.hists = append(r.hists, h)
	}
	for _, a := range ts.meanAxes {
		if r.chanMean == nil {
			r.chanMean = map[int][]float64{}
		}
		if finite {
			r.chanMean[a] = channelMeanFinite(data, shape, a)
		} else {
			r.chanMean[a] = channelMean(data, shape, a)
		}
	}
	if ts.values && r.finite > 0 {
		r.sorted = sortedFinite(data, finite, false, &buf[0])
	}
	if ts.abs && r.finite > 0 {
		r.sortedAbs = sortedFinite(data, finite, true, &buf[1])
	}
	return nil
}

// channelMinMax is the min and max of the finite values of each index of
// axis; empty reports a channel without finite values.
func channelMinMax(data []float32, shape []int64, axis int) (mins, maxs []float64, empty bool) {
	outer, size, inner := axisSplit(shape, axis)
	mn32 := make([]float32, size)
	mx32 := make([]float32, size)
	cnt := make([]int, size)
	for c := range size {
		mn32[c], mx32[c] = float32(math.Inf(1)), float32(math.Inf(-1))
	}
	for o := range outer {
		for c := range size {
			block := data[(o*size+c)*inner : (o*size+c+1)*inner]
			bmn, bmx, n, _ := minMaxFinite(block)
			if n > 0 {
				mn32[c] = min(mn32[c], bmn)
				mx32[c] = max(mx32[c], bmx)
				cnt[c] += n
			}
		}
	}
	for c := range size {
		if cnt[c] == 0 {
			empty = true
		}
	}
	return canonAll(mn32), canonAll(mx32), empty
}

// channelMean is the mean of the finite values of each index of axis, summed
// in float64 in storage order (NaN for a channel without finite values).
func channelMean(data []float32, shape []int64, axis int) []float64 {
	outer, size, inner := axisSplit(shape, axis)
	sum := make([]float64, size)
	cnt := make([]int, size)
	for o := range outer {
		for c := range size {
			s, n := sum[c], cnt[c]
			for _, v := range data[(o*size+c)*inner : (o*size+c+1)*inner] {
				if math.Float32bits(v)&absMask < expAllOnes {
					s += float64(v)
					n++
				}
			}
			sum[c], cnt[c] = s, n
		}
	}
	for c := range sum {
		sum[c] /= float64(cnt[c]) // 0/0 is NaN: no finite value
	}
	return sum
}

// channelMeanFinite is channelMean for data holding no NaN or ±Inf, with the
// same bits: each channel is still summed in float64 in storage order, one
// addition after the other, but four channels are summed side by side so
// that their additions overlap in the CPU (a float64 sum chain is bound by
// the latency of one addition); with AVX2, eight channels at a time, their
// element i added by one vector addition per four channels (channelSums8).
func channelMeanFinite(data []float32, shape []int64, axis int) []float64 {
	return channelMeanFiniteVec(data, shape, axis, haveAVX2)
}

// channelMeanFiniteVec is channelMeanFinite with the AVX2 sums when vector
// is true (it must be false on a CPU without them), the portable loop
// otherwise: the same bits either way.
func channelMeanFiniteVec(data []float32, shape []int64, axis int, vector bool) []float64 {
	outer, size, inner := axisSplit(shape, axis)
	sum := make([]float64, size)
	c := 0
	if vector && inner >= 8 && len(data) == outer*size*inner {
		// Eight channels at a time in vector registers, same order.
		channelSums8(data, outer, size, inner, sum)
		c = size / 8 * 8
	}
	for ; c+4 <= size; c += 4 {
		var s0, s1, s2, s3 float64
		for o := range outer {
			base := (o*size + c) * inner
			b0 := data[base : base+inner]
			b1 := data[base+inner : base+2*inner]
			b2 := data[base+2*inner : base+3*inner]
			b3 := data[base+3*inner : base+4*inner]
			b1, b2, b3 = b1[:len(b0)], b2[:len(b0)], b3[:len(b0)] // no bounds checks below
			for i, v := range b0 {
				s0 += float64(v)
				s1 += float64(b1[i])
				s2 += float64(b2[i])
				s3 += float64(b3[i])
			}
		}
		sum[c], sum[c+1], sum[c+2], sum[c+3] = s0, s1, s2, s3
	}
	for ; c < size; c++ {
		var s float64
		for o := range outer {
			for _, v := range data[(o*size+c)*inner : (o*size+c+1)*inner] {
				s += float64(v)
			}
		}
		sum[c] = s
	}
	n := float64(outer * inner)
	for c := range sum {
		sum[c] /= n // 0/0 is NaN: an empty channel
	}
	return sum
}

// canonAll applies canon to every value.
func canonAll(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = canon(x)
	}
	return out
}

// quantile is the q-quantile of sorted (ascending, finite) values,
// interpolated linearly between the two nearest ranks (numpy's default
// "linear" method), in float64.
func quantile(sorted []float32, q float64) float64 {
	n := len(sorted)
	pos := q * float64(n-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, n-1)
	frac := pos - float64(lo)
	a, b := float64(sorted[lo]), float64(sorted[hi])
	if frac == 0 || a == b {
		return a
	}
	return a + (b-a)*frac
}

// sortedFinite copies the finite values of data (or their magnitudes) into
// *buf and sorts them.
func sortedFinite(data []float32, finite, abs bool, buf *[]float32) []float32 {
	s := (*buf)[:0]
	for _, v := range data {
		if finite || math.Float32bits(v)&absMask < expAllOnes {
			if abs {
				v = float32(math.Abs(float64(v)))
			}
			s = append(s, v)
		}
	}
	slices.Sort(s)
	*buf = s
	return s
}
