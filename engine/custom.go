package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/fleetcal/fleetcal/pipeline"
)

// customStat is a registered statistic (pipeline.RegisterStatistic) asked
// for on one tensor.
type customStat struct {
	spec pipeline.StatSpec
	stat pipeline.Statistic
}

// addCustom notes a registered statistic; spec has been validated, so it
// is registered.
func (ts *tensorStats) addCustom(spec pipeline.StatSpec) {
	if st, ok := spec.Custom(); ok {
		ts.custom = append(ts.custom, customStat{spec: spec, stat: st})
	}
}

// computeCustom runs the registered statistics of ts on a copy of one
// sample's values (shape includes its batch axis) into r.custom. The functions see
// every value, NaN and ±Inf included; a result holding NaN or ±Inf, or of
// more than one value for a fold, is an error naming the tensor and the
// statistic.
func (ts *tensorStats) computeCustom(data []float32, shape []int64, r *sampleResult) error {
	if len(ts.custom) == 0 {
		return nil
	}
	r.custom = make([][]float64, len(ts.custom))
	for i, c := range ts.custom {
		// A copy: data is ONNX Runtime's buffer, which the built-in
		// statistics (and the metric, for a graph output) read too, and a
		// Compute may sort or rewrite what it is given.
		v, err := c.stat.Compute(pipeline.Tensor{Shape: slices.Clone(shape), Data: slices.Clone(data)})
		if err != nil {
			return fmt.Errorf("%w: tensor %q: statistic %s: %w", ErrBadStats, ts.name, c.spec.Kind, err)
		}
		if len(v) == 0 {
			continue
		}
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("%w: tensor %q: statistic %s returned %g (shape %s): results must be finite",
					ErrBadStats, ts.name, c.spec.Kind, x, pipeline.ShapeString(shape))
			}
		}
		if c.stat.Merge.Valid() && len(v) != 1 {
			return fmt.Errorf("%w: tensor %q: statistic %s returned %d values; its merge %s folds one value per sample",
				ErrBadStats, ts.name, c.spec.Kind, len(v), c.stat.Merge)
		}
		r.custom[i] = v
	}
	return nil
}

// emitCustom returns the spec to record a registered statistic under (its
// key, with the fold it declared) and its value for the sample in r.
func (ts *tensorStats) emitCustom(s pipeline.StatSpec, r *sampleResult) (pipeline.StatSpec, []float64) {
	for i, c := range ts.custom {
		if c.spec.Kind == s.Kind {
			s.Fold = c.stat.Merge
			if r.custom == nil {
				return s, nil
			}
			return s, r.custom[i]
		}
	}
	return s, nil
}
