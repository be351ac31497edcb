package model

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// MaxOpset is the newest ai.onnx opset UpgradeOpset targets.
const MaxOpset = 13

// upgradeSpec says how an ai.onnx operator crosses opset versions.
type upgradeSpec struct {
	// since is the oldest opset whose version of the operator the upgrader
	// handles; from there to MaxOpset the operator keeps its meaning (with
	// default attributes) except at the versions in changes.
	since int64
	// changes are the opsets at which the operator changed in a way that
	// needs rewriting; rewrite runs once if the upgrade crosses any of them.
	changes []int64
	rewrite func(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error)
}

// upgradeTable lists the operators UpgradeOpset knows. Plain entries are
// operators whose semantics (with default attributes) did not change between
// `since` and 13; their version bumps only widened the types they accept,
// added attributes whose defaults keep the old meaning, or allowed negative
// axes. An operator not listed here makes UpgradeOpset fail.
var upgradeTable = map[string]upgradeSpec{
	// Convolution, pooling, normalization.
	"Conv":                  {since: 1},
	"ConvTranspose":         {since: 1},
	"MaxPool":               {since: 1},
	"AveragePool":           {since: 1},
	"GlobalAveragePool":     {since: 1},
	"GlobalMaxPool":         {since: 1},
	"LpPool":                {since: 2},
	"LRN":                   {since: 1},
	"InstanceNormalization": {since: 6},
	"LpNormalization":       {since: 1},
	"BatchNormalization":    {since: 6, changes: []int64{7, 9}, rewrite: upgradeBatchNorm},
	"Dropout":               {since: 6, changes: []int64{7, 10, 12}, rewrite: upgradeDropout},
	// Linear algebra and element-wise arithmetic (multidirectional
	// broadcasting since 7; before, a `broadcast` attribute).
	"Gemm": {since: 7}, "MatMul": {since: 1}, "Add": {since: 7}, "Sub": {since: 7},
	"Mul": {since: 7}, "Div": {since: 7}, "Pow": {since: 7}, "Mod": {since: 10},
	"Sum": {since: 8}, "Mean": {since: 8}, "Max": {since: 8}, "Min": {since: 8},
	"PRelu": {since: 7}, "Einsum": {since: 12},
	// Activations and unary math (consumed_inputs removed at 6).
	"Relu": {since: 6}, "LeakyRelu": {since: 6}, "Elu": {since: 6}, "Selu": {since: 6},
	"Sigmoid": {since: 6}, "HardSigmoid": {since: 6}, "Tanh": {since: 6},
	"Softplus": {since: 1}, "Softsign": {since: 1}, "ThresholdedRelu": {since: 10},
	"Celu": {since: 12}, "Sqrt": {since: 6}, "Exp": {since: 6}, "Log": {since: 6},
	"Abs": {since: 6}, "Neg": {since: 6}, "Floor": {since: 6}, "Ceil": {since: 6},
	"Reciprocal": {since: 6}, "Erf": {since: 9}, "Sign": {since: 9}, "Round": {since: 11},
	"Sin": {since: 7}, "Cos": {since: 7}, "Tan": {since: 7}, "Asin": {since: 7},
	"Acos": {since: 7}, "Atan": {since: 7}, "Sinh": {since: 9}, "Cosh": {since: 9},
	"IsNaN": {since: 9}, "IsInf": {since: 10}, "Shrink": {since: 9},
	// Logic and comparison.
	"Equal": {since: 7}, "Less": {since: 7}, "Greater": {since: 7}, "Not": {since: 1},
	"And": {since: 7}, "Or": {since: 7}, "Xor": {since: 7}, "Where": {since: 9},
	// Shapes and data movement.
	"Concat": {since: 4}, "Reshape": {since: 5}, "Flatten": {since: 1},
	"Transpose": {since: 1}, "Identity": {since: 1}, "Shape": {since: 1},
	"Size": {since: 1}, "Gather": {since: 1}, "GatherElements": {since: 11},
	"GatherND": {since: 11}, "ScatterElements": {since: 11}, "ScatterND": {since: 11},
	"Cast": {since: 6}, "Tile": {since: 6}, "Expand": {since: 8},
	"ConstantOfShape": {since: 9}, "Constant": {since: 1}, "Range": {since: 11},
	"NonZero": {since: 9}, "OneHot": {since: 9}, "Compress": {since: 9},
	"DepthToSpace": {since: 1}, "SpaceToDepth": {since: 1}, "CumSum": {since: 11},
	"ArgMax": {since: 1}, "ArgMin": {since: 1},
	"ReduceMean": {since: 1}, "ReduceMax": {since: 1}, "ReduceMin": {since: 1},
	"ReduceProd": {since: 1}, "ReduceL1": {since: 1}, "ReduceL2": {since: 1},
	"ReduceLogSum": {since: 1}, "ReduceLogSumExp": {since: 1}, "ReduceSumSquare": {since: 1},
	"NonMaxSuppression": {since: 10}, "RoiAlign": {since: 10},
	"QuantizeLinear": {since: 10}, "DequantizeLinear": {since: 10},
	"If": {since: 1}, "Loop": {since: 1}, "LSTM": {since: 7}, "GRU": {since: 7}, "RNN": {since: 7},
	// Operators whose attributes became inputs.
	"Clip":      {since: 6, changes: []int64{11}, rewrite: upgradeClip},
	"Squeeze":   {since: 1, changes: []int64{13}, rewrite: upgradeAxesToInput},
	"Unsqueeze": {since: 1, changes: []int64{13}, rewrite: upgradeAxesToInput},
	"ReduceSum": {since: 1, changes: []int64{13}, rewrite: upgradeAxesToInput},
	"Split":     {since: 2, changes: []int64{13}, rewrite: upgradeSplit},
	"Pad":       {since: 2, changes: []int64{11}, rewrite: upgradePad},
	"Slice":     {since: 1, changes: []int64{10}, rewrite: upgradeSlice},
	"TopK":      {since: 1, changes: []int64{10}, rewrite: upgradeTopK},
	// Softmax-like operators: before 13 they flatten the input to 2-D at
	// `axis` (default 1); from 13 they work along `axis` (default -1).
	"Softmax":    {since: 1, changes: []int64{13}, rewrite: upgradeSoftmax},
	"LogSoftmax": {since: 1, changes: []int64{13}, rewrite: upgradeSoftmax},
	"Hardmax":    {since: 1, changes: []int64{13}, rewrite: upgradeSoftmax},
	// Resizing: Upsample is deprecated at 10; Resize-10 takes (X, scales).
	"Upsample": {since: 7, changes: []int64{10}, rewrite: upgradeResize},
	"Resize":   {since: 10, changes: []int64{11}, rewrite: upgradeResize},
}

