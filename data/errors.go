package data

import "errors"

// Sentinel errors of the data package; errors returned by loaders wrap them
// with the file, sample index, input or key concerned.
var (
	// ErrUnknownType: a data_source type no loader is registered for.
	ErrUnknownType = errors.New("unknown data source type")
	// ErrBadConfig: a data_source or annotations entry that cannot be used
	// (unknown key, bad option value).
	ErrBadConfig = errors.New("bad data source config")
	// ErrNoData: a folder without any file the loader can read.
	ErrNoData = errors.New("no data")
	// ErrBadFile: a file that is not in the format it claims (bad magic,
	// truncated, undecodable header or image).
	ErrBadFile = errors.New("bad file")
	// ErrMismatch: a sample whose shape, dtype or inputs do not fit the model.
	ErrMismatch = errors.New("sample does not fit the model")
	// ErrMissingAnnotation: a sample without a label in the annotations.
	ErrMissingAnnotation = errors.New("missing annotation")
)
