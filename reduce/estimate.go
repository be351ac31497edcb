package reduce

import (
	"fmt"
	"math"
)

// Percentile estimates the p-th percentile (p in [0, 100]) of the values
// counted in h, e.g. Percentile(h, 99.999) of a histogram of |x|.
//
// The values of a bin are taken as spread evenly over the bin: the estimate
// is the value v below which p% of the N non-NaN values lie, found by walking
// the cumulative counts and interpolating linearly inside the bin that holds
// rank r = p/100 × N:
//
//	v = Edge(k) + (r - C) / count(k) × (Edge(k+1) - Edge(k))
//
// where C is the number of values in the bins before k. Underflow values are
// taken as lying at Lo and overflow values at Hi, so with edges from a min/max
// pass (Hi = max) Percentile(h, 100) is the max. Percentile(h, 0) is Lo when
// there is underflow, else the lower edge of the first non-empty bin.
// The walk is in bin order with integer counts: the result is deterministic.
func Percentile(h *Histogram, p float64) (float64, error) {
	if !(p >= 0 && p <= 100) {
		return 0, fmt.Errorf("percentile %g: %w: want 0 to 100", p, ErrOutOfRange)
	}
	n := h.Total()
	if n == 0 {
		return 0, fmt.Errorf("percentile %g: %w", p, ErrEmpty)
	}
	r := p / 100 * float64(n)
	c := h.underflow
	if c > 0 && float64(c) >= r {
		return h.lo, nil
	}
	for k, cnt := range h.counts {
		if cnt == 0 {
			continue
		}
		if float64(c+cnt) >= r {
			frac := (r - float64(c)) / float64(cnt)
			frac = min(max(frac, 0), 1)
			// float64(): no fused multiply-add, the same bits on every machine.
			return h.Edge(k) + float64(frac*(h.Edge(k+1)-h.Edge(k))), nil
		}
		c += cnt
	}
	return h.hi, nil
}

// EntropyThreshold picks a clipping threshold for a histogram of |x| by
// TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT",
// GTC 2017): among the candidate thresholds Edge(i) for i in
// [targetBins, Bins()], it returns the one whose clipped-and-quantized
// distribution loses the least information, measured by KL(P||Q).
//
// For each candidate i:
//   - P is the counts of bins [0, i) with the underflow added to bin 0 and
//     every count at or above Edge(i) (later bins and overflow) added to bin
//     i-1: clipping folds the outliers into the last level;
//   - Q quantizes the counts of bins [0, i) (outliers excluded) into
//     targetBins levels of ⌊i/targetBins⌋ bins each, the last level taking
//     the remainder, and spreads each level's total evenly over its bins
//     where P is not zero;
//   - KL(P||Q) = Σ P(j)/ΣP × ln((P(j)/ΣP) / (Q(j)/ΣQ)) over P(j) > 0.
//
// Where Q(j) is zero and P(j) is not (outliers folded into a bin whose level
// is empty), the divergence is infinite and the candidate loses; ONNX Runtime
// and MXNet instead smooth P and Q with ε = 1e-4. The candidate i = Bins()
// always has a finite divergence. Ties go to the smaller threshold. Counts
// are summed as integers and the divergence in float64 in bin order, so the
// result is deterministic.
//
// The returned threshold is Edge(i), the upper edge of the last bin kept.
// The histogram is meant to be of |x| over [0, max) from a min/max pass, with
// many more bins than targetBins (TensorRT uses 2048 bins and 128 levels for
// INT8).
func EntropyThreshold(h *Histogram, targetBins int) (float64, error) {
	bins := len(h.counts)
	if targetBins < 1 || targetBins > bins {
		return 0, fmt.Errorf("entropy threshold: %w: %d target bins for a histogram of %d bins", ErrOutOfRange, targetBins, bins)
	}
	total := h.Total()
	if total == 0 {
		return 0, fmt.Errorf("entropy threshold: %w", ErrEmpty)
	}
	// suffix[i] is the number of values at or above Edge(i).
	suffix := make([]uint64, bins+1)
	suffix[bins] = h.overflow
	for k := bins - 1; k >= 0; k-- {
		suffix[k] = suffix[k+1] + h.counts[k]
	}
	logs := make([]float64, bins)
	for k, c := range h.counts {
		if c > 0 {
			logs[k] = math.Log(float64(c))
		}
	}
	best, bestKL := bins, math.Inf(1)
	for i := targetBins; i <= bins; i++ {
		kl := divergence(h.counts[:i], logs, h.underflow, suffix[i], targetBins)
		if kl < bestKL {
			best, bestKL = i, kl
		}
	}
	return h.Edge(best), nil
}

// divergence is KL(P||Q) for the candidate i = len(counts): P is counts with
// under added to bin 0 and tail added to bin i-1, Q is counts quantized into
// levels levels. logs[j] is ln(counts[j]).
//
// With c(j) the counts of P, ΣP their sum, q(j) = (level sum)/(level's
// non-zero bins) the unnormalized Q and ΣQ its sum,
//
//	KL = Σ c/ΣP × ln((c/ΣP) / (q/ΣQ)) = (Σ c × (ln c - ln q)) / ΣP + ln(ΣQ/ΣP)
//
// which takes one logarithm per level instead of one per bin.
func divergence(counts []uint64, logs []float64, under, tail uint64, levels int) float64 {
	i := len(counts)
	pc := func(j int) uint64 {
		c := counts[j]
		if j == 0 {
			c += under
		}
		if j == i-1 {
			c += tail
		}
		return c
	}
	per := i / levels
	var sumQ uint64
	acc := 0.0
	for l := range levels {
		start, stop := l*per, (l+1)*per
		if l == levels-1 {
			stop = i
		}
		var sum uint64
		nonzero := 0
		for j := start; j < stop; j++ {
			sum += counts[j]
			if pc(j) != 0 {
				nonzero++
			}
		}
		sumQ += sum
		if nonzero == 0 {
			continue
		}
		if sum == 0 {
			return math.Inf(1) // P > 0 where Q = 0
		}
		lq := math.Log(float64(sum) / float64(nonzero))
		for j := start; j < stop; j++ {
			c := pc(j)
			if c == 0 {
				continue
			}
			lc := logs[j]
			if c != counts[j] {
				lc = math.Log(float64(c))
			}
			// float64(): no fused multiply-add, the same bits on every machine.
			acc += float64(float64(c) * (lc - lq))
		}
	}
	sumP := sumQ + under + tail
	return acc/float64(sumP) + math.Log(float64(sumQ)/float64(sumP))
}
