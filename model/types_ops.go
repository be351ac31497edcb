package model

import (
	"math"
	"slices"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// nodeCtx is one node being inferred in its scope.
type nodeCtx struct {
	n     *onnxpb.NodeProto
	s     *scope
	inf   *inferer
	depth int
}

// in is the type of input i; zero when absent or unknown.
func (c *nodeCtx) in(i int) TensorType {
	ins := c.n.GetInput()
	if i >= len(ins) || ins[i] == "" {
		return TensorType{}
	}
	tt, _ := c.s.lookup(ins[i])
	return tt
}

// has reports whether the optional input i is given.
func (c *nodeCtx) has(i int) bool {
	ins := c.n.GetInput()
	return i < len(ins) && ins[i] != ""
}

func (c *nodeCtx) constant(i int) (constVal, bool) {
	if !c.has(i) {
		return constVal{}, false
	}
	return c.s.constant(c.n.GetInput()[i])
}

// ints is an integer list from attribute name or, failing that, from the
// constant input i (i < 0: attribute only).
func (c *nodeCtx) ints(name string, i int) ([]int64, bool) {
	if a := getAttr(c.n, name); a != nil {
		if a.GetType() == onnxpb.AttributeProto_INT && a.I != nil {
			return []int64{a.GetI()}, true
		}
		return a.Ints, true
	}
	if i >= 0 {
		if v, ok := c.constant(i); ok && !v.float {
			return v.ints, true
		}
	}
	return nil, false
}

func (c *nodeCtx) infer() []TensorType {
	n := c.n
	if isDefaultDomain(n.GetDomain()) {
		if r, ok := typeRules[n.GetOpType()]; ok {
			return r(c)
		}
		return nil
	}
	if n.GetDomain() == "com.microsoft" {
		if r, ok := msTypeRules[n.GetOpType()]; ok {
			return r(c)
		}
	}
	return nil
}

// rule infers the types of a node's outputs; missing entries are unknown.
type rule func(c *nodeCtx) []TensorType

func single(t TensorType) []TensorType { return []TensorType{t} }

// same keeps input 0's type and shape.
func same(c *nodeCtx) []TensorType { return single(c.in(0)) }

// sameType keeps input 0's element type; the shape is unknown.
func sameType(c *nodeCtx) []TensorType { return single(TensorType{ElemType: c.in(0).ElemType}) }

// sameRank keeps input 0's element type and rank.
func sameRank(c *nodeCtx) []TensorType {
	x := c.in(0)
	return single(TensorType{x.ElemType, unknownDims(rankOf(x.Shape))})
}

func rankOf(s []int64) int {
	if s == nil {
		return -1
	}
	return len(s)
}

func boolOf(c *nodeCtx) []TensorType { return single(TensorType{typeBool, c.in(0).Shape}) }

// elementwise broadcasts all inputs, with input 0's element type (or elem
// when not 0).
func elementwise(elem int32) rule {
	return func(c *nodeCtx) []TensorType {
		e := elem
		if e == 0 {
			e = c.in(0).ElemType
		}
		var shapes [][]int64
		for i := range c.n.GetInput() {
			shapes = append(shapes, c.in(i).Shape)
		}
		return single(TensorType{e, broadcast(shapes...)})
	}
}

// fixed gives every output the element types elems, with unknown shapes.
func fixed(elems ...int32) rule {
	return func(*nodeCtx) []TensorType {
		out := make([]TensorType, len(elems))
		for i, e := range elems {
			out[i] = TensorType{ElemType: e}
		}
		return out
	}
}

// typeOf gives output 0 the element type of input i and input 0's shape.
func typeOf(i int) rule {
	return func(c *nodeCtx) []TensorType { return single(TensorType{c.in(i).ElemType, c.in(0).Shape}) }
}

// allLike gives every output input 0's element type, shapes unknown.
func allLike(c *nodeCtx) []TensorType {
	out := make([]TensorType, len(c.n.GetOutput()))
	for i := range out {
		out[i] = TensorType{ElemType: c.in(0).ElemType}
	}
	return out
}

// dtypeOr is the `dtype` attribute, else def.
func dtypeOr(c *nodeCtx, def int32) int32 {
	return int32(attrInt(c.n, "dtype", int64(def)))
}

var typeRules map[string]rule

func init() {
	typeRules = map[string]rule{
		"Constant": func(c *nodeCtx) []TensorType { tt, _ := constantType(c.n); return single(tt) },
		"Cast": func(c *nodeCtx) []TensorType {
			return single(TensorType{int32(attrInt(c.n, "to", 0)), c.in(0).Shape})
		},
		"CastLike": func(c *nodeCtx) []TensorType { return single(TensorType{c.in(1).ElemType, c.in(0).Shape}) },
		"Shape":    shapeRule,
		"Size":     fixedShape(TypeInt64, []int64{}),
		"Dropout": func(c *nodeCtx) []TensorType {
			mask := typeBool
			if c.inf.opset < 10 {
				mask = c.in(0).ElemType
			}
			return []TensorType{c.in(0), {mask, c.in(0).Shape}}
		},
		"Where": func(c *nodeCtx) []TensorType {
			return single(TensorType{c.in(1).ElemType, broadcast(c.in(0).Shape, c.in(1).Shape, c.in(2).Shape)})
		},
		"Range": func(c *nodeCtx) []TensorType { return single(TensorType{c.in(0).ElemType, []int64{-1}}) },
		"ConstantOfShape": func(c *nodeCtx) []TensorType {
			e := TypeFloat
			if a := getAttr(c.n, "value"); a != nil && a.T != nil {
				e = a.T.GetDataType()
			}
			if v, ok := c.constant(0); ok && !v.float && len(v.shape) == 1 {
				if slices.ContainsFunc(v.ints, func(d int64) bool { return d < 0 }) {
					return single(TensorType{ElemType: e})
				}
				return single(TensorType{e, append([]int64{}, v.ints...)})
			}
			if s := c.in(0).Shape; len(s) == 1 && s[0] >= 0 && s[0] <= maxConstLen {
				return single(TensorType{e, unknownDims(int(s[0]))})
			}
			return single(TensorType{ElemType: e})
		},
		"NonZero": func(c *nodeCtx) []TensorType {
			var s []int64
			if r := rankOf(c.in(0).Shape); r >= 0 {
				s = []int64{int64(r), -1}
			}
			return single(TensorType{TypeInt64, s})
		},
		"ArgMax": argRule,
		"ArgMin": argRule,
		"TopK": func(c *nodeCtx) []TensorType {
			x := c.in(0)
			s := slices.Clone(x.Shape)
			if s != nil {
				k := int64(-1)
				if c.inf.opset < 10 {
					k = attrInt(c.n, "k", -1)
				} else if v, ok := c.constant(1); ok && !v.float && len(v.ints) == 1 {
					k = v.ints[0]
				}
				ax, ok := normAxis(attrInt(c.n, "axis", -1), len(s))
				if !ok {
					s = nil
				} else if k >= 0 {
					s[ax] = k
				} else {
					s[ax] = -1
				}
			}
			return []TensorType{{x.ElemType, s}, {TypeInt64, s}}
		},
		"NonMaxSuppression": fixedShape(TypeInt64, []int64{-1, 3}),
		"Unique": func(c *nodeCtx) []TensorType {
			s := []int64{-1}
			if getAttr(c.n, "axis") != nil {
				s = unknownDims(rankOf(c.in(0).Shape))
			}
			return []TensorType{{c.in(0).ElemType, s}, {TypeInt64, []int64{-1}}, {TypeInt64, []int64{-1}}, {TypeInt64, []int64{-1}}}
		},

		// Data movement: the data input's type.
		"Gather": func(c *nodeCtx) []TensorType {
			d, q := c.in(0).Shape, c.in(1).Shape
			var s []int64
			if ax, ok := normAxis(attrInt(c.n, "axis", 0), len(d)); ok && d != nil && q != nil {
				s = append(append(append([]int64{}, d[:ax]...), q...), d[ax+1:]...)
			}
			return single(TensorType{c.in(0).ElemType, s})
		},
		"GatherElements": typeOfShapeOf(0, 1),
		"GatherND":       sameType,
		"Slice":          sliceRule,
		"Reshape":        reshapeRule,
		"Flatten":        flattenRule,
		"Squeeze":        squeezeRule,
		"Unsqueeze":      unsqueezeRule,
		"Transpose":      transposeRule,
		"Expand": func(c *nodeCtx) []TensorType {
			var s []int64
			if v, ok := c.constant(1); ok && !v.float && len(v.shape) == 1 {
				s = broadcast(c.in(0).Shape, v.ints)
			} else if sh := c.in(1).Shape; len(sh) == 1 && sh[0] >= 0 && sh[0] <= maxConstLen {
				s = broadcast(c.in(0).Shape, unknownDims(int(sh[0])))
			}
			return single(TensorType{c.in(0).ElemType, s})
		},
		"Tile": func(c *nodeCtx) []TensorType {
			x := c.in(0)
			s := unknownDims(rankOf(x.Shape))
			if v, ok := c.constant(1); ok && !v.float && len(v.ints) == len(s) {
				for i := range s {
					if x.Shape[i] >= 0 && v.ints[i] >= 0 {
						s[i] = prodDims([]int64{x.Shape[i], v.ints[i]})
					}
				}
			}
			return single(TensorType{x.ElemType, s})
		},
		"Pad":             sameRank,
		"Concat":          concatRule,
		"Split":           splitRule,
		"Identity":        same,
		"Resize":          resizeRule,
		"Upsample":        resizeRule,
		"DepthToSpace":    spaceRule(false),
		"SpaceToDepth":    spaceRule(true),
		"ReverseSequence": same,
		"Compress":        sameType,
		"ScatterND":       same,
		"ScatterElements": same,
		"Scatter":         same,
		"MaxUnpool":       sameRank,
		"CenterCropPad":   sameRank,
		"Col2Im":          sameType,
		"GridSample":      sameType,
		"RoiAlign":        sameType,
		"MaxRoiPool":      sameType,
		"AffineGrid":      sameType,

		// Linear algebra, convolution, pooling, normalization.
		"Conv":          convRule(0, 1, 0),
		"ConvInteger":   convRule(0, 1, typeInt32),
		"QLinearConv":   qlinearRule(convRule(0, 3, 0)),
		"ConvTranspose": convTransposeRule,
		"MatMul":        matmulRule(0, 1, 0),
		"MatMulInteger": matmulRule(0, 1, typeInt32),
		"QLinearMatMul": qlinearRule(matmulRule(0, 3, 0)),
		"Gemm":          gemmRule,
		"Einsum":        sameType,
		"Det":           sameType,
		"BatchNormalization": func(c *nodeCtx) []TensorType {
			out := []TensorType{c.in(0)}
			for range len(c.n.GetOutput()) - 1 {
				out = append(out, TensorType{c.in(3).ElemType, c.in(3).Shape})
			}
			return out
		},
		"InstanceNormalization":     same,
		"GroupNormalization":        same,
		"MeanVarianceNormalization": same,
		"LpNormalization":           same,
		"LRN":                       same,
		"LayerNormalization":        layerNormRule,
		"AveragePool":               poolRule,
		"LpPool":                    poolRule,
		"MaxPool":                   poolRule,
		"GlobalAveragePool":         globalPoolRule,
		"GlobalMaxPool":             globalPoolRule,
		"GlobalLpPool":              globalPoolRule,
		"Softmax":                   same,
		"LogSoftmax":                same,
		"Hardmax":                   same,
		"LSTM":                      allLike,
		"GRU":                       allLike,
		"RNN":                       allLike,
		"CumSum":                    same,
		"Trilu":                     same,
		"QuantizeLinear":            quantizeRule,
		"DequantizeLinear":          dequantizeRule,
		"DynamicQuantizeLinear":     dynQuantRule,
		"OneHot":                    oneHotRule,
		"RandomNormal":              randomRule,
		"RandomUniform":             randomRule,
		"RandomNormalLike":          likeRule,
		"RandomUniformLike":         likeRule,
		"Bernoulli":                 likeRule,
		"EyeLike":                   likeRule,
		"Multinomial":               func(c *nodeCtx) []TensorType { return single(TensorType{dtypeOr(c, typeInt32), nil}) },
		"If":                        ifRule,
		"Loop":                      loopRule,
		"Scan":                      scanRule,
		"IsNaN":                     boolOf,
		"IsInf":                     boolOf,
		"Not":                       boolOf,
		"PRelu":                     same,
		"Mod":                       elementwise(0),
		"BitShift":                  elementwise(0),
		"Sum":                       elementwise(0),
		"Mean":                      elementwise(0),
		"Max":                       elementwise(0),
		"Min":                       elementwise(0),
		"BitwiseAnd":                elementwise(0),
		"BitwiseOr":                 elementwise(0),
		"BitwiseXor":                elementwise(0),
		"BitwiseNot":                same,
		"Pow":                       elementwise(0),
		"ReduceSum":                 reduceRule,
		"ReduceMean":                reduceRule,
		"ReduceMax":                 reduceRule,
		"ReduceMin":                 reduceRule,
		"ReduceProd":                reduceRule,
		"ReduceL1":                  reduceRule,
		"ReduceL2":                  reduceRule,
		"ReduceLogSum":              reduceRule,
		"ReduceLogSumExp":           reduceRule,
		"ReduceSumSquare":           reduceRule,
		"NegativeLogLikelihoodLoss": sameType,
		"SoftmaxCrossEntropyLoss":   allLike,
		"DFT":                       sameType,
		"STFT":                      sameType,
		"ImageDecoder":              fixed(typeUint8),
		"StringNormalizer":          fixed(typeString),
		"RegexFullMatch":            fixed(typeBool),
		"StringConcat":              fixed(typeString),
		"TfIdfVectorizer":           fixed(TypeFloat),
		"MelWeightMatrix": func(c *nodeCtx) []TensorType {
			return single(TensorType{int32(attrInt(c.n, "output_datatype", int64(TypeFloat))), nil})
		},
		"HannWindow":         windowRule,
		"HammingWindow":      windowRule,
		"BlackmanWindow":     windowRule,
		"ThresholdedRelu":    same,
		"Shrink":             same,
		"Celu":               same,
		"Mish":               same,
		"Softsign":           same,
		"HardSwish":          same,
		"ImageScaler":        same,
		"Add":                elementwise(0),
		"Sub":                elementwise(0),
		"Mul":                elementwise(0),
		"Div":                elementwise(0),
		"Equal":              elementwise(typeBool),
		"Less":               elementwise(typeBool),
		"Greater":            elementwise(typeBool),
		"LessOrEqual":        elementwise(typeBool),
		"GreaterOrEqual":     elementwise(typeBool),
		"And":                elementwise(typeBool),
		"Or":                 elementwise(typeBool),
		"Xor":                elementwise(typeBool),
		"SequenceLength":     fixedShape(TypeInt64, []int64{}),
		"OptionalHasElement": fixedShape(typeBool, []int64{}),
	}
	for _, op := range []string{"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf",
		"HardSigmoid", "LeakyRelu", "Elu", "Selu", "Softplus", "Gelu", "Clip", "Floor", "Ceil",
		"Round", "Reciprocal", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh",
		"Asinh", "Acosh", "Atanh"} {
		typeRules[op] = same
	}
}

// msTypeRules are the com.microsoft operators whose output 0 keeps input
// 0's type.
var msTypeRules = map[string]rule{
	"FusedConv":              convRule(0, 1, 0),
	"Gelu":                   same,
	"FastGelu":               same,
	"BiasGelu":               same,
	"QuickGelu":              same,
	"SkipLayerNormalization": func(c *nodeCtx) []TensorType { return single(c.in(0)) },
	"LayerNormalization":     func(c *nodeCtx) []TensorType { return single(c.in(0)) },
	"FusedMatMul":            sameType,
}

func fixedShape(elem int32, shape []int64) rule {
	return func(*nodeCtx) []TensorType { return single(TensorType{elem, append([]int64{}, shape...)}) }
}

func typeOfShapeOf(ti, si int) rule {
	return func(c *nodeCtx) []TensorType { return single(TensorType{c.in(ti).ElemType, c.in(si).Shape}) }
}

func windowRule(c *nodeCtx) []TensorType {
	return single(TensorType{int32(attrInt(c.n, "output_datatype", int64(TypeFloat))), []int64{-1}})
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(a int64, rank int) (int, bool) {
	if a < 0 {
		a += int64(rank)
	}
	if a < 0 || a >= int64(rank) {
		return 0, false
	}
	return int(a), true
}

// broadcast is the multidirectional (numpy) broadcast of shapes; nil if one
// is unknown or they cannot broadcast.
func broadcast(shapes ...[]int64) []int64 {
	r := 0
	for _, s := range shapes {
		if s == nil {
			return nil
		}
		r = max(r, len(s))
	}
	out := make([]int64, r)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d == 1:
			case *o == 1:
				*o = d
			case d < 0:
				// unknown: either 1 or equal to *o; *o stays.
			case *o < 0:
				*o = d
			case *o != d:
				return nil
			}
		}
	}
	return out
}

