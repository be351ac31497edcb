package minmax

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// loadPrepared loads a fixture and prepares it as Run does.
func loadPrepared(t *testing.T, name string) *model.CompressedModel {
	t.Helper()
	m, err := model.Load(model.Config{Name: "m", Model: "../../testdata/models/" + name})
	if err != nil {
		t.Fatal(err)
	}
	prep, err := Prepare(m)
	if err != nil {
		t.Fatal(err)
	}
	return prep.Model
}

func planOf(t *testing.T, fp *model.CompressedModel, opt planOptions) plan {
	t.Helper()
	p := fp.Models()[0].Proto
	order, err := model.NewGraph(p).TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	return makePlan(p.GetGraph(), model.InferTypes(p), order, opt)
}

func TestPlanConvnet(t *testing.T) {
	// convnet_op13 (testdata/models/gen_models.py): conv_0 → bn_0 → relu_0 →
	// conv_1 → relu_1 → maxpool_0 → conv_2 → relu_2 → globalaveragepool_0 →
	// flatten_0 → gemm_0 → logits. BN folds into conv_0 (whose output takes
	// the name bn_0_out).
	fp := loadPrepared(t, "convnet_op13.onnx")
	pl := planOf(t, fp, planOptions{perChannelWeights: true})

	var names, shared []string
	for _, a := range pl.activations {
		names = append(names, a.name)
		if a.shares != "" {
			shared = append(shared, a.name+"<-"+a.shares)
		}
	}
	// Every input of a Conv, GlobalAveragePool and Gemm, and the pass-through
	// outputs feeding them, in topological order.
	want := []string{"input", "relu_0_out", "relu_1_out", "maxpool_0_out", "relu_2_out", "globalaveragepool_0_out", "flatten_0_out"}
	if !slices.Equal(names, want) {
		t.Errorf("activations = %v, want %v", names, want)
	}
	wantShared := []string{"maxpool_0_out<-relu_1_out", "flatten_0_out<-globalaveragepool_0_out"}
	if !slices.Equal(shared, wantShared) {
		t.Errorf("shared = %v, want %v", shared, wantShared)
	}
	if want := []string{"relu_0", "relu_1", "relu_2"}; !slices.Equal(pl.bypass, want) {
		t.Errorf("folded relus = %v, want %v", pl.bypass, want)
	}
	var layers []string
	for _, l := range pl.layers {
		g := "T"
		if l.perChannel {
			g = "C"
		}
		layers = append(layers, l.node.GetName()+":"+g+":"+l.bias)
	}
	// Conv weights per channel, Gemm per tensor (ORT's QGemm wants that).
	wantLayers := []string{"conv_0:C:conv_0.bias", "conv_1:C:conv_1.bias", "conv_2:C:conv_2.bias",
		"globalaveragepool_0:C:", "gemm_0:T:gemm_0.bias"}
	if !slices.Equal(layers, wantLayers) {
		t.Errorf("layers = %v, want %v", layers, wantLayers)
	}
}

func TestPlanIgnored(t *testing.T) {
	fp := loadPrepared(t, "convnet_op13.onnx")
	pl := planOf(t, fp, planOptions{ignoredScope: []string{"conv_1", "no_such_node"}, ignoredOperations: []string{"Gemm"}})
	for _, l := range pl.layers {
		if n := l.node.GetName(); n == "conv_1" || n == "gemm_0" {
			t.Errorf("ignored node %s was quantized", n)
		}
	}
	if !slices.Equal(pl.unmatchedScope, []string{"no_such_node"}) {
		t.Errorf("unmatched scope = %v, want [no_such_node]", pl.unmatchedScope)
	}
	// conv_1 is ignored, so relu_0_out feeds no quantized node and relu_0 stays.
	if slices.Contains(pl.bypass, "relu_0") {
		t.Errorf("relu_0 folded although its consumer conv_1 is ignored")
	}
}

