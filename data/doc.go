// Package data holds fleetcal's data loaders: the pipeline.DataLoader
// implementations behind POT's "data_source" config entry, registered by
// type in pipeline's data source registry. Importing the package registers
// the built-in types (a program that only loads configs imports it for
// that: import _ "github.com/fleetcal/fleetcal/data"; cmd/coordinator,
// package app and package worker do).
//
//   - "npy": a folder of .npy files, one sample per file, sorted by name, for
//     single-input models; or of .npz files whose array names are the input
//     names (numpy's savez default arr_0, arr_1, ... map by position). The
//     leading batch axis of 1 is optional. An array's dtype must be the
//     model input's (no silent conversion; "dtype" casts explicitly), its
//     shape must match (-1 in the model matches any size), and float data
//     must be finite. Files are listed at open and read by Item.
//   - "images": a folder of PNG/JPEG files, sorted by name, decoded, resized
//     (bilinear) to "size" or the model input's height and width, turned to
//     RGB, BGR or gray, normalized as (x/scale - mean)/std and laid out
//     NCHW or NHWC with a batch axis of 1.
//   - "idx": MNIST-format files (images *idx3-ubyte[.gz], optional labels
//     *idx1-ubyte[.gz] beside them); pixels scaled to [0, 1] by default,
//     shaped as the model input wants ([1 1 28 28], [1 784], ...).
//
// The config, from JSON (unknown keys are errors naming the key):
//
//	"data_source": {"type": "images", "path": "calib/", "base_dir": "",
//	                "size": [224, 224],
//	                "layout": "NCHW", "channel_order": "RGB", "grayscale": false,
//	                "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
//	                "scale": 1, "dtype": "float32", "subset": "",
//	                "max_decoded_bytes": 268435456}
//	"data_source": "calib/"              // POT's string form: type guessed
//	"annotations": {"path": "labels.json"} // {"name": label} or name,label CSV
//
// A data_source is decoded once, when the config is loaded
// (pipeline.LoadConfig, pipeline.DecodeDataSource): to a Config, the
// pipeline.DataSource of every type here, whose BaseDir ("base_dir", by
// default the config file's folder; relative, resolved against it) a
// relative Path resolves against, while messages name Path as written. The
// type of the string form is guessed then, from the files (GuessType).
// Config.Files lists what it reads (for a fleet's digests and shipping) and
// Config.Rebase points it at a copy of them (shipped data on a worker).
//
// Sizes are checked before allocating: a .npy file or a .npz array decoding
// to more than max_decoded_bytes (default 256 MiB) is an error, as is a zip
// or gzip size deflate cannot produce from the compressed bytes (1032:1).
// Only the .npz arrays feeding the model are decoded. An IDX file larger
// than the limit is read as a stream, decoding only up to the images asked
// for (the last 16 MiB of them kept for requests slightly out of order).
//
// Opening and reading a loader:
//
//	src, err := pipeline.DecodeDataSource(raw, configDir) // a data.Config
//	loader, err := src.Open(ctx, inputs, &data.Annotations{Path: "/abs/labels.csv"})
//	s, err := loader.Item(ctx, 0) // s.Inputs["input"], s.Annotation, s.Metadata["path"]
//
// or, from Go, data.Config{Type: "npy", Path: "calib", BaseDir: dir}.Open(...)
// (or the function Open). A user adds a loader by calling Register from an
// init function; a worker rebuilds the same loader from the same config,
// which reaches it as its type name and JSON. Errors name the file, the
// sample index, the input or the config key concerned and wrap the
// sentinels of errors.go (pipeline's data source errors under shorter
// names, and pipeline.ErrIndexOutOfRange).
//
// The package reads files only: it must never import onnxruntime_go
// (engine/), nats.go (cluster/) or the model package.
package data
