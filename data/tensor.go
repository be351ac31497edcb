package data

import (
	"fmt"
	"math"

	"github.com/fleetcal/fleetcal/pipeline"
)

// fitShape checks shape against the model's want (-1 matches any size),
// first prepending a batch axis of 1 when shape lacks only that axis. It
// returns the shape to feed.
func fitShape(shape, want []int64) ([]int64, error) {
	if want == nil {
		return shape, nil // the model does not say
	}
	if len(shape)+1 == len(want) && (want[0] == 1 || want[0] == -1) {
		shape = append([]int64{1}, shape...)
	}
	ok := len(shape) == len(want)
	for i := 0; ok && i < len(shape); i++ {
		ok = want[i] < 0 || want[i] == shape[i]
	}
	if !ok {
		return nil, errorf(ErrMismatch, "shape %s, model wants %s", pipeline.ShapeString(shape), pipeline.ShapeString(want))
	}
	return shape, nil
}

// number is the element types a pipeline.Tensor holds.
type number interface {
	float32 | float64 | uint8 | int8 | int32 | int64
}

// castData converts a tensor's data slice to the element type to, as a Go
// conversion (numpy's astype): floats to integers truncate toward zero and
// must be in range.
func castData(data any, to pipeline.DType) (any, error) {
	switch to {
	case pipeline.Float32:
		return castTo[float32](data), nil
	case pipeline.Float64:
		return castTo[float64](data), nil
	case pipeline.Uint8:
		return castTo[uint8](data), nil
	case pipeline.Int8:
		return castTo[int8](data), nil
	case pipeline.Int32:
		return castTo[int32](data), nil
	case pipeline.Int64:
		return castTo[int64](data), nil
	}
	return nil, fmt.Errorf("cannot convert to %s", to)
}

func castTo[D number](data any) any {
	switch s := data.(type) {
	case []D:
		return s
	case []float32:
		return conv[D](s)
	case []float64:
		return conv[D](s)
	case []uint8:
		return conv[D](s)
	case []int8:
		return conv[D](s)
	case []int32:
		return conv[D](s)
	case []int64:
		return conv[D](s)
	}
	return nil
}

func conv[D, S number](s []S) []D {
	out := make([]D, len(s))
	for i, v := range s {
		out[i] = D(v)
	}
	return out
}

// checkFinite returns an error naming the first NaN or infinite element of
// float data.
func checkFinite(data any) error {
	switch s := data.(type) {
	case []float32:
		for i, v := range s {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return errorf(pipeline.ErrInvalidSample, "%v at element %d", v, i)
			}
		}
	case []float64:
		for i, v := range s {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return errorf(pipeline.ErrInvalidSample, "%v at element %d", v, i)
			}
		}
	}
	return nil
}

// pixelOut turns normalized float32 pixel values into a tensor of type dt:
// kept for float32, widened for float64, rounded and clamped to [0, 255]
// for uint8.
func pixelOut(v []float32, dt pipeline.DType) any {
	switch dt {
	case pipeline.Float64:
		return conv[float64](v)
	case pipeline.Uint8:
		out := make([]uint8, len(v))
		for i, x := range v {
			out[i] = uint8(math.Round(min(max(float64(x), 0), 255)))
		}
		return out
	}
	return v
}

// outDType picks the element type of image and idx tensors: the configured
// one, else the model's when it is one the loaders produce, else float32.
func outDType(cfg Config, in pipeline.TensorInfo) (pipeline.DType, error) {
	if cfg.DType != "" {
		d, err := parseDType(cfg.DType)
		if err != nil {
			return 0, err
		}
		switch d {
		case pipeline.Float32, pipeline.Float64, pipeline.Uint8:
			return d, nil
		}
		return 0, errorf(ErrBadConfig, "data_source.dtype: %s; images and idx produce float32, float64 or uint8", d)
	}
	switch in.DType {
	case pipeline.Float64, pipeline.Uint8:
		return in.DType, nil
	}
	return pipeline.Float32, nil
}

// normalizer applies (x/scale - mean[c])/std[c], in float64, rounded once
// to float32.
type normalizer struct {
	scale     float64
	mean, std []float64
}

// newNormalizer builds the per-channel transform for c channels; mean and
// std have zero, one or c values; defScale is used when cfg.Scale is 0.
func newNormalizer(cfg Config, c int, defScale float64) (normalizer, error) {
	scale := cfg.Scale
	if scale == 0 {
		scale = defScale
	}
	pick := func(key string, vals []float64, def float64) ([]float64, error) {
		switch len(vals) {
		case 0:
			vals = []float64{def}
		case 1, c:
		default:
			return nil, errorf(ErrBadConfig, "data_source.%s: %d values for %d channels; want 1 or %d", key, len(vals), c, c)
		}
		out := make([]float64, c)
		for i := range out {
			out[i] = vals[min(i, len(vals)-1)]
		}
		return out, nil
	}
	mean, err := pick("mean", cfg.Mean, 0)
	if err != nil {
		return normalizer{}, err
	}
	std, err := pick("std", cfg.Std, 1)
	if err != nil {
		return normalizer{}, err
	}
	return normalizer{scale: scale, mean: mean, std: std}, nil
}

func (n normalizer) apply(c int, x float64) float32 {
	return float32((x/n.scale - n.mean[c]) / n.std[c])
}
