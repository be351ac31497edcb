package model

import (
	"slices"
)

// Control flow: the outputs of If, Loop and Scan come from their
// sub-graphs, inferred in a scope that sees the enclosing graph's tensors.

// subgraph infers the graph attribute name with the given input types and
// returns the types of its outputs; nil if absent or too deep.
func (c *nodeCtx) subgraph(name string, inputs []TensorType) []TensorType {
	a := getAttr(c.n, name)
	if a == nil || a.G == nil || c.depth >= maxGraphDepth {
		return nil
	}
	s := c.inf.graph(a.G, c.s, inputs, c.depth+1)
	out := make([]TensorType, len(a.G.GetOutput()))
	for i, vo := range a.G.GetOutput() {
		out[i], _ = s.lookup(vo.GetName())
	}
	return out
}

// joinShapes is a shape both a and b satisfy: dims that differ become
// unknown; nil if a rank is unknown or they differ.
func joinShapes(a, b []int64) []int64 {
	if a == nil || b == nil || len(a) != len(b) {
		return nil
	}
	s := slices.Clone(a)
	for i := range s {
		if s[i] != b[i] {
			s[i] = -1
		}
	}
	return s
}

func ifRule(c *nodeCtx) []TensorType {
	then := c.subgraph("then_branch", nil)
	els := c.subgraph("else_branch", nil)
	out := make([]TensorType, len(c.n.GetOutput()))
	for i := range out {
		var t, e TensorType
		if i < len(then) {
			t = then[i]
		}
		if i < len(els) {
			e = els[i]
		}
		out[i].ElemType = t.ElemType
		if t.ElemType == 0 {
			out[i].ElemType = e.ElemType
		} else if e.ElemType != 0 && e.ElemType != t.ElemType {
			c.inf.conflict("%s: output %d: then_branch gives %s, else_branch %s", nodeLabel(c.n), i,
				ElemTypeName(t.ElemType), ElemTypeName(e.ElemType))
		}
		out[i].Shape = joinShapes(t.Shape, e.Shape)
	}
	return out
}

// loopRule: inputs (M, cond, v_initial...); body inputs (iteration_num,
// cond, v...); body outputs (cond, v..., scan outputs...); node outputs
// (v_final..., scan outputs with a leading iteration dim).
func loopRule(c *nodeCtx) []TensorType {
	ins := c.n.GetInput()
	nCarried := max(len(ins)-2, 0)
	inputs := []TensorType{{TypeInt64, []int64{}}, {typeBool, []int64{}}}
	for i := range nCarried {
		// Loop-carried shapes may change between iterations: only the
		// element type is certain.
		inputs = append(inputs, TensorType{ElemType: c.in(2 + i).ElemType})
	}
	body := c.subgraph("body", inputs)
	out := make([]TensorType, len(c.n.GetOutput()))
	for i := range out {
		var b TensorType
		if 1+i < len(body) {
			b = body[1+i]
		}
		if i < nCarried {
			init := c.in(2 + i)
			out[i] = TensorType{b.ElemType, joinShapes(b.Shape, init.Shape)}
			if out[i].ElemType == 0 {
				out[i].ElemType = init.ElemType
			}
			continue
		}
		out[i].ElemType = b.ElemType
		if b.Shape != nil {
			out[i].Shape = append([]int64{-1}, b.Shape...)
		}
	}
	return out
}

// scanRule (opset 9+; at 8 the first input is sequence_lens): inputs are N
// states then M scan inputs (num_scan_inputs); outputs N final states then K
// scan outputs.
func scanRule(c *nodeCtx) []TensorType {
	ins := c.n.GetInput()
	first := 0
	if c.inf.opset < 9 {
		first = 1
	}
	m := int(attrInt(c.n, "num_scan_inputs", 0))
	nStates := len(ins) - first - m
	if m < 0 || nStates < 0 {
		return nil
	}
	var inputs []TensorType
	for i := first; i < len(ins); i++ {
		inputs = append(inputs, TensorType{ElemType: c.in(i).ElemType})
	}
	body := c.subgraph("body", inputs)
	out := make([]TensorType, len(c.n.GetOutput()))
	for i := range out {
		if i < len(body) {
			out[i].ElemType = body[i].ElemType
		}
		if i < nStates {
			if out[i].ElemType == 0 {
				out[i].ElemType = c.in(first + i).ElemType
			}
			if i < len(body) {
				out[i].Shape = joinShapes(body[i].Shape, c.in(first+i).Shape)
			}
		}
	}
	return out
}
