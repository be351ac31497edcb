package engine

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestScalarOutput: a model declaring an output of rank 0 is refused when
// its session is made (ErrBadModel, naming the output); one that does not
// declare the shape gets an error at run time, not a panic.
func TestScalarOutput(t *testing.T) {
	vi := func(name string, dims ...int64) *onnxpb.ValueInfoProto {
		sh := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			sh.Dim = append(sh.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: sh}}}}
	}
	p := &onnxpb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{Name: proto.String("g"),
			Node:   []*onnxpb.NodeProto{model.NewNode("ReduceSum", "sum", []string{"x"}, []string{"y"}, model.IntAttr("keepdims", 0))},
			Input:  []*onnxpb.ValueInfoProto{vi("x", 2)},
			Output: []*onnxpb.ValueInfoProto{vi("y")}}}
	_, err := NewSession(p, 1)
	if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), `output "y"`) || !strings.Contains(err.Error(), "rank 0") {
		t.Fatalf("err = %v, want ErrBadModel saying output y has rank 0", err)
	}
	// Declared without a shape, the output is found at run time: an
	// error, not a panic (onnxruntime_go leaves a nil tensor).
	p.Graph.Output[0].Type.GetTensorType().Shape = nil
	s, err := NewSession(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Run(t.Context(), map[string]pipeline.Tensor{"x": {Shape: []int64{2}, Data: []float32{1, 2}}}); err == nil {
		t.Fatal("a rank-0 output read back without an error")
	}
}
