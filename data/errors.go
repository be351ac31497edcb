package data

import (
	"errors"
	"fmt"

	"github.com/fleetcal/fleetcal/pipeline"
)

// Sentinel errors of the data package; errors returned by loaders wrap them
// with the file, sample index, input or key concerned. They are pipeline's
// data source errors under shorter names, so that code outside (a fleet's
// workers) matches them without importing this package.
var (
	// ErrUnknownType: a data_source type no loader is registered for.
	ErrUnknownType = pipeline.ErrUnknownDataSource
	// ErrBadConfig: a data_source or annotations entry that cannot be used
	// (unknown key, bad option value).
	ErrBadConfig = pipeline.ErrBadDataConfig
	// ErrNoData: a folder without any file the loader can read.
	ErrNoData = errors.New("no data")
	// ErrBadFile: a file that is not in the format it claims (bad magic,
	// truncated, undecodable header or image).
	ErrBadFile = pipeline.ErrBadDataFile
	// ErrMismatch: a sample whose shape, dtype or inputs do not fit the model.
	ErrMismatch = pipeline.ErrSampleMismatch
	// ErrMissingAnnotation: a sample without a label in the annotations.
	ErrMissingAnnotation = pipeline.ErrMissingAnnotation
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
