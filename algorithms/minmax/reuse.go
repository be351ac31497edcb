package minmax

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/reduce"
)

// Hooks for algorithms that search over the quantization scope (such as
// AccuracyAwareQuantization): after one Run, the same statistics write
// models with more nodes left in float, without another calibration pass.
//
//	q, _ := a.Run(ctx, floatModel)
//	layers := a.QuantizedLayers()             // candidates, topological order
//	q2, _ := a.Requantize(ctx, layers[:1])    // layers[0] kept in float
//
// Leaving a node in float only removes activations from the plan (the
// ones it alone read), so every activation Requantize quantizes was
// measured by Run.

// ErrNotRun: Requantize or QuantizedLayers before a successful Run.
var ErrNotRun = errors.New("MinMaxQuantization has not run: call Run first")

// collected is what Run measured and decided, kept for Requantize. It holds
// the statistics of every quantized activation: two folds each with the
// default estimators, one value per calibration sample with the median
// and *_no_outliers aggregators.
type collected struct {
	fp     *model.CompressedModel
	orders [][]*onnxpb.NodeProto
	types  []*model.Types
	stats  *reduce.Set
	plans  []plan // Run's plans, without extra ignored nodes
	// shapes are the stages' tensor types with the graph inputs' shapes
	// of calibration sample 0 (nil: the declared shapes), for the cost rule.
	shapes []*model.Types
}

// planOptions are the plan options of the params, with extra node names
// added to the ignored scope.
func (a *Algorithm) planOptions(extra []string) planOptions { return a.planOptionsFor(extra, nil) }

// planOptionsFor is planOptions with the tensor shapes the cost rule reads.
func (a *Algorithm) planOptionsFor(extra []string, shapes *model.Types) planOptions {
	scope := a.params.Ignored.Scope
	if len(extra) > 0 {
		scope = append(slices.Clip(scope), extra...)
	}
	return planOptions{
		transformer:       a.r.transformer,
		ignoredScope:      scope,
		ignoredOperations: opTypes(a.params.Ignored.Operations),
		perChannelWeights: a.r.perChannelWeights,
		minMACsPerElement: a.r.minMACs,
		shapes:            shapes,
	}
}

// build writes the QDQ model of each stage's plan from the statistics Run
// collected, and resets the per-model parts of the report to describe it.
func (a *Algorithm) build(plans []plan) (*model.CompressedModel, error) {
	c := a.last
	a.report.Activations, a.report.Layers, a.report.FoldedRelus, a.report.FloatOps = nil, nil, 0, nil
	a.report.SevenBitLayers = []string{}
	a.report.SlowLayers = nil
	var out []*model.Stage
	for i, s := range c.fp.Models() {
		a.report.SlowLayers = append(a.report.SlowLayers, plans[i].slow...)
		p := proto.Clone(s.Proto).(*onnxpb.ModelProto)
		if err := a.apply(p, plans[i], c.stats); err != nil {
			return nil, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		cp := *s
		cp.Proto = p
		out = append(out, &cp)
	}
	qm := model.NewCompressedModel(c.fp.Name, c.fp.IsCascade(), out...)
	qm.Reference = c.fp
	return qm, nil
}

// Requantize writes the QDQ model of the last Run again with the nodes
// named in ignored added to the ignored scope, from the statistics that Run
// collected: no inference runs. The result equals what Run would return
// with those names in params.ignored.scope. Names matching no node are
// ignored. The report describes the last model written. Requantize must
// not run concurrently with Run or another Requantize.
func (a *Algorithm) Requantize(ctx context.Context, ignored []string) (*model.CompressedModel, error) {
	if a.last == nil {
		return nil, ErrNotRun
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	plans := make([]plan, len(a.last.orders))
	for i, s := range a.last.fp.Models() {
		plans[i] = makePlan(s.Proto.GetGraph(), a.last.types[i], a.last.orders[i], a.planOptionsFor(ignored, a.last.shapes[i]))
	}
	return a.build(plans)
}

// QuantizedLayers names the nodes the last Run quantized the inputs of
// (Conv, Gemm, MatMul, Add, pooling, ...), in topological order, stage
// after stage, without duplicates: the candidates for Requantize.
func (a *Algorithm) QuantizedLayers() ([]string, error) {
	if a.last == nil {
		return nil, ErrNotRun
	}
	return layerNames(a.last.plans), nil
}

// layerNames names the nodes whose inputs plans quantize, in order, without
// duplicates.
func layerNames(plans []plan) []string {
	var names []string
	seen := map[string]bool{}
	for _, p := range plans {
		for _, l := range p.layers {
			n := l.node.GetName()
			if n != "" && !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}

// Reference returns the prepared float model of the last Run (constants as
// initializers, BatchNormalization folded, opset 13), or nil before Run.
func (a *Algorithm) Reference() *model.CompressedModel {
	if a.last == nil {
		return nil
	}
	return a.last.fp
}

// sampleShapes infers p's tensor types with its graph inputs shaped like
// calibration sample 0 (dynamic height, width or sequence made concrete),
// so that the cost rule knows each layer's size; nil without a data loader.
// The same data give the same shapes, whatever the fleet.
func (a *Algorithm) sampleShapes(ctx context.Context, p *onnxpb.ModelProto) (*model.Types, error) {
	if a.env.Data == nil || a.env.Data.Len() == 0 {
		return nil, nil
	}
	s, err := a.env.Data.Item(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("cost rule: sample 0: %w", err)
	}
	c := proto.Clone(p).(*onnxpb.ModelProto)
	for _, in := range c.GetGraph().GetInput() {
		t, ok := s.Inputs[in.GetName()]
		tt := in.GetType().GetTensorType()
		if !ok || tt == nil {
			continue
		}
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range t.Shape {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		tt.Shape = shape
	}
	return model.InferTypes(c), nil
}
