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

// TestScalarOutput: a model whose output has rank 0 gets one error naming
// the problem (ErrBadModel), not a panic.
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
	s, err := NewSession(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Run(t.Context(), map[string]pipeline.Tensor{"x": {Shape: []int64{2}, Data: []float32{1, 2}}})
	if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "rank 0") {
		t.Fatalf("err = %v, want ErrBadModel saying the output has rank 0", err)
	}
}
