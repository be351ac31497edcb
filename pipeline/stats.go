package pipeline

import "fmt"

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
)

// StatSpec is one statistic on one tensor. Axis counts the dimensions of one
// sample's activation including its batch axis of 1 (so channels of NCHW are
// axis 1); Q is the quantile in [0, 1].
type StatSpec struct {
	Kind StatKind
	Axis int
	Q    float64
}

// Key is the spec's name inside a reduce.Set, e.g. "max" or "channel_min@1".
func (s StatSpec) Key() string {
	switch s.Kind {
	case StatChannelMin, StatChannelMax, StatChannelMean:
		return fmt.Sprintf("%s@%d", s.Kind, s.Axis)
	case StatQuantile, StatAbsQuantile:
		return fmt.Sprintf("%s@%g", s.Kind, s.Q)
	}
	return string(s.Kind)
}

// Validate rejects unknown kinds and quantiles outside [0, 1].
func (s StatSpec) Validate() error {
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
	default:
		return fmt.Errorf("unknown statistic %q", s.Kind)
	}
	return nil
}

// StatsLayout maps a tensor name to the statistics to collect on it.
type StatsLayout map[string][]StatSpec