func TestPlanTransformerKeepsElementwiseInFloat(t *testing.T) {
	fp := loadPrepared(t, "two_inputs.onnx")
	pl := planOf(t, fp, planOptions{transformer: true})
	for _, l := range pl.layers {
		if l.node.GetOpType() != "MatMul" && l.node.GetOpType() != "Gemm" {
			t.Errorf("transformer plan quantizes %s", l.node.GetOpType())
		}
	}
	full := planOf(t, fp, planOptions{})
	if len(full.layers) <= len(pl.layers) {
		t.Errorf("default plan has %d layers, transformer %d: Add should be quantized by default", len(full.layers), len(pl.layers))
	}
}

func TestSubset(t *testing.T) {
	if got := Subset(10, 3, false, 0); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("first 3 of 10 = %v", got)
	}
	if got := Subset(5, 300, false, 0); len(got) != 5 {
		t.Errorf("300 of 5 = %v, want all 5", got)
	}
	a, b := Subset(1000, 10, true, 7), Subset(1000, 10, true, 7)
	if !slices.Equal(a, b) || !slices.IsSorted(a) {
		t.Errorf("shuffled subsets with one seed differ or are unsorted: %v %v", a, b)
	}
	if c := Subset(1000, 10, true, 8); slices.Equal(a, c) {
		t.Errorf("seeds 7 and 8 chose the same subset %v", a)
	}
}

