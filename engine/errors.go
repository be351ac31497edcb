package engine

import "errors"

// Sentinel errors of the engine package; they are wrapped with the sample,
// stage, input or tensor they are about.
var (
	// ErrLibrary: the ONNX Runtime shared library could not be loaded.
	ErrLibrary = errors.New("cannot load ONNX Runtime")
	// ErrNoModel: Predict was called before SetModel.
	ErrNoModel = errors.New("no model set")
	// ErrBadModel: ONNX Runtime rejected a model, or the model cannot be run
	// (no inputs, unsupported input type).
	ErrBadModel = errors.New("bad model")
	// ErrBadInput: a sample's input is missing or has the wrong element type
	// or shape for the model.
	ErrBadInput = errors.New("bad input")
	// ErrUnknownTensor: a statistics layout names a tensor the model does not have.
	ErrUnknownTensor = errors.New("unknown tensor")
	// ErrBadStats: a statistic cannot be computed on a tensor (an axis beyond
	// its rank, a non-float tensor, a tensor without a batch axis in a batch).
	ErrBadStats = errors.New("bad statistic")
	// ErrClosed: the engine or session was used after Close.
	ErrClosed = errors.New("closed")
)
