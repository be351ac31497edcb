package engine

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestScalarInput: exported models take 0-d inputs (silero VAD's sample
// rate "sr"); they are fed as ONNX Runtime scalars and never batched.
func TestScalarInput(t *testing.T) {
	vi := func(name string, et int32, dims ...int64) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(et), Shape: shape}}}}
	}
	p := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:  proto.String("scalar"),
			Input: []*onnxpb.ValueInfoProto{vi("x", 1, 1, 3), vi("sr", 7)},
			Node: []*onnxpb.NodeProto{
				{OpType: proto.String("Cast"), Name: proto.String("cast"), Input: []string{"sr"}, Output: []string{"srf"},
					Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}}},
				{OpType: proto.String("Mul"), Name: proto.String("mul"), Input: []string{"x", "srf"}, Output: []string{"y"}},
			},
			Output: []*onnxpb.ValueInfoProto{vi("y", 1, 1, 3)},
		},
	}
	sess, err := NewSession(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Run(t.Context(), map[string]pipeline.Tensor{
		"x":  {Shape: []int64{1, 3}, Data: []float32{1, 2, 3}},
		"sr": {Shape: []int64{}, Data: []int64{16000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := out["y"].Data.([]float32)
	if want := []float32{16000, 32000, 48000}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("y = %v, want %v", got, want)
	}
	// Two values in a 0-d tensor are a bad input, not a crash.
	if _, err := sess.Run(t.Context(), map[string]pipeline.Tensor{
		"x":  {Shape: []int64{1, 3}, Data: []float32{1, 2, 3}},
		"sr": {Shape: []int64{}, Data: []int64{1, 2}},
	}); err == nil {
		t.Error("a 0-d input holding two values was accepted")
	}
}
