package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/fleetcal/fleetcal/pipeline"
)

// Config is POT's data_source entry: which loader reads the data (Type),
// from where (Path) and, for images and IDX files, how pixels become a
// tensor. It decodes from a JSON object or from POT's plain string form
// ("data_source": "calib/"), in which case Type is left empty and Open
// guesses it from the files in Path.
type Config struct {
	// Type is a registered loader name: "npy", "images" or "idx".
	// Empty: guessed by Open from the content of Path.
	Type string `json:"type"`
	// Path is a folder (or, for idx, an images file), as written: messages
	// name it so. A relative Path resolves against BaseDir.
	Path string `json:"path"`
	// BaseDir is the folder a relative Path resolves against: set when the
	// config is loaded (pipeline.DecodeDataSource) to the config file's
	// folder, or, when given, to base_dir resolved against that folder.
	// On a worker reading shipped data, it is the download folder.
	BaseDir string `json:"base_dir,omitempty"`

	// Size is the (height, width) images are resized to; default: the
	// model input's height and width.
	Size []int `json:"size,omitempty"`
	// Layout of the produced image tensor: "NCHW" (default) or "NHWC".
	Layout string `json:"layout,omitempty"`
	// ChannelOrder of the produced image tensor: "RGB" (default) or "BGR".
	ChannelOrder string `json:"channel_order,omitempty"`
	// Grayscale converts images to one luma channel (ITU-R BT.601 weights),
	// replicated when the model wants three channels. Implied when the model
	// input has one channel.
	Grayscale bool `json:"grayscale,omitempty"`
	// Mean and Std normalize each pixel as (x/Scale - Mean[c]) / Std[c]; one
	// value for every channel or one per channel, in the produced channel
	// order. Defaults: 0 and 1.
	Mean []float64 `json:"mean,omitempty"`
	Std  []float64 `json:"std,omitempty"`
	// Scale divides raw pixel values before Mean and Std; 0 means the
	// loader's default: 1 for images (pixels stay in [0, 255]), 255 for idx
	// (pixels land in [0, 1]).
	Scale float64 `json:"scale,omitempty"`
	// DType of the produced tensor: "float32", "float64" or "uint8" (rounded,
	// clamped) for images and idx, default the model input's type, else
	// float32. For npy, setting it converts every array to this type
	// (an explicit cast, as numpy's astype); unset, a dtype different from the
	// model's is an error.
	DType string `json:"dtype,omitempty"`
	// Subset picks, for idx, the images file whose name starts with it (e.g.
	// "train" or "t10k") when Path is a folder holding several.
	Subset string `json:"subset,omitempty"`
	// MaxDecodedBytes bounds what one sample file may decode to (a .npy
	// file, one array of a .npz file), checked against the declared size
	// before anything is allocated; an IDX file declaring more is read as
	// a stream (only the images used are decoded) instead of in memory.
	// 0: DefaultMaxDecodedBytes (256 MiB).
	MaxDecodedBytes int64 `json:"max_decoded_bytes,omitempty"`
}

// UnmarshalJSON decodes POT's data_source: an object with the keys of Config
// (unknown keys are an error naming the key and listing the valid ones) or
// a string, the path of a folder whose type Open guesses.
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	var v plain
	path, isPath, err := decodePathOrObject(b, "data_source", &v)
	if err != nil || (isPath && path == nil) {
		return err
	}
	if isPath {
		*c = Config{Path: *path}
		return nil
	}
	*c = Config(v)
	return nil
}

// Annotations is POT's annotations entry: a JSON object {"sample": label}
// or a CSV file of name,label rows (see LoadAnnotations). It is
// pipeline.Annotations, so that a fleet carries it without this package.
type Annotations = pipeline.Annotations

// decodePathOrObject decodes POT's two forms of a data entry: a JSON string
// (returned as path, isPath true; path nil for null) or an object decoded
// strictly into v by pipeline.DecodeStrict, whose errors name the key and
// list the valid ones.
func decodePathOrObject(b []byte, what string, v any) (path *string, isPath bool, err error) {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil, true, nil
	}
	if len(b) > 0 && b[0] == '"' {
		var p string
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, false, fmt.Errorf("%s: %w", what, err)
		}
		return &p, true, nil
	}
	if err := pipeline.DecodeStrict(b, v, what); err != nil {
		return nil, false, errorf(ErrBadConfig, "%s", strings.Replace(err.Error(), ": want an object:", ": want an object or a path string:", 1))
	}
	return nil, false, nil
}

// Validate checks the option values that do not depend on the model: a
// known layout and channel order, a two-element positive size, positive
// standard deviations, a non-negative scale and a supported dtype.
func (c Config) Validate() error {
	bad := func(key string, format string, args ...any) error {
		return errorf(ErrBadConfig, "data_source.%s: %s", key, fmt.Sprintf(format, args...))
	}
	switch strings.ToUpper(c.Layout) {
	case "", "NCHW", "NHWC":
	default:
		return bad("layout", "%q; valid: NCHW, NHWC", c.Layout)
	}
	switch strings.ToUpper(c.ChannelOrder) {
	case "", "RGB", "BGR":
	default:
		return bad("channel_order", "%q; valid: RGB, BGR", c.ChannelOrder)
	}
	if c.Size != nil && (len(c.Size) != 2 || c.Size[0] <= 0 || c.Size[1] <= 0) {
		return bad("size", "%v; want [height, width], both positive", c.Size)
	}
	for _, s := range c.Std {
		if !(s > 0 || s < 0) {
			return bad("std", "%v has a zero or NaN", c.Std)
		}
	}
	if !(c.Scale >= 0) {
		return bad("scale", "%v; want a positive number (0 for the default)", c.Scale)
	}
	if c.MaxDecodedBytes < 0 {
		return bad("max_decoded_bytes", "%d; want a positive number of bytes (0 for the default, %d)", c.MaxDecodedBytes, DefaultMaxDecodedBytes)
	}
	if c.DType != "" {
		if _, err := parseDType(c.DType); err != nil {
			return bad("dtype", "%v", err)
		}
	}
	return nil
}

// layout is c.Layout normalized, NCHW by default.
func (c Config) layout() string {
	if c.Layout == "" {
		return "NCHW"
	}
	return strings.ToUpper(c.Layout)
}

// bgr reports whether channels are produced in BGR order.
func (c Config) bgr() bool { return strings.EqualFold(c.ChannelOrder, "BGR") }

var dtypeNames = map[string]pipeline.DType{
	"float32": pipeline.Float32,
	"float64": pipeline.Float64,
	"uint8":   pipeline.Uint8,
	"int8":    pipeline.Int8,
	"int32":   pipeline.Int32,
	"int64":   pipeline.Int64,
}

// parseDType maps a numpy-style type name to a pipeline.DType.
func parseDType(s string) (pipeline.DType, error) {
	if d, ok := dtypeNames[strings.ToLower(s)]; ok {
		return d, nil
	}
	return 0, fmt.Errorf("unknown dtype %q; valid: %s", s, strings.Join(slices.Sorted(maps.Keys(dtypeNames)), ", "))
}
