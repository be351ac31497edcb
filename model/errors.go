package model

import "errors"

// Sentinel errors of the model package. They are always wrapped with the file,
// node, tensor or domain concerned; test them with errors.Is.
var (
	// ErrNotONNX: the bytes are not an ONNX model (not protobuf, or protobuf
	// that is not a ModelProto).
	ErrNotONNX = errors.New("not an ONNX model")
	// ErrTruncated: the file ends in the middle of a protobuf field.
	ErrTruncated = errors.New("truncated ONNX file")
	// ErrNoGraph: a ModelProto without a graph.
	ErrNoGraph = errors.New("model has no graph")
	// ErrMissingWeights: an external-data (weights) file does not exist.
	ErrMissingWeights = errors.New("missing weights file")
	// ErrExternalData: external data that cannot be read as described
	// (bad location, offset or length, or a path escaping the model folder).
	ErrExternalData = errors.New("bad external data")
	// ErrConfig: an invalid model Config.
	ErrConfig = errors.New("invalid model config")
	// ErrCycle: a graph whose nodes cannot be ordered.
	ErrCycle = errors.New("graph has a cycle")
	// ErrTensor: a tensor whose type or data does not match what is asked.
	ErrTensor = errors.New("bad tensor")
	// ErrUnsupportedDomain: an opset domain other than ai.onnx and ai.onnx.ml.
	ErrUnsupportedDomain = errors.New("unsupported opset domain")
	// ErrCannotUpgrade: a node UpgradeOpset cannot rewrite.
	ErrCannotUpgrade = errors.New("cannot upgrade")
)