// UpgradeOpset rewrites p from its ai.onnx opset to opset target (at most
// MaxOpset): attributes that became inputs become initializers, removed
// attributes go, Upsample becomes Resize, old Softmax semantics are kept with
// Flatten/Reshape. Nodes of other domains (ai.onnx.ml, com.microsoft, a
// custom domain) are left alone: their opsets do not change with ai.onnx's;
// a node of a domain the model does not import is an error
// (ErrUnsupportedDomain) naming the node and the domain. An operator it cannot
// upgrade is an error (ErrCannotUpgrade) naming the node and the operator; on
// error p is unchanged. On success the ai.onnx opset_import is target and the
// IR version at least the one that opset needs.
func UpgradeOpset(p *onnxpb.ModelProto, target int64) error {
	g := p.GetGraph()
	if g == nil {
		return ErrNoGraph
	}
	if target < 1 || target > MaxOpset {
		return fmt.Errorf("%w to opset %d: opsets 1 to %d are supported", ErrCannotUpgrade, target, MaxOpset)
	}
	var def *onnxpb.OperatorSetIdProto
	domains := map[string]bool{}
	for _, o := range p.GetOpsetImport() {
		if d := o.GetDomain(); isDefaultDomain(d) {
			def = o
		} else {
			domains[d] = true
		}
	}
	if def == nil {
		return fmt.Errorf("%w: the model imports no ai.onnx opset", ErrCannotUpgrade)
	}
	from := def.GetVersion()
	if from > target {
		return fmt.Errorf("%w: the model's opset %d is newer than %d (downgrading is not supported)", ErrCannotUpgrade, from, target)
	}
	u := &upgrader{p: p, from: from, to: target, domains: domains, names: modelNames(p), types: map[string]int32{}, ranks: map[string]int{}}
	u.index(g, 0)
	e, err := u.graph(g, 0)
	if err != nil {
		return err
	}
	e.apply()
	def.Version = proto.Int64(target)
	if ir := minIRVersion(target); p.GetIrVersion() < ir {
		p.IrVersion = proto.Int64(ir)
	}
	return nil
}