func TestParamsErrors(t *testing.T) {
	n0 := 0
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{Preset: "accuracy"}, `preset: unknown preset "accuracy"; valid: mixed, performance`},
		{Params{StatSubsetSize: &n0}, "stat_subset_size: 0"},
		{Params{ModelType: "cnn"}, `model_type: unknown model type "cnn"; valid: transformer`},
		{Params{Weights: &QuantConfig{Mode: "asymmetric"}}, "symmetric weights"},
		{Params{Activations: &QuantConfig{Granularity: "perlayer"}}, `unknown granularity "perlayer"`},
		{Params{Activations: &QuantConfig{Bits: 4}}, "activations.bits: 4"},
		{Params{Weights: &QuantConfig{LevelLow: ptr[int32](-200), LevelHigh: ptr[int32](127)}}, "weights: levels [-200, 127] must hold 0 and lie within [-128, 127]"},
		{Params{Weights: &QuantConfig{LevelLow: ptr[int32](-127)}}, "set both level_low and level_high"},
		{Params{Activations: &QuantConfig{LevelLow: ptr[int32](-1), LevelHigh: ptr[int32](255)}}, "within [0, 255]"},
		{Params{Ignored: Ignored{Operations: []IgnoredOpType{{"Gemm"}, {"Convv"}}}}, `ignored.operations[1]: unknown operator type "Convv" (ONNX operator types, case-sensitive, e.g. "Conv", "MatMul"); did you mean "Conv"?`},
		{Params{Ignored: Ignored{Operations: []IgnoredOpType{{"matmul"}}}}, `unknown operator type "matmul" (ONNX operator types, case-sensitive, e.g. "Conv", "MatMul"); did you mean "MatMul"?`},
		{Params{Ignored: Ignored{Operations: []IgnoredOpType{{"Xyzzy"}}}}, `unknown operator type "Xyzzy" (ONNX operator types, case-sensitive, e.g. "Conv", "MatMul")`},
		{Params{MinMACsPerElement: ptr(-1.0)}, "min_macs_per_element: -1, want a finite number, at least 0"},
		{Params{MinMACsPerElement: ptr(math.NaN())}, "min_macs_per_element: NaN"},
	} {
		_, err := tc.p.resolve()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("resolve(%+v): err = %v, want %q", tc.p, err, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestParamsLevels(t *testing.T) {
	r, err := (&Params{Weights: &QuantConfig{LevelLow: ptr[int32](-128), LevelHigh: ptr[int32](127)}}).resolve()
	if err != nil || r.weightLevels == nil || r.weightLevels[0] != -128 {
		t.Fatalf("levels [-128, 127]: %v, %v", r.weightLevels, err)
	}
}

// TestPlanConvOutputQuantized: a quantized Conv's output gets a QDQ pair
// even when what reads it stays in float (an exported Hardswish:
// Add/Clip/Div/Mul with constants), so that ONNX Runtime fuses the Conv
// into QLinearConv; a Conv read by a Relu only has the Relu's output
// quantized, and the Relu folds; a Conv read by an ignored node keeps its
// output in float.
func TestPlanConvOutputQuantized(t *testing.T) {
	f32 := func(name string, dims ...int64) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(model.TypeFloat), Shape: shape}}}}
	}
	node := func(op, name string, in ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: []string{name}}
	}
	w := make([]float32, 2*2*1*1)
	p := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:  proto.String("g"),
			Input: []*onnxpb.ValueInfoProto{f32("x", 1, 2, 4, 4)},
			Initializer: []*onnxpb.TensorProto{
				model.NewTensorFloat32("w1", []int64{2, 2, 1, 1}, w), model.NewTensorFloat32("w2", []int64{2, 2, 1, 1}, w),
				model.NewTensorFloat32("w3", []int64{2, 2, 1, 1}, w),
				model.NewTensorFloat32("three", nil, []float32{3}), model.NewTensorFloat32("six", nil, []float32{6}),
				model.NewTensorFloat32("zero", nil, []float32{0}),
			},
			Node: []*onnxpb.NodeProto{
				node("Conv", "conv1", "x", "w1"),
				node("Add", "hs_add", "conv1", "three"),
				node("Clip", "hs_clip", "hs_add", "zero", "six"),
				node("Div", "hs_div", "hs_clip", "six"),
				node("Mul", "hs_mul", "conv1", "hs_div"),
				node("Conv", "conv2", "hs_mul", "w2"),
				node("Relu", "relu2", "conv2"),
				node("Conv", "conv3", "relu2", "w3"),
				node("Sigmoid", "sig3", "conv3"),
				node("Sigmoid", "out", "sig3"),
			},
			Output: []*onnxpb.ValueInfoProto{f32("out", 1, 2, 4, 4)},
		},
	}
	order, err := model.NewGraph(p).TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ignored     []string
		acts, folds []string
	}{
		// x, hs_mul and relu2 are Conv inputs, conv1 and hs_div the inputs
		// of the Mul (QLinearMul); conv1, relu2 and conv3 are Conv outputs.
		{nil, []string{"x", "conv1", "hs_div", "hs_mul", "relu2", "conv3"}, []string{"relu2"}},
		// sig3 ignored: conv3's output stays float.
		{[]string{"sig3"}, []string{"x", "conv1", "hs_div", "hs_mul", "relu2"}, []string{"relu2"}},
	} {
		pl := makePlan(p.GetGraph(), model.InferTypes(p), order, planOptions{perChannelWeights: true, ignoredScope: tc.ignored})
		var names []string
		for _, a := range pl.activations {
			names = append(names, a.name)
		}
		if !slices.Equal(names, tc.acts) {
			t.Errorf("ignored %v: activations = %v, want %v", tc.ignored, names, tc.acts)
		}
		if !slices.Equal(pl.bypass, tc.folds) {
			t.Errorf("ignored %v: folded relus = %v, want %v", tc.ignored, pl.bypass, tc.folds)
		}
	}
}

// firstLayers names the layers a plan marks first (saturation_fix
// "first_layer" gives them 7-bit weights).
func firstLayers(pl plan) []string {
	var out []string
	for _, l := range pl.layers {
		if l.first {
			out = append(out, l.node.GetName())
		}
	}
	return out
}

