package fastbias

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
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

// TestLayoutForQuantizedLayers: with the layers a quantizer quantizes
// collected in its pass (LayoutFor), the correction is the same, byte for
// byte, as from a pass of its own over every layer (Layout); a layer whose
// means the pass lacks gets them from a pass of the correction's own.
func TestLayoutForQuantizedLayers(t *testing.T) {
	loader := randomSamples(16)
	eng, err := engine.New(loader, engine.Options{Requests: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	fp, err := model.Load(model.Config{Name: "net", Model: "../../testdata/models/convnet_op13.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	env := pipeline.AlgorithmEnv{Engine: eng, DataLen: loader.Len()}
	run := func(drop int) (*model.CompressedModel, pipeline.StatsLayout) {
		t.Helper()
		mm, err := minmax.New(minmax.Params{}, env)
		if err != nil {
			t.Fatal(err)
		}
		var asked pipeline.StatsLayout
		mm.AddLayerStats(func(fp *model.CompressedModel, layers []string) pipeline.StatsLayout {
			if drop >= 0 {
				layers = slices.Delete(slices.Clone(layers), drop, drop+1)
			}
			asked = LayoutFor(fp, layers)
			return asked
		})
		q, err := mm.Run(t.Context(), fp)
		if err != nil {
			t.Fatal(err)
		}
		fb, err := New(Params{}, env)
		if err != nil {
			t.Fatal(err)
		}
		out, err := fb.RunWithStats(t.Context(), q, mm.Stats())
		if err != nil {
			t.Fatal(err)
		}
		if n := len(fb.Report().(Report).Layers); n != 4 {
			t.Errorf("drop %d: corrected %d layers, want 4 (3 Conv + 1 Gemm with biases)", drop, n)
		}
		return out, asked
	}
	// The reference: a fresh quantization, corrected by a pass of its own.
	mm, err := minmax.New(minmax.Params{}, env)
	if err != nil {
		t.Fatal(err)
	}
	q, err := mm.Run(t.Context(), fp)
	if err != nil {
		t.Fatal(err)
	}
	own, err := New(Params{}, env)
	if err != nil {
		t.Fatal(err)
	}
	want, err := own.Run(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	all := Layout(q.Reference)
	for _, drop := range []int{-1, 0} {
		got, asked := run(drop)
		if drop < 0 && len(asked) != len(all) {
			t.Errorf("LayoutFor every quantized layer lists %d tensors, Layout %d: %v, %v", len(asked), len(all), asked, all)
		}
		if drop >= 0 && len(asked) != len(all)-1 {
			t.Errorf("LayoutFor without one layer lists %d tensors, want %d: %v", len(asked), len(all)-1, asked)
		}
		for i, s := range got.Models() {
			if !proto.Equal(s.Proto, want.Models()[i].Proto) {
				t.Errorf("drop %d: stage %s differs from the correction's own pass over every layer", drop, s.Name)
			}
		}
	}
}
