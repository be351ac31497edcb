package model

import (
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// Attribute helpers for graph edits.

func getAttr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := getAttr(n, name); a != nil && a.I != nil {
		return a.GetI()
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	if a := getAttr(n, name); a != nil && a.F != nil {
		return a.GetF()
	}
	return def
}

func attrString(n *onnxpb.NodeProto, name, def string) string {
	if a := getAttr(n, name); a != nil && a.S != nil {
		return string(a.GetS())
	}
	return def
}

// removeAttr deletes the attribute name and returns it (nil if absent).
func removeAttr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for i, a := range n.Attribute {
		if a.GetName() == name {
			n.Attribute = append(n.Attribute[:i:i], n.Attribute[i+1:]...)
			return a
		}
	}
	return nil
}

func setAttr(n *onnxpb.NodeProto, a *onnxpb.AttributeProto) {
	removeAttr(n, a.GetName())
	n.Attribute = append(n.Attribute, a)
}

// IntAttr is an INT attribute.
func IntAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// StringAttr is a STRING attribute.
func StringAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// NewNode is a node of the default domain.
func NewNode(op, name string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{
		OpType:    proto.String(op),
		Name:      proto.String(name),
		Input:     inputs,
		Output:    outputs,
		Attribute: attrs,
	}
}

// isDefaultDomain reports whether domain names the ONNX operator set.
func isDefaultDomain(domain string) bool { return domain == "" || domain == "ai.onnx" }

// names tracks every name used in a model, to make new ones unique.
type names map[string]bool

func modelNames(p *onnxpb.ModelProto) names {
	u := names{}
	var walk func(g *onnxpb.GraphProto, depth int)
	walk = func(g *onnxpb.GraphProto, depth int) {
		if g == nil || depth > maxGraphDepth {
			return
		}
		for _, vi := range g.GetInput() {
			u[vi.GetName()] = true
		}
		for _, vi := range g.GetOutput() {
			u[vi.GetName()] = true
		}
		for _, vi := range g.GetValueInfo() {
			u[vi.GetName()] = true
		}
		for _, t := range g.GetInitializer() {
			u[t.GetName()] = true
		}
		for _, n := range g.GetNode() {
			u[n.GetName()] = true
			for _, s := range n.GetInput() {
				u[s] = true
			}
			for _, s := range n.GetOutput() {
				u[s] = true
			}
			for _, a := range n.GetAttribute() {
				if a.G != nil {
					walk(a.G, depth+1)
				}
				for _, sg := range a.GetGraphs() {
					walk(sg, depth+1)
				}
			}
		}
	}
	walk(p.GetGraph(), 0)
	return u
}

// fresh returns base, or base_1, base_2, ... whichever is unused, and marks
// it used.
func (u names) fresh(base string) string {
	name := base
	for i := 1; u[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	u[name] = true
	return name
}