// sliceRule gives Slice's output the dims its constant starts, ends, axes
// and steps (attributes before opset 10) select from input 0's known dims;
// the other dims of a sliced axis are unknown.
func sliceRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{x.ElemType, unknownDims(rankOf(x.Shape))}
	if x.Shape == nil {
		return single(out)
	}
	spec, ok := c.sliceSpec(len(x.Shape))
	if !ok {
		return single(out)
	}
	copy(out.Shape, x.Shape)
	for _, a := range spec {
		out.Shape[a.axis] = -1
		if d := x.Shape[a.axis]; d >= 0 {
			out.Shape[a.axis] = a.len(d)
		}
	}
	return single(out)
}

// sliceAxis is one axis of a Slice: start, end and step before clamping.
type sliceAxis struct {
	axis             int
	start, end, step int64
}

// bounds are the clamped start and end of the slice on an axis of d
// elements, as ONNX's Slice defines them (negative start and end count from
// the end, then both are clamped).
func (a sliceAxis) bounds(d int64) (start, end int64) {
	start, end = a.start, a.end
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	if a.step > 0 {
		return min(max(start, 0), d), min(max(end, 0), d)
	}
	return min(max(start, 0), d-1), min(max(end, -1), d-1)
}

// len is the number of elements the slice takes from an axis of d.
func (a sliceAxis) len(d int64) int64 {
	start, end := a.bounds(d)
	if a.step > 0 && end > start {
		return (end - start + a.step - 1) / a.step
	}
	if a.step < 0 && start > end {
		return (start - end - a.step - 1) / -a.step
	}
	return 0
}