// minIRVersion is the IR version released with an opset.
func minIRVersion(opset int64) int64 {
	switch {
	case opset >= 12:
		return 7
	case opset == 11:
		return 6
	case opset == 10:
		return 5
	case opset == 9:
		return 4
	}
	return 3
}

type upgrader struct {
	p        *onnxpb.ModelProto
	from, to int64
	domains  map[string]bool // the non-default domains the model imports
	names    names
	types    map[string]int32 // element type of tensors, where known
	ranks    map[string]int   // rank of tensors, where known
	used     map[string]bool  // tensors some node or graph output uses
	consts   map[string]*onnxpb.TensorProto
}

// graphEdit collects the rewritten nodes and new initializers of a graph;
// apply installs them.
type graphEdit struct {
	g     *onnxpb.GraphProto
	nodes []*onnxpb.NodeProto
	inits []*onnxpb.TensorProto
}

func (e *graphEdit) apply() {
	e.g.Node = e.nodes
	e.g.Initializer = append(e.g.Initializer, e.inits...)
}

func (u *upgrader) index(g *onnxpb.GraphProto, depth int) {
	if g == nil || depth > maxGraphDepth {
		return
	}
	if u.used == nil {
		u.used = map[string]bool{}
		u.consts = map[string]*onnxpb.TensorProto{}
	}
	vis := append(append(append([]*onnxpb.ValueInfoProto{}, g.GetInput()...), g.GetOutput()...), g.GetValueInfo()...)
	for _, vi := range vis {
		v := valueInfo(vi)
		if v.ElemType != 0 {
			u.types[v.Name] = v.ElemType
		}
		if v.Shape != nil {
			u.ranks[v.Name] = len(v.Shape)
		}
	}
	for _, vi := range g.GetOutput() {
		u.used[vi.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		u.types[t.GetName()] = t.GetDataType()
		u.ranks[t.GetName()] = len(t.GetDims())
		u.consts[t.GetName()] = t
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			u.used[in] = true
		}
		if n.GetOpType() == "Constant" && len(n.GetOutput()) == 1 {
			if a := getAttr(n, "value"); a != nil && a.T != nil {
				u.consts[n.GetOutput()[0]] = a.T
				u.types[n.GetOutput()[0]] = a.T.GetDataType()
			}
		}
		for _, a := range n.GetAttribute() {
			if a.G != nil {
				u.index(a.G, depth+1)
			}
			for _, sg := range a.GetGraphs() {
				u.index(sg, depth+1)
			}
		}
		if hasSubgraphs(n) {
			for _, name := range outerNames(n) {
				u.used[name] = true
			}
		}
	}
}

// graph plans the upgrade of g's nodes without modifying g.
func (u *upgrader) graph(g *onnxpb.GraphProto, depth int) (*graphEdit, error) {
	if depth > maxGraphDepth {
		return nil, fmt.Errorf("%w: subgraphs nested more than %d deep", ErrCannotUpgrade, maxGraphDepth)
	}
	e := &graphEdit{g: g, nodes: make([]*onnxpb.NodeProto, 0, len(g.GetNode()))}
	for _, n := range g.GetNode() {
		out, err := u.node(e, n, depth)
		if err != nil {
			return nil, err
		}
		e.nodes = append(e.nodes, out...)
	}
	return e, nil
}

func (u *upgrader) fail(n *onnxpb.NodeProto, format string, args ...any) error {
	return fmt.Errorf("%s: %w from opset %d to %d: %s", nodeLabel(n), ErrCannotUpgrade, u.from, u.to, fmt.Sprintf(format, args...))
}

