package data

import (
	"errors"
	"fmt"
)

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

// kindError is an error of one of the sentinel kinds above whose message
// is only its own text: errors.Is finds the kind without the kind's words
// cluttering a message that already names the file, sample and input.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// errorf formats an error (%w allowed) that also matches kind with errors.Is.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
