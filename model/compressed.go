package model

import "github.com/fleetcal/fleetcal/model/onnxpb"

// Stage is one ONNX model of a CompressedModel: a whole model, or one stage
// of a cascade.
type Stage struct {
	// Name names the stage (the model name for a single model).
	Name string
	// Proto is the model with every initializer's data loaded in memory.
	Proto *onnxpb.ModelProto
	// Path is the file the stage was loaded from ("" if built in memory).
	Path string
	// ExternalData reports that the stage was loaded with external-data
	// weights, so Save writes its weights to a separate file too.
	ExternalData bool
}

// CompressedModel is a model being quantized: one ONNX model, or a cascade
// of named stages (POT's CompressedModel).
type CompressedModel struct {
	Name    string
	stages  []*Stage
	cascade bool
	// Reference is the float model a quantizer started from (nil for a
	// float model): algorithms that correct a quantized model against its
	// float original, such as FastBiasCorrection, read it.
	Reference *CompressedModel
}

// NewCompressedModel wraps stages; cascade says whether they form a cascade.
func NewCompressedModel(name string, cascade bool, stages ...*Stage) *CompressedModel {
	return &CompressedModel{Name: name, stages: stages, cascade: cascade}
}

// Models returns the stages in order.
func (m *CompressedModel) Models() []*Stage { return m.stages }

// IsCascade reports whether m is a cascade of several named stages.
func (m *CompressedModel) IsCascade() bool { return m.cascade }