func TestPlanFirstLayers(t *testing.T) {
	// Graphs: testdata/models/gen_models.py (see TestPlanConvnet for
	// convnet_op13; two_inputs is a, b → Add → MatMul(4x3) → y).
	for _, tc := range []struct {
		model   string
		ignored []string
		want    []string
	}{
		{"convnet_op13.onnx", nil, []string{"conv_0"}},
		// conv_0 left in float: conv_1, the first quantized weighted layer,
		// reads the image's features through it.
		{"convnet_op13.onnx", []string{"conv_0"}, []string{"conv_1"}},
		// The Add before it is quantized but has no weight.
		{"two_inputs.onnx", nil, []string{"matmul_0"}},
	} {
		t.Run(tc.model+strings.Join(tc.ignored, ","), func(t *testing.T) {
			pl := planOf(t, loadPrepared(t, tc.model), planOptions{perChannelWeights: true, ignoredScope: tc.ignored})
			if got := firstLayers(pl); !slices.Equal(got, tc.want) {
				t.Errorf("first layers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParamsSaturationFix(t *testing.T) {
	yes, no := true, false
	levels := &QuantConfig{LevelLow: ptr[int32](-127), LevelHigh: ptr[int32](127)}
	for _, tc := range []struct {
		name string
		p    Params
		want string // the resolved value, or an error substring after "error: "
	}{
		{"default", Params{}, DefaultSaturationFix},
		{"no", Params{SaturationFix: "no"}, "no"},
		{"first_layer", Params{SaturationFix: "first_layer"}, "first_layer"},
		{"all", Params{SaturationFix: "all"}, "all"},
		{"reduced_range true", Params{Weights: &QuantConfig{ReducedRange: &yes}}, "all"},
		{"reduced_range false", Params{Weights: &QuantConfig{ReducedRange: &no}}, "no"},
		{"both agree", Params{SaturationFix: "all", Weights: &QuantConfig{ReducedRange: &yes}}, "all"},
		{"levels", Params{Weights: levels}, "no"},
		{"levels and no", Params{SaturationFix: "no", Weights: levels}, "no"},
		{"bad value", Params{SaturationFix: "first_layers"},
			`error: saturation_fix: unknown value "first_layers"; valid: all, first_layer, no`},
		{"reduced_range true, no", Params{SaturationFix: "no", Weights: &QuantConfig{ReducedRange: &yes}},
			`error: weights.reduced_range: true contradicts saturation_fix "no"`},
		{"reduced_range false, first_layer", Params{SaturationFix: "first_layer", Weights: &QuantConfig{ReducedRange: &no}},
			`error: weights.reduced_range: false contradicts saturation_fix "first_layer"`},
		{"levels and all", Params{SaturationFix: "all", Weights: levels},
			`error: weights.level_low/level_high: custom weight levels apply to every layer and contradict saturation_fix "all"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.p.resolve()
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("resolve(%+v): err = %v, want %q", tc.p, err, want)
				}
				return
			}
			if err != nil || r.saturationFix != tc.want {
				t.Errorf("resolve(%+v) = %q, %v; want %q", tc.p, r.saturationFix, err, tc.want)
			}
		})
	}
}

// TestPlanCostRule: min_macs_per_element leaves in float the Conv layers
// with few multiply-adds per activation element crossing an INT8/float
// boundary (a depthwise convolution read by a float op, a strided 1×1
// convolution read by a graph output's Sigmoid) and the elementwise ops
// that would need a QuantizeLinear of their own; a layer inside an INT8
// chain (conv_b: uint8 in, INT8 readers) has no boundary; 0 turns the rule
// off.
func TestPlanCostRule(t *testing.T) {
	f32 := func(name string, dims ...int64) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(model.TypeFloat), Shape: shape}}}}
	}
	node := func(op, name string, in ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: []string{name}}
	}
	ints := func(name string, v ...int64) *onnxpb.AttributeProto {
		return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
	}
	pads := ints("pads", 1, 1, 1, 1)
	weight := func(name string, dims ...int64) *onnxpb.TensorProto {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		return model.NewTensorFloat32(name, dims, make([]float32, n))
	}
	convA := node("Conv", "conv_a", "x", "wa")
	convA.Attribute = []*onnxpb.AttributeProto{pads}
	dw := node("Conv", "dw", "relu_a", "wd")
	dw.Attribute = []*onnxpb.AttributeProto{pads, {Name: proto.String("group"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(32)}}
	convB := node("Conv", "conv_b", "relu_a", "wb")
	convB.Attribute = []*onnxpb.AttributeProto{pads}
	convS := node("Conv", "conv_s", "add1", "ws")
	convS.Attribute = []*onnxpb.AttributeProto{ints("strides", 2, 2)}
	p := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:  proto.String("g"),
			Input: []*onnxpb.ValueInfoProto{f32("x", 1, 16, 8, 8)},
			Initializer: []*onnxpb.TensorProto{
				weight("wa", 32, 16, 3, 3), weight("wd", 32, 1, 3, 3), weight("wb", 32, 32, 3, 3), weight("ws", 16, 32, 1, 1),
			},
			Node: []*onnxpb.NodeProto{
				convA,                                   // dw stays float, so relu_a is read in float: 32·16·9/(16+32) = 96
				node("Relu", "relu_a", "conv_a"),        //
				dw,                                      // depthwise, read by a Tanh a float Conv fuses: 32·9/(2·32) = 4.5 (3 with relu_a float)
				node("Tanh", "tanh", "dw"),              //
				convB,                                   // no boundary when relu_a is uint8; else 32·32·9/32 = 288
				node("Add", "add1", "relu_a", "conv_b"), // both inputs INT8: QLinearAdd
				node("Add", "add2", "tanh", "conv_b"),   // tanh is float: stays float
				convS,                                   // 1×1 stride 2, read by a graph output's Sigmoid: 16·32/16 = 32 (3.6 with add1 float)
				node("Sigmoid", "out1", "add2"),
				node("Sigmoid", "out2", "conv_s"),
			},
			Output: []*onnxpb.ValueInfoProto{f32("out1", 1, 32, 8, 8), f32("out2", 1, 16, 4, 4)},
		},
	}
	order, err := model.NewGraph(p).TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		minMACs      float64
		layers, slow []string
		shapes       int64 // the input's height and width for the layers' sizes (0: unknown)
	}{
		{0, []string{"conv_a", "dw", "conv_b", "add1", "add2", "conv_s"}, nil, 0},
		// With the layers' sizes (8×8 outputs): the region conv_a, conv_b,
		// add1 does 32·16·9·64 + 32·32·9·64 = 884,736 multiply-adds, below
		// MinRegionMACs (on an 8×8 map weights do not count).
		{48, nil, []string{"dw:4.5", "add2:0", "conv_s:32", "conv_a:0", "conv_b:0", "add1:0"}, 8},
		// At 64×64 conv_a does 18.9M multiply-adds, and its region (conv_a,
		// conv_b, add1) 56.6M.
		{48, []string{"conv_a", "conv_b", "add1"}, []string{"dw:4.5", "add2:0", "conv_s:32"}, 64},
		{48, []string{"conv_a", "conv_b", "add1"}, []string{"dw:4.5", "add2:0", "conv_s:32"}, 0},
		// Above conv_a's 96 and conv_b's 288: nothing reads uint8.
		{300, nil, []string{"conv_a:96", "dw:3", "conv_b:288", "add1:0", "add2:0", "conv_s:3.6"}, 0},
	} {
		opt := planOptions{perChannelWeights: true, minMACsPerElement: tc.minMACs}
		if tc.shapes > 0 {
			sized := proto.Clone(p).(*onnxpb.ModelProto)
			sized.Graph.Input = []*onnxpb.ValueInfoProto{f32("x", 1, 16, tc.shapes, tc.shapes)}
			opt.shapes = model.InferTypes(sized)
		}
		pl := makePlan(p.GetGraph(), model.InferTypes(p), order, opt)
		var layers, slow []string
		for _, l := range pl.layers {
			layers = append(layers, l.node.GetName())
		}
		for _, s := range pl.slow {
			slow = append(slow, fmt.Sprintf("%s:%g", s.Node, s.MACsPerElement))
			if s.Reason == "" {
				t.Errorf("min %g: %s left in float without a reason", tc.minMACs, s.Node)
			}
		}
		if !slices.Equal(layers, tc.layers) || !slices.Equal(slow, tc.slow) {
			t.Errorf("min_macs_per_element %g: layers %v, slow %v; want %v, %v", tc.minMACs, layers, slow, tc.layers, tc.slow)
		}
		if tc.shapes == 8 && (pl.slow[3].MACs != 294912 || !strings.Contains(pl.slow[3].Reason, "does 884736 multiply-adds in all")) {
			t.Errorf("conv_a: %+v, want 294912 multiply-adds and its region's 884736 in the reason", pl.slow[3])
		}
		if tc.minMACs == 48 && tc.shapes == 0 && !strings.HasPrefix(pl.slow[0].Reason, "depthwise convolution") {
			t.Errorf("dw's reason = %q, want it to say depthwise", pl.slow[0].Reason)
		}
	}
}

// TestPlanCostRuleWeights: on a 1×1 map (squeeze-excite after a
// GlobalAveragePool) a region's weights count WeightMACs each, on a larger
// map only its multiply-adds count.
func TestPlanCostRuleWeights(t *testing.T) {
	f32 := func(name string, dims ...int64) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(model.TypeFloat), Shape: shape}}}}
	}
	node := func(op, name string, in ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: []string{name}}
	}
	p := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("g"),
			Input:       []*onnxpb.ValueInfoProto{f32("x", 1, 256, 1, 1)},
			Initializer: []*onnxpb.TensorProto{model.NewTensorFloat32("w1", []int64{64, 256, 1, 1}, make([]float32, 64*256)), model.NewTensorFloat32("w2", []int64{256, 64, 1, 1}, make([]float32, 64*256))},
			Node: []*onnxpb.NodeProto{
				node("Conv", "fc1", "x", "w1"), // 256·64 multiply-adds per position over 256 input elements: 64
				node("Relu", "relu", "fc1"),
				node("Conv", "fc2", "relu", "w2"), // over 256 output elements (a Sigmoid graph output reads it): 64
				node("Sigmoid", "out", "fc2"),
			},
			Output: []*onnxpb.ValueInfoProto{f32("out", 1, 256, 1, 1)},
		},
	}
	order, err := model.NewGraph(p).TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		side   int64
		layers []string
	}{
		// 1×1: 2·16,384 multiply-adds + 64·32,768 weights = 2,129,920 ≥ MinRegionMACs.
		{1, []string{"fc1", "fc2"}},
		// 2×2: 4·32,768 = 131,072 multiply-adds, the weights not counted.
		{2, nil},
	} {
		sized := proto.Clone(p).(*onnxpb.ModelProto)
		sized.Graph.Input = []*onnxpb.ValueInfoProto{f32("x", 1, 256, tc.side, tc.side)}
		pl := makePlan(p.GetGraph(), model.InferTypes(p), order, planOptions{perChannelWeights: true, minMACsPerElement: 48, shapes: model.InferTypes(sized)})
		var layers []string
		for _, l := range pl.layers {
			layers = append(layers, l.node.GetName())
		}
		if !slices.Equal(layers, tc.layers) {
			t.Errorf("%d×%d map: layers %v, want %v (left in float: %+v)", tc.side, tc.side, layers, tc.layers, pl.slow)
		}
		if tc.side == 2 && (len(pl.slow) != 2 || !strings.Contains(pl.slow[0].Reason, "does 131072 multiply-adds in all")) {
			t.Errorf("2×2 map: left in float %+v, want fc1 and fc2 with the region's 131072 multiply-adds", pl.slow)
		}
	}
}