func (u *upgrader) node(e *graphEdit, n *onnxpb.NodeProto, depth int) ([]*onnxpb.NodeProto, error) {
	if d := n.GetDomain(); !isDefaultDomain(d) {
		if !u.domains[d] {
			return nil, fmt.Errorf("%s: %w %q: the model's opset_import does not import it", nodeLabel(n), ErrUnsupportedDomain, d)
		}
		return []*onnxpb.NodeProto{n}, nil
	}
	if u.from == u.to {
		return []*onnxpb.NodeProto{n}, nil
	}
	spec, ok := upgradeTable[n.GetOpType()]
	if !ok {
		return nil, u.fail(n, "operator %s is not one the upgrader knows", n.GetOpType())
	}
	if u.from < spec.since {
		return nil, u.fail(n, "%s from opsets older than %d is not supported", n.GetOpType(), spec.since)
	}
	cloned := false
	if hasSubgraphs(n) {
		n = proto.Clone(n).(*onnxpb.NodeProto)
		cloned = true
		for _, a := range n.GetAttribute() {
			gs := a.GetGraphs()
			if a.G != nil {
				gs = append([]*onnxpb.GraphProto{a.G}, gs...)
			}
			for _, sg := range gs {
				se, err := u.graph(sg, depth+1)
				if err != nil {
					return nil, err
				}
				se.apply()
			}
		}
	}
	for _, c := range spec.changes {
		if u.from < c && c <= u.to {
			if !cloned {
				n = proto.Clone(n).(*onnxpb.NodeProto)
			}
			return spec.rewrite(u, e, n)
		}
	}
	return []*onnxpb.NodeProto{n}, nil
}

func hasSubgraphs(n *onnxpb.NodeProto) bool {
	for _, a := range n.GetAttribute() {
		if a.G != nil || len(a.GetGraphs()) > 0 {
			return true
		}
	}
	return false
}

// addInit adds an initializer named after base and returns its name.
func (u *upgrader) addInit(e *graphEdit, base string, t *onnxpb.TensorProto) string {
	name := u.names.fresh(base)
	t.Name = proto.String(name)
	e.inits = append(e.inits, t)
	u.types[name] = t.GetDataType()
	return name
}

// baseName is the prefix of names derived from node n.
func baseName(n *onnxpb.NodeProto) string {
	if n.GetName() != "" {
		return n.GetName()
	}
	if len(n.GetOutput()) > 0 {
		return n.GetOutput()[0]
	}
	return n.GetOpType()
}

// scalarLike returns a scalar tensor holding v with the element type of
// tensor (FLOAT when unknown).
func (u *upgrader) scalarLike(n *onnxpb.NodeProto, tensor string, v float32) (*onnxpb.TensorProto, error) {
	switch t, ok := u.types[tensor]; {
	case !ok || t == TypeFloat:
		return NewTensorFloat32("", nil, []float32{v}), nil
	case t == TypeDouble:
		return newTensorFloat64("", nil, []float64{float64(v)}), nil
	default:
		return nil, u.fail(n, "input %q has type %s; only FLOAT and DOUBLE are supported", tensor, ElemTypeName(t))
	}
}

func inputsTrimmed(in []string) []string {
	for len(in) > 0 && in[len(in)-1] == "" {
		in = in[:len(in)-1]
	}
	return in
}

func one(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) { return []*onnxpb.NodeProto{n}, nil }

// upgradeClip: Clip-6 min/max attributes become inputs (Clip-11).
func upgradeClip(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if len(n.GetInput()) != 1 {
		return nil, u.fail(n, "Clip-6 takes one input, got %d", len(n.GetInput()))
	}
	in := []string{n.Input[0], "", ""}
	for i, name := range []string{"min", "max"} {
		a := removeAttr(n, name)
		if a == nil {
			continue
		}
		t, err := u.scalarLike(n, n.Input[0], a.GetF())
		if err != nil {
			return nil, err
		}
		in[i+1] = u.addInit(e, baseName(n)+"_"+name, t)
	}
	n.Input = inputsTrimmed(in)
	return one(n)
}

// upgradeAxesToInput: the axes attribute of Squeeze, Unsqueeze and
// ReduceSum becomes their second input (opset 13).
func upgradeAxesToInput(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	a := removeAttr(n, "axes")
	if a == nil {
		if n.GetOpType() == "Unsqueeze" {
			return nil, u.fail(n, "Unsqueeze without axes")
		}
		return one(n)
	}
	if len(n.GetInput()) != 1 {
		return nil, u.fail(n, "%s with an axes attribute takes one input, got %d", n.GetOpType(), len(n.GetInput()))
	}
	name := u.addInit(e, baseName(n)+"_axes", NewTensorInt64("", []int64{int64(len(a.Ints))}, a.Ints))
	n.Input = append(n.Input, name)
	return one(n)
}