// sliceSpec reads a Slice's constant starts, ends, axes and steps for an
// input of rank r; ok is false when one is not constant or is invalid.
func (c *nodeCtx) sliceSpec(r int) ([]sliceAxis, bool) {
	var starts, ends, axes, steps []int64
	var ok bool
	if c.inf.opset < 10 {
		if starts, ok = c.ints("starts", -1); !ok {
			return nil, false
		}
		if ends, ok = c.ints("ends", -1); !ok {
			return nil, false
		}
		axes, _ = c.ints("axes", -1)
	} else {
		if starts, ok = c.ints("", 1); !ok {
			return nil, false
		}
		if ends, ok = c.ints("", 2); !ok {
			return nil, false
		}
		if c.has(3) {
			if axes, ok = c.ints("", 3); !ok {
				return nil, false
			}
		}
		if c.has(4) {
			if steps, ok = c.ints("", 4); !ok {
				return nil, false
			}
		}
	}
	if len(starts) != len(ends) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, false
	}
	seen := map[int]bool{}
	spec := make([]sliceAxis, len(starts))
	for i := range starts {
		a := int64(i)
		if axes != nil {
			a = axes[i]
		}
		ax, ok := normAxis(a, r)
		if !ok || seen[ax] {
			return nil, false
		}
		seen[ax] = true
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return nil, false
		}
		spec[i] = sliceAxis{axis: ax, start: starts[i], end: ends[i], step: st}
	}
	return spec, true
}

