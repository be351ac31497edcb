package pipeline

import (
	"fmt"
	"math"
	"strconv"

	"github.com/fleetcal/fleetcal/reduce"
)

// StatKind names a statistic computed on one sample's activation.
type StatKind string

// The per-sample statistics an Engine can collect. Each yields one value per
// sample, except the channel kinds, which yield one value per channel of Axis.
const (
	StatMin         StatKind = "min"
	StatMax         StatKind = "max"
	StatAbsMax      StatKind = "abs_max"
	StatQuantile    StatKind = "quantile"     // the Q-quantile of the values
	StatAbsQuantile StatKind = "abs_quantile" // the Q-quantile of |values|
	StatChannelMin  StatKind = "channel_min"  // min per index of Axis
	StatChannelMax  StatKind = "channel_max"  // max per index of Axis
	StatChannelMean StatKind = "channel_mean" // mean per index of Axis (float64)
	StatMean        StatKind = "mean"         // mean of the values (float64)
	// StatHistogram and StatAbsHistogram count the values (or |values|) of
	// every sample in Bins equal bins over [Lo, Hi): one histogram for the
	// whole pass (reduce.Set.Hists), not one per sample. The edges come from
	// an earlier min/max pass, so histograms merge exactly.
	StatHistogram    StatKind = "histogram"
	StatAbsHistogram StatKind = "abs_histogram"
)

// StatSpec is one statistic on one tensor. Axis counts the dimensions of one
// sample's activation including its batch axis of 1 (so channels of NCHW are
// axis 1); Q is the quantile in [0, 1].
type StatSpec struct {
	Kind StatKind
	Axis int
	Q    float64
	// Lo, Hi and Bins are the edges of a histogram statistic.
	Lo, Hi float64
	Bins   int
	// Fold, on a scalar statistic (min, max, abs_max, quantile,
	// abs_quantile, mean), folds the per-sample values as they come into
	// a reduce.Fold (Set.Folds) instead of keeping one per sample
	// (Set.Stats): their running min or max, or their exact sum and count
	// for a mean. The coordinator's memory then does not grow with the
	// number of samples.
	Fold reduce.FoldOp `json:",omitempty"`
}

// Key is the spec's name inside a reduce.Set, e.g. "max", "channel_min@1",
// or "sum(max)" for the fold of the per-sample max into an exact sum. A
// registered statistic's key is its name (RegisterStatistic).
func (s StatSpec) Key() string {
	if !isBuiltinStat(s.Kind) {
		return string(s.Kind)
	}
	if s.Fold != reduce.FoldNone {
		return fmt.Sprintf("%s(%s)", s.Fold, s.unfolded())
	}
	return s.unfolded()
}

func (s StatSpec) unfolded() string {
	switch s.Kind {
	case StatChannelMin, StatChannelMax, StatChannelMean:
		return fmt.Sprintf("%s@%d", s.Kind, s.Axis)
	case StatQuantile, StatAbsQuantile:
		return fmt.Sprintf("%s@%g", s.Kind, s.Q)
	case StatHistogram, StatAbsHistogram:
		return fmt.Sprintf("%s@%s:%s:%d", s.Kind, strconv.FormatFloat(s.Lo, 'g', -1, 64),
			strconv.FormatFloat(s.Hi, 'g', -1, 64), s.Bins)
	}
	return string(s.Kind)
}

// Validate rejects unknown kinds (suggesting the closest name, see
// LookupStatistic), quantiles outside [0, 1], folds of statistics that
// are not one scalar per sample and parameters of registered statistics.
func (s StatSpec) Validate() error {
	if !isBuiltinStat(s.Kind) {
		return s.validateCustom()
	}
	if s.Fold != reduce.FoldNone {
		if !s.Fold.Valid() {
			return fmt.Errorf("statistic %s: unknown fold %q", s.Kind, s.Fold)
		}
		switch s.Kind {
		case StatMin, StatMax, StatAbsMax, StatMean, StatQuantile, StatAbsQuantile:
		default:
			return fmt.Errorf("statistic %s: fold %s of a statistic that is not one value per sample", s.Kind, s.Fold)
		}
	}
	switch s.Kind {
	case StatMin, StatMax, StatAbsMax, StatMean:
	case StatChannelMin, StatChannelMax, StatChannelMean:
		if s.Axis < 0 {
			return fmt.Errorf("statistic %s: negative axis %d", s.Kind, s.Axis)
		}
	case StatQuantile, StatAbsQuantile:
		if !(s.Q >= 0 && s.Q <= 1) {
			return fmt.Errorf("statistic %s: quantile %g outside [0, 1]", s.Kind, s.Q)
		}
	case StatHistogram, StatAbsHistogram:
		if !(s.Lo < s.Hi) || math.IsInf(s.Lo, 0) || math.IsInf(s.Hi, 0) || s.Bins < 1 || s.Bins > 1<<24 {
			return fmt.Errorf("statistic %s: edges [%g, %g) in %d bins: want finite lo < hi and 1 to 2^24 bins", s.Kind, s.Lo, s.Hi, s.Bins)
		}
	}
	return nil
}

// StatsLayout maps a tensor name (or a node name, for the node's first
// output: NodeIndex.Resolve) to the statistics to collect on it, built-in
// kinds and registered statistics (RegisterStatistic) by name.
type StatsLayout map[string][]StatSpec
