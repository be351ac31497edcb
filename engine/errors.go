package engine

import "errors"

// Sentinel errors of the engine package; they are wrapped with the sample,
// stage, input or tensor they are about.
var (
	// ErrLibrary: the ONNX Runtime shared library could not be loaded.
	ErrLibrary = errors.New("cannot load ONNX Runtime")
	// ErrNoModel: Predict was called before SetModel.
	ErrNoModel = errors.New("no model set")
	// ErrBadModel: ONNX Runtime rejected a model (its type or shape check,
	// an unknown operator or opset, an invalid graph: see ortRejects), or
	// the model cannot be run (no graph, no outputs). The same model is
	// rejected the same way on every machine.
	ErrBadModel = errors.New("bad model")
	// ErrSession: ONNX Runtime could not create a session for a reason it
	// does not blame on the model (memory, threads, an unrecognized
	// message); another attempt, or another machine, may succeed.
	ErrSession = errors.New("cannot create an ONNX Runtime session")
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