func shapeRule(c *nodeCtx) []TensorType {
	x := c.in(0).Shape
	if x == nil {
		return single(TensorType{TypeInt64, []int64{-1}})
	}
	start, end := shapeRange(c, len(x))
	return single(TensorType{TypeInt64, []int64{int64(end - start)}})
}

// shapeRange is the [start, end) of Shape-15's attributes, clamped.
func shapeRange(c *nodeCtx, r int) (int, int) {
	clamp := func(v int64) int {
		if v < 0 {
			v += int64(r)
		}
		return int(min(max(v, 0), int64(r)))
	}
	start, end := clamp(attrInt(c.n, "start", 0)), clamp(attrInt(c.n, "end", int64(r)))
	if end < start {
		end = start
	}
	return start, end
}

func argRule(c *nodeCtx) []TensorType {
	x := c.in(0).Shape
	var s []int64
	if ax, ok := normAxis(attrInt(c.n, "axis", 0), len(x)); ok && x != nil {
		s = slices.Clone(x)
		if attrInt(c.n, "keepdims", 1) != 0 {
			s[ax] = 1
		} else {
			s = slices.Delete(s, ax, ax+1)
		}
	}
	return single(TensorType{TypeInt64, s})
}

func reshapeRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{ElemType: x.ElemType}
	target, ok := c.ints("shape", 1)
	if !ok {
		if s := c.in(1).Shape; len(s) == 1 && s[0] >= 0 && s[0] <= maxConstLen {
			out.Shape = unknownDims(int(s[0]))
		}
		return single(out)
	}
	allowZero := attrInt(c.n, "allowzero", 0) != 0
	s := make([]int64, len(target))
	infer := -1
	for i, d := range target {
		switch {
		case d == 0 && !allowZero:
			s[i] = -1
			if i < len(x.Shape) {
				s[i] = x.Shape[i]
			}
		case d == -1:
			if infer >= 0 {
				return single(out) // two -1: invalid
			}
			infer = i
			s[i] = -1
		case d < -1:
			return single(out)
		default:
			s[i] = d
		}
	}
	if infer >= 0 {
		total := prodDims(x.Shape)
		rest := int64(1)
		for i, d := range s {
			if i != infer {
				if d < 0 {
					rest = -1
					break
				}
				rest *= d
			}
		}
		if x.Shape != nil && total >= 0 && rest > 0 && total%rest == 0 {
			s[infer] = total / rest
		}
	}
	out.Shape = s
	return single(out)
}

func flattenRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{ElemType: x.ElemType}
	if x.Shape == nil {
		return single(out)
	}
	ax := attrInt(c.n, "axis", 1)
	if ax < 0 {
		ax += int64(len(x.Shape))
	}
	if ax < 0 || ax > int64(len(x.Shape)) {
		return single(out)
	}
	out.Shape = []int64{prodDims(x.Shape[:ax]), prodDims(x.Shape[ax:])}
	return single(out)
}

func squeezeRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{ElemType: x.ElemType}
	if x.Shape == nil {
		return single(out)
	}
	axes, ok := c.ints("axes", 1)
	if !ok && c.has(1) {
		return single(out) // axes not constant
	}
	drop := make([]bool, len(x.Shape))
	if !ok || len(axes) == 0 {
		for i, d := range x.Shape {
			if d < 0 {
				return single(out)
			}
			drop[i] = d == 1
		}
	}
	for _, a := range axes {
		ax, ok := normAxis(a, len(x.Shape))
		if !ok || x.Shape[ax] > 1 || x.Shape[ax] == 0 {
			return single(out)
		}
		drop[ax] = true
	}
	out.Shape = []int64{}
	for i, d := range x.Shape {
		if !drop[i] {
			out.Shape = append(out.Shape, d)
		}
	}
	return single(out)
}

func unsqueezeRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{ElemType: x.ElemType}
	axes, ok := c.ints("axes", 1)
	if x.Shape == nil || !ok {
		return single(out)
	}
	r := len(x.Shape) + len(axes)
	ones := make([]bool, r)
	for _, a := range axes {
		ax, ok := normAxis(a, r)
		if !ok || ones[ax] {
			return single(out)
		}
		ones[ax] = true
	}
	out.Shape = make([]int64, 0, r)
	j := 0
	for i := range r {
		if ones[i] {
			out.Shape = append(out.Shape, 1)
		} else {
			out.Shape = append(out.Shape, x.Shape[j])
			j++
		}
	}
	return single(out)
}

func transposeRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{ElemType: x.ElemType}
	if x.Shape == nil {
		return single(out)
	}
	r := len(x.Shape)
	perm, ok := c.ints("perm", -1)
	if !ok {
		for i := range r {
			perm = append(perm, int64(r-1-i))
		}
	}
	if len(perm) != r {
		return single(out)
	}
	seen := make([]bool, r)
	s := make([]int64, r)
	for i, p := range perm {
		if p < 0 || p >= int64(r) || seen[p] {
			return single(out)
		}
		seen[p] = true
		s[i] = x.Shape[p]
	}
	out.Shape = s
	return single(out)
}

func concatRule(c *nodeCtx) []TensorType {
	out := TensorType{ElemType: c.in(0).ElemType}
	if len(c.n.GetInput()) == 0 {
		return single(out)
	}
	first := c.in(0).Shape
	ax, ok := normAxis(attrInt(c.n, "axis", 0), len(first))
	if first == nil || !ok {
		return single(out)
	}
	s := unknownDims(len(first))
	s[ax] = 0
	for i := range c.n.GetInput() {
		in := c.in(i).Shape
		if in == nil || len(in) != len(first) {
			return single(out)
		}
		for j, d := range in {
			switch {
			case j == ax:
				if d < 0 || s[ax] < 0 {
					s[ax] = -1
				} else {
					s[ax] += d
				}
			case d < 0:
			case s[j] < 0:
				s[j] = d
			case s[j] != d:
				return single(out)
			}
		}
	}
	out.Shape = s
	return single(out)
}

func splitRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	nout := len(c.n.GetOutput())
	out := make([]TensorType, nout)
	for i := range out {
		out[i].ElemType = x.ElemType
	}
	ax, ok := normAxis(attrInt(c.n, "axis", 0), len(x.Shape))
	if x.Shape == nil || !ok {
		return out
	}
	sizes, ok := c.ints("split", 1)
	if !ok || len(sizes) == 0 {
		sizes = nil
		if d := x.Shape[ax]; d >= 0 && nout > 0 && d%int64(nout) == 0 {
			for range nout {
				sizes = append(sizes, d/int64(nout))
			}
		}
	}
	for i := range out {
		out[i].Shape = slices.Clone(x.Shape)
		out[i].Shape[ax] = -1
		if len(sizes) == nout && sizes[i] >= 0 {
			out[i].Shape[ax] = sizes[i]
		}
	}
	return out
}

func resizeRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{x.ElemType, unknownDims(rankOf(x.Shape))}
	if x.Shape == nil || getAttr(c.n, "axes") != nil || attrString(c.n, "coordinate_transformation_mode", "") == "tf_crop_and_resize" {
		return single(out)
	}
	var scales []float64
	switch {
	case c.n.GetOpType() == "Upsample" && getAttr(c.n, "scales") != nil:
		for _, f := range getAttr(c.n, "scales").Floats {
			scales = append(scales, float64(f))
		}
	case c.n.GetOpType() == "Upsample" || c.inf.opset < 11:
		if v, ok := c.constant(1); ok && v.float {
			scales = v.floats
		}
	default:
		if v, ok := c.constant(3); ok && !v.float && len(v.ints) == len(x.Shape) {
			for i, d := range v.ints {
				if d >= 0 {
					out.Shape[i] = d
				}
			}
			return single(out)
		}
		if v, ok := c.constant(2); ok && v.float {
			scales = v.floats
		}
	}
	if len(scales) != len(x.Shape) {
		return single(out)
	}
	for i, d := range x.Shape {
		v := float64(d) * scales[i]
		if d < 0 || scales[i] <= 0 || v > math.MaxInt32 {
			continue
		}
		// floor(d*scale); a product within rounding of an integer could
		// go either way in float32: leave it unknown.
		if f := math.Floor(v); v == f || (v-f > 1e-4 && math.Ceil(v)-v > 1e-4) {
			out.Shape[i] = int64(f)
		}
	}
	return single(out)
}

