package model

import "github.com/fleetcal/fleetcal/model/onnxpb"

// The operators a quantizer touches, in one place. quantizableOps are the
// operators with weights that INT8 kernels run (ONNX Runtime fuses QDQ pairs
// around them into QLinearConv, QLinearMatMul, ...), as POT and ONNX
// Runtime's quantizer both pick them. fusedActivations are the activations
// that, right after one of those (as its only consumer), the quantizer treats
// as part of it: the QDQ pair goes after the activation, not between them.
var (
	quantizableOps = map[string]bool{
		"Conv": true, "ConvTranspose": true, "Gemm": true, "MatMul": true,
	}
	fusedActivations = map[string]bool{
		"Relu": true, "Clip": true, "LeakyRelu": true, "Sigmoid": true, "Tanh": true,
		"HardSigmoid": true, "HardSwish": true, "Elu": true, "PRelu": true,
	}
)

// IsQuantizableOp reports whether an ai.onnx operator is one a quantizer
// converts to INT8 (Conv, ConvTranspose, Gemm, MatMul).
func IsQuantizableOp(opType string) bool { return quantizableOps[opType] }

// QuantizableNodes returns, in graph order, the top-level nodes a quantizer
// would touch: the quantizable operators and the activations fused with them.
func QuantizableNodes(p *onnxpb.ModelProto) []*onnxpb.NodeProto {
	x := NewGraph(p)
	var out []*onnxpb.NodeProto
	for _, n := range p.GetGraph().GetNode() {
		if !isDefaultDomain(n.GetDomain()) {
			continue
		}
		if quantizableOps[n.GetOpType()] {
			out = append(out, n)
			continue
		}
		if !fusedActivations[n.GetOpType()] || len(n.GetInput()) == 0 {
			continue
		}
		in := n.GetInput()[0]
		prod := x.Producer(in)
		if prod != nil && isDefaultDomain(prod.GetDomain()) && quantizableOps[prod.GetOpType()] &&
			len(x.Consumers(in)) == 1 && !x.IsGraphOutput(in) {
			out = append(out, n)
		}
	}
	return out
}