// upgradeSplit: Split's split attribute becomes its second input (13).
func upgradeSplit(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	a := removeAttr(n, "split")
	if a == nil {
		return one(n)
	}
	if len(n.GetInput()) != 1 {
		return nil, u.fail(n, "Split with a split attribute takes one input, got %d", len(n.GetInput()))
	}
	name := u.addInit(e, baseName(n)+"_split", NewTensorInt64("", []int64{int64(len(a.Ints))}, a.Ints))
	n.Input = append(n.Input, name)
	return one(n)
}

// upgradePad: Pad-2's pads and value attributes become inputs (Pad-11).
func upgradePad(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if len(n.GetInput()) != 1 {
		return nil, u.fail(n, "Pad-2 takes one input, got %d", len(n.GetInput()))
	}
	pads := removeAttr(n, "pads")
	if pads == nil {
		return nil, u.fail(n, "Pad without pads")
	}
	n.Input = append(n.Input, u.addInit(e, baseName(n)+"_pads", NewTensorInt64("", []int64{int64(len(pads.Ints))}, pads.Ints)))
	if v := removeAttr(n, "value"); v != nil && v.GetF() != 0 {
		t, err := u.scalarLike(n, n.Input[0], v.GetF())
		if err != nil {
			return nil, err
		}
		n.Input = append(n.Input, u.addInit(e, baseName(n)+"_value", t))
	}
	return one(n)
}

// upgradeDropout drops is_test (gone at 7), moves ratio to an input (12) and
// drops an unused mask output (its type became bool at 10).
func upgradeDropout(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if len(n.GetInput()) != 1 {
		return nil, u.fail(n, "Dropout before opset 12 takes one input, got %d", len(n.GetInput()))
	}
	removeAttr(n, "is_test")
	removeAttr(n, "consumed_inputs")
	if len(n.GetOutput()) > 1 && n.Output[1] != "" && u.from < 10 && u.to >= 10 {
		if u.used[n.Output[1]] {
			return nil, u.fail(n, "its mask output %q is used, and its type changes to bool at opset 10", n.Output[1])
		}
		n.Output = n.Output[:1]
	}
	if u.from < 12 && u.to >= 12 {
		if r := removeAttr(n, "ratio"); r != nil {
			n.Input = append(n.Input[:1], u.addInit(e, baseName(n)+"_ratio", NewTensorFloat32("", nil, []float32{r.GetF()})))
		}
	}
	return one(n)
}

// upgradeBatchNorm drops consumed_inputs and is_test (gone at 7) and spatial
// (gone at 9; only spatial=1 has a later equivalent).
func upgradeBatchNorm(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	removeAttr(n, "consumed_inputs")
	removeAttr(n, "is_test")
	if s := removeAttr(n, "spatial"); s != nil && s.GetI() != 1 {
		return nil, u.fail(n, "spatial=%d has no equivalent from opset 9", s.GetI())
	}
	return one(n)
}

// upgradeSlice: Slice-1's starts, ends and axes attributes become inputs.
func upgradeSlice(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if len(n.GetInput()) != 1 {
		return nil, u.fail(n, "Slice-1 takes one input, got %d", len(n.GetInput()))
	}
	for _, name := range []string{"starts", "ends", "axes"} {
		a := removeAttr(n, name)
		if a == nil {
			if name != "axes" {
				return nil, u.fail(n, "Slice without %s", name)
			}
			continue
		}
		n.Input = append(n.Input, u.addInit(e, baseName(n)+"_"+name, NewTensorInt64("", []int64{int64(len(a.Ints))}, a.Ints)))
	}
	return one(n)
}

// upgradeTopK: TopK-1's k attribute becomes an input (10).
func upgradeTopK(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	k := removeAttr(n, "k")
	if k == nil || len(n.GetInput()) != 1 {
		return nil, u.fail(n, "TopK-1 needs one input and a k attribute")
	}
	n.Input = append(n.Input, u.addInit(e, baseName(n)+"_k", NewTensorInt64("", []int64{1}, []int64{k.GetI()})))
	return one(n)
}