// spaceRule is DepthToSpace (toDepth false) or SpaceToDepth.
func spaceRule(toDepth bool) rule {
	return func(c *nodeCtx) []TensorType {
		x := c.in(0)
		out := TensorType{ElemType: x.ElemType}
		b := attrInt(c.n, "blocksize", 0)
		if len(x.Shape) != 4 || b <= 0 || b > 1<<16 {
			return single(out)
		}
		s := slices.Clone(x.Shape)
		mul := func(d int64) int64 {
			if d < 0 {
				return -1
			}
			return d * b
		}
		div := func(d, by int64) int64 {
			if d < 0 || d%by != 0 {
				return -1
			}
			return d / by
		}
		if toDepth {
			s[1], s[2], s[3] = mul(mul(s[1])), div(s[2], b), div(s[3], b)
		} else {
			s[1], s[2], s[3] = div(s[1], b*b), mul(s[2]), mul(s[3])
		}
		out.Shape = s
		return single(out)
	}
}

// windowDims are the output spatial dims of a convolution or pooling.
func windowDims(c *nodeCtx, in, kernel []int64, ceil bool) []int64 {
	n := len(in)
	strides, ok := c.ints("strides", -1)
	if !ok {
		strides = nil
	}
	dil, ok := c.ints("dilations", -1)
	if !ok {
		dil = nil
	}
	pads, ok := c.ints("pads", -1)
	if !ok {
		pads = nil
	}
	autoPad := attrString(c.n, "auto_pad", "NOTSET")
	out := unknownDims(n)
	if (strides != nil && len(strides) != n) || (dil != nil && len(dil) != n) || (pads != nil && len(pads) != 2*n) || len(kernel) != n {
		return out
	}
	for i := range n {
		s, d := int64(1), int64(1)
		if strides != nil {
			s = strides[i]
		}
		if dil != nil {
			d = dil[i]
		}
		k, x := kernel[i], in[i]
		if s <= 0 || d <= 0 || k <= 0 || x < 0 || k > 1<<20 || d > 1<<20 || x > 1<<40 {
			continue
		}
		ek := (k-1)*d + 1
		switch autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			out[i] = (x + s - 1) / s
		case "VALID":
			if x >= ek {
				out[i] = (x-ek)/s + 1
			}
		case "NOTSET", "":
			pb, pe := int64(0), int64(0)
			if pads != nil {
				pb, pe = pads[i], pads[n+i]
			}
			if pb < 0 || pe < 0 || pb > 1<<40 || pe > 1<<40 {
				continue
			}
			num := x + pb + pe - ek
			if num < 0 {
				continue
			}
			fl, cl := num/s+1, (num+s-1)/s+1
			if !ceil || fl == cl {
				out[i] = fl
			}
		}
	}
	return out
}

// convRule infers a convolution with data input xi and weight input wi;
// elem 0 keeps the data input's element type.
func convRule(xi, wi int, elem int32) rule {
	return func(c *nodeCtx) []TensorType {
		x, w := c.in(xi), c.in(wi)
		out := TensorType{ElemType: elem}
		if elem == 0 {
			out.ElemType = x.ElemType
		}
		if len(x.Shape) < 3 {
			return single(out)
		}
		sp := len(x.Shape) - 2
		kernel, ok := c.ints("kernel_shape", -1)
		if !ok {
			kernel = nil
			if len(w.Shape) == sp+2 {
				kernel = w.Shape[2:]
			}
		}
		m := int64(-1)
		if len(w.Shape) == sp+2 {
			m = w.Shape[0]
		}
		out.Shape = append([]int64{x.Shape[0], m}, windowDims(c, x.Shape[2:], kernel, false)...)
		return single(out)
	}
}

// convTransposeRule is ConvTranspose's output shape as ONNX defines it:
// W.shape[1]·group channels and, per spatial axis, output_shape if given,
// else in·stride with auto_pad SAME_*, else stride·(in−1) + output_padding
// + (k−1)·dilation + 1 − pad_begin − pad_end.
func convTransposeRule(c *nodeCtx) []TensorType {
	x, w := c.in(0), c.in(1)
	out := TensorType{x.ElemType, unknownDims(rankOf(x.Shape))}
	if len(out.Shape) == 0 {
		return single(out)
	}
	out.Shape[0] = x.Shape[0]
	sp := len(x.Shape) - 2
	if sp < 1 {
		return single(out)
	}
	if g := attrInt(c.n, "group", 1); len(w.Shape) == sp+2 && w.Shape[1] >= 0 && g >= 1 {
		out.Shape[1] = prodDims([]int64{w.Shape[1], g})
	}
	if shape, ok := c.ints("output_shape", -1); ok {
		if len(shape) == sp {
			for i, d := range shape {
				out.Shape[2+i] = max(d, -1)
			}
		}
		return single(out)
	}
	per := func(name string, n int, def int64) ([]int64, bool) {
		v, ok := c.ints(name, -1)
		if !ok {
			v = make([]int64, n)
			for i := range v {
				v[i] = def
			}
		}
		return v, len(v) == n
	}
	kernel, ok := c.ints("kernel_shape", -1)
	if !ok && len(w.Shape) == sp+2 {
		kernel, ok = w.Shape[2:], true
	}
	strides, ok1 := per("strides", sp, 1)
	dil, ok2 := per("dilations", sp, 1)
	opad, ok3 := per("output_padding", sp, 0)
	pads, ok4 := per("pads", 2*sp, 0)
	if !ok || len(kernel) != sp || !ok1 || !ok2 || !ok3 || !ok4 {
		return single(out)
	}
	autoPad := attrString(c.n, "auto_pad", "NOTSET")
	for i := range sp {
		in := x.Shape[2+i]
		if in < 0 || in > math.MaxInt32 || kernel[i] < 1 || kernel[i] > math.MaxInt32 || strides[i] < 1 || strides[i] > math.MaxInt32 ||
			dil[i] < 1 || dil[i] > math.MaxInt32 || max(opad[i], pads[i], pads[sp+i]) > math.MaxInt32 {
			continue
		}
		var d int64
		switch autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			d = in * strides[i]
		case "VALID":
			d = strides[i]*(in-1) + opad[i] + (kernel[i]-1)*dil[i] + 1
		default:
			d = strides[i]*(in-1) + opad[i] + (kernel[i]-1)*dil[i] + 1 - pads[i] - pads[sp+i]
		}
		if d >= 0 {
			out.Shape[2+i] = d
		}
	}
	return single(out)
}

func poolRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{ElemType: x.ElemType}
	if len(x.Shape) >= 3 {
		kernel, ok := c.ints("kernel_shape", -1)
		if !ok {
			kernel = nil
		}
		ceil := attrInt(c.n, "ceil_mode", 0) != 0
		out.Shape = append([]int64{x.Shape[0], x.Shape[1]}, windowDims(c, x.Shape[2:], kernel, ceil)...)
	}
	return []TensorType{out, {TypeInt64, slices.Clone(out.Shape)}}
}

func globalPoolRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{ElemType: x.ElemType}
	if len(x.Shape) >= 2 {
		out.Shape = []int64{x.Shape[0], x.Shape[1]}
		for range len(x.Shape) - 2 {
			out.Shape = append(out.Shape, 1)
		}
	}
	return single(out)
}

func matmulRule(ai, bi int, elem int32) rule {
	return func(c *nodeCtx) []TensorType {
		a, b := c.in(ai), c.in(bi)
		out := TensorType{ElemType: elem}
		if elem == 0 {
			out.ElemType = a.ElemType
		}
		if len(a.Shape) == 0 || len(b.Shape) == 0 {
			return single(out)
		}
		aa, bb := a.Shape, b.Shape
		if len(aa) == 1 {
			aa = []int64{1, aa[0]}
		}
		if len(bb) == 1 {
			bb = []int64{bb[0], 1}
		}
		if k1, k2 := aa[len(aa)-1], bb[len(bb)-2]; k1 >= 0 && k2 >= 0 && k1 != k2 {
			return single(out)
		}
		batch := broadcast(aa[:len(aa)-2], bb[:len(bb)-2])
		if batch == nil {
			return single(out)
		}
		s := append([]int64{}, batch...)
		if len(a.Shape) > 1 {
			s = append(s, aa[len(aa)-2])
		}
		if len(b.Shape) > 1 {
			s = append(s, bb[len(bb)-1])
		}
		out.Shape = s
		return single(out)
	}
}

func gemmRule(c *nodeCtx) []TensorType {
	a, b := c.in(0), c.in(1)
	out := TensorType{ElemType: a.ElemType}
	if len(a.Shape) != 2 || len(b.Shape) != 2 {
		return single(out)
	}
	m, n := a.Shape[0], b.Shape[1]
	if attrInt(c.n, "transA", 0) != 0 {
		m = a.Shape[1]
	}
	if attrInt(c.n, "transB", 0) != 0 {
		n = b.Shape[0]
	}
	out.Shape = []int64{m, n}
	return single(out)
}

// qlinearRule gives the output of a QLinear* operator the type of its
// y_zero_point (input 7).
func qlinearRule(r rule) rule {
	return func(c *nodeCtx) []TensorType {
		out := r(c)
		out[0].ElemType = c.in(7).ElemType
		return out
	}
}

func layerNormRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	stash := TensorType{ElemType: int32(attrInt(c.n, "stash_type", int64(TypeFloat)))}
	if ax, ok := normAxis(attrInt(c.n, "axis", -1), len(x.Shape)); ok && x.Shape != nil {
		stash.Shape = slices.Clone(x.Shape)
		for i := ax; i < len(stash.Shape); i++ {
			stash.Shape[i] = 1
		}
	}
	return []TensorType{x, stash, stash}
}

func reduceRule(c *nodeCtx) []TensorType {
	x := c.in(0)
	out := TensorType{ElemType: x.ElemType}
	if x.Shape == nil {
		return single(out)
	}
	axes, ok := c.ints("axes", 1)
	if !ok && c.has(1) {
		return single(out)
	}
	keep := attrInt(c.n, "keepdims", 1) != 0
	red := make([]bool, len(x.Shape))
	if len(axes) == 0 {
		if attrInt(c.n, "noop_with_empty_axes", 0) != 0 {
			return single(x)
		}
		for i := range red {
			red[i] = true
		}
	}
	for _, a := range axes {
		ax, ok := normAxis(a, len(x.Shape))
		if !ok {
			return single(out)
		}
		red[ax] = true
	}
	out.Shape = []int64{}
	for i, d := range x.Shape {
		switch {
		case !red[i]:
			out.Shape = append(out.Shape, d)
		case keep:
			out.Shape = append(out.Shape, 1)
		}
	}
	return single(out)
}

