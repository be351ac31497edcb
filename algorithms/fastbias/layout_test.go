package fastbias

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// TestLayoutFloat32Only: a mixed model's float16 Conv (IS-Net's float16
// export) gets no statistic; the engine would refuse one ("tensor ... is
// FLOAT16; statistics need a float32 tensor").
func TestLayoutFloat32Only(t *testing.T) {
	vi := func(name string, et int32) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(et)}}}}
	}
	conv := func(name, in, w, b string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String("Conv"), Name: proto.String(name), Input: []string{in, w, b}, Output: []string{name}}
	}
	half := func(name string) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(model.TypeFloat16), Dims: []int64{1}, RawData: []byte{0, 0x3c}}
	}
	p := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:  proto.String("mixed"),
			Input: []*onnxpb.ValueInfoProto{vi("x", model.TypeFloat)},
			Initializer: []*onnxpb.TensorProto{
				model.NewTensorFloat32("w", []int64{1, 1, 1, 1}, []float32{1}), model.NewTensorFloat32("b", []int64{1}, []float32{0}),
				half("w16"), half("b16"),
			},
			Node: []*onnxpb.NodeProto{
				conv("c32", "x", "w", "b"),
				{OpType: proto.String("Cast"), Name: proto.String("to16"), Input: []string{"c32"}, Output: []string{"h"},
					Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(10)}}},
				conv("c16", "h", "w16", "b16"),
			},
			Output: []*onnxpb.ValueInfoProto{vi("c16", model.TypeFloat16)},
		},
	}
	m := model.NewCompressedModel("mixed", false, &model.Stage{Name: "mixed", Proto: p})
	l := Layout(m)
	if _, ok := l["x"]; !ok || len(l) != 1 {
		t.Errorf("layout %v: want the float32 Conv's input x only", l)
	}
}