// upgradeSoftmax keeps the pre-13 meaning of Softmax, LogSoftmax and
// Hardmax (flatten to 2-D at axis, default 1): unchanged when axis is the
// last one, else Shape + Flatten + op(axis=-1) + Reshape.
func upgradeSoftmax(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if len(n.GetInput()) != 1 || len(n.GetOutput()) != 1 {
		return nil, u.fail(n, "%s takes one input and one output", n.GetOpType())
	}
	axis := attrInt(n, "axis", 1)
	r, known := u.ranks[n.Input[0]]
	if axis == -1 || (known && axis == int64(r)-1) {
		setAttr(n, IntAttr("axis", -1))
		return one(n)
	}
	x, y, base := n.Input[0], n.Output[0], baseName(n)
	shape := u.names.fresh(y + "_shape")
	flat := u.names.fresh(y + "_2d")
	soft := u.names.fresh(y + "_2d_" + n.GetOpType())
	n.Input = []string{flat}
	n.Output = []string{soft}
	setAttr(n, IntAttr("axis", -1))
	return []*onnxpb.NodeProto{
		NewNode("Shape", u.names.fresh(base+"_shape"), []string{x}, []string{shape}),
		NewNode("Flatten", u.names.fresh(base+"_flatten"), []string{x}, []string{flat}, IntAttr("axis", axis)),
		n,
		NewNode("Reshape", u.names.fresh(base+"_reshape"), []string{soft, shape}, []string{y}),
	}, nil
}

// upgradeResize turns Upsample (7, 9) and Resize-10 into Resize-11/13 with
// the same (asymmetric) coordinate mapping. Nearest mode needs constant
// scales of at least 1, where the old rounding is floor.
func upgradeResize(u *upgrader, e *graphEdit, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if u.to < 11 {
		return nil, u.fail(n, "upgrading %s is supported to opset 11 or later only", n.GetOpType())
	}
	mode := attrString(n, "mode", "nearest")
	if mode != "nearest" && mode != "linear" {
		return nil, u.fail(n, "mode %q", mode)
	}
	var scales []float32
	scalesName := ""
	if a := removeAttr(n, "scales"); a != nil { // Upsample-7
		if len(n.GetInput()) != 1 {
			return nil, u.fail(n, "Upsample-7 takes one input, got %d", len(n.GetInput()))
		}
		scales = a.Floats
		scalesName = u.addInit(e, baseName(n)+"_scales", NewTensorFloat32("", []int64{int64(len(scales))}, scales))
	} else {
		if len(n.GetInput()) != 2 || n.Input[1] == "" {
			return nil, u.fail(n, "%s needs a scales input", n.GetOpType())
		}
		scalesName = n.Input[1]
		if t, ok := u.consts[scalesName]; ok {
			s, err := TensorFloat32(t)
			if err != nil {
				return nil, u.fail(n, "scales: %v", err)
			}
			scales = s
		}
	}
	if mode == "nearest" {
		if scales == nil {
			return nil, u.fail(n, "nearest mode needs constant scales")
		}
		for _, s := range scales {
			if !(s >= 1) || math.IsInf(float64(s), 0) {
				return nil, u.fail(n, "nearest mode with scale %g (only scales >= 1 keep their rounding)", s)
			}
		}
	}
	roi := ""
	if u.to < 13 {
		roi = u.addInit(e, baseName(n)+"_roi", NewTensorFloat32("", []int64{0}, nil))
	}
	attrs := []*onnxpb.AttributeProto{
		StringAttr("mode", mode),
		StringAttr("coordinate_transformation_mode", "asymmetric"),
	}
	if mode == "nearest" {
		attrs = append(attrs, StringAttr("nearest_mode", "floor"))
	}
	r := NewNode("Resize", "", []string{n.Input[0], roi, scalesName}, n.Output, attrs...)
	r.Name = n.Name
	r.DocString = n.DocString
	return one(r)
}

// DefaultOpset is p's ai.onnx opset version; 0 when p imports none.
func DefaultOpset(p *onnxpb.ModelProto) int64 {
	for _, o := range p.GetOpsetImport() {
		if isDefaultDomain(o.GetDomain()) {
			return o.GetVersion()
		}
	}
	return 0
}