func quantizeRule(c *nodeCtx) []TensorType {
	e := typeUint8
	switch {
	case c.has(2):
		e = c.in(2).ElemType
	case getAttr(c.n, "output_dtype") != nil && attrInt(c.n, "output_dtype", 0) != 0:
		e = int32(attrInt(c.n, "output_dtype", 0))
	}
	return single(TensorType{e, c.in(0).Shape})
}

func dequantizeRule(c *nodeCtx) []TensorType {
	e := c.in(1).ElemType
	if e == 0 && c.inf.opset < 19 {
		e = TypeFloat
	}
	return single(TensorType{e, c.in(0).Shape})
}

func dynQuantRule(c *nodeCtx) []TensorType {
	return []TensorType{{typeUint8, c.in(0).Shape}, {TypeFloat, []int64{}}, {typeUint8, []int64{}}}
}

func oneHotRule(c *nodeCtx) []TensorType {
	idx := c.in(0).Shape
	out := TensorType{ElemType: c.in(2).ElemType}
	if idx != nil {
		r := len(idx) + 1
		if ax, ok := normAxis(attrInt(c.n, "axis", -1), r); ok {
			out.Shape = slices.Insert(slices.Clone(idx), ax, -1)
		}
	}
	return single(out)
}

func randomRule(c *nodeCtx) []TensorType {
	var s []int64
	if a := getAttr(c.n, "shape"); a != nil {
		s = append([]int64{}, a.Ints...)
	}
	return single(TensorType{dtypeOr(c, TypeFloat), s})
}

func likeRule(c *nodeCtx) []TensorType {
	return single(TensorType{dtypeOr(c, c.in(0).ElemType), c.in(0).Shape})
}

// fold computes the values of small integer tensors of shape arithmetic
// (Shape, Gather, Unsqueeze, Concat...), so that a Reshape fed by them gets
// a shape.
func (c *nodeCtx) fold() []*constVal {
	n := c.n
	if !isDefaultDomain(n.GetDomain()) {
		return nil
	}
	ints := func(i int) ([]int64, []int64, bool) {
		v, ok := c.constant(i)
		if !ok || v.float {
			return nil, nil, false
		}
		return v.ints, v.shape, true
	}
	vec := func(v []int64) []*constVal { return []*constVal{{shape: []int64{int64(len(v))}, ints: v}} }
	switch n.GetOpType() {
	case "Constant":
		_, cv := constantType(n)
		return []*constVal{cv}
	case "Shape":
		x := c.in(0).Shape
		if x == nil {
			return nil
		}
		start, end := shapeRange(c, len(x))
		v := slices.Clone(x[start:end])
		if slices.ContainsFunc(v, func(d int64) bool { return d < 0 }) {
			return nil
		}
		return vec(v)
	case "Size":
		if p := prodDims(c.in(0).Shape); p >= 0 && c.in(0).Shape != nil {
			return []*constVal{{shape: []int64{}, ints: []int64{p}}}
		}
	case "Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten":
		if op := n.GetOpType(); op == "Cast" {
			if to := int32(attrInt(n, "to", 0)); to != TypeInt64 && to != typeInt32 {
				return nil
			}
		}
		v, _, ok := ints(0)
		if !ok {
			return nil
		}
		// The shape is the rule's; graph() keeps the value only if it
		// matches.
		out := c.infer()
		if len(out) == 0 || out[0].Shape == nil || prodDims(out[0].Shape) != int64(len(v)) {
			return nil
		}
		return []*constVal{{shape: out[0].Shape, ints: v}}
	case "Gather":
		d, ds, ok1 := ints(0)
		q, qs, ok2 := ints(1)
		if !ok1 || !ok2 || len(ds) != 1 || len(qs) > 1 {
			return nil
		}
		var v []int64
		for _, i := range q {
			if i < 0 {
				i += int64(len(d))
			}
			if i < 0 || i >= int64(len(d)) {
				return nil
			}
			v = append(v, d[i])
		}
		return []*constVal{{shape: slices.Clone(qs), ints: v}}
	case "Slice":
		d, ds, ok := ints(0)
		if !ok || len(ds) != 1 {
			return nil
		}
		spec, ok := c.sliceSpec(1)
		if !ok {
			return nil
		}
		v := d
		if len(spec) == 1 {
			a := spec[0]
			start, _ := a.bounds(int64(len(d)))
			v = make([]int64, a.len(int64(len(d))))
			for i := range v {
				v[i] = d[start+int64(i)*a.step]
			}
		}
		return vec(slices.Clone(v))
	case "Concat":
		var v []int64
		for i := range n.GetInput() {
			x, s, ok := ints(i)
			if !ok || len(s) != 1 {
				return nil
			}
			v = append(v, x...)
		}
		if len(v) > maxConstLen {
			return nil
		}
		return vec(v)
	case "Add", "Sub", "Mul", "Div":
		a, as, ok1 := ints(0)
		b, bs, ok2 := ints(1)
		if !ok1 || !ok2 {
			return nil
		}
		s := broadcast(as, bs)
		if s == nil || !(len(a) == 1 || len(b) == 1 || equalShape(as, bs)) {
			return nil
		}
		m := max(len(a), len(b))
		if len(a) == 0 || len(b) == 0 || int64(m) != prodDims(s) {
			return nil
		}
		v := make([]int64, m)
		for i := range v {
			x, y := a[min(i, len(a)-1)], b[min(i, len(b)-1)]
			switch n.GetOpType() {
			case "Add":
				v[i] = x + y
			case "Sub":
				v[i] = x - y
			case "Div":
				if y == 0 || (x == math.MinInt64 && y == -1) {
					return nil
				}
				v[i] = x / y // integer Div truncates, as ONNX Runtime's does
			default:
				v[i] = x * y
			}
		}
		return []*constVal{{shape: s, ints: v}}
	}
	return nil
}
