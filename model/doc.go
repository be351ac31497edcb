// Package model is fleetcal's view of ONNX models: the CompressedModel that
// the pipeline and the algorithms pass around (POT's CompressedModel), its
// loading and atomic saving (with ONNX external-data weights), and the graph
// edits the algorithms need.
//
//	m, err := model.Load(model.Config{Name: "mobilenet", Model: "mobilenet.onnx"})
//	for _, s := range m.Models() { fmt.Println(s.Name, len(s.Proto.GetGraph().GetNode())) }
//	files, err := model.Save(m, "out/", "mobilenet", false)
//
// Graph edits work on the ONNX proto in place: NewGraph indexes producers,
// consumers and initializers; ConstantsToInitializers, FoldBatchNorm,
// UpgradeOpset and FuseHardSwish bring exported models (Constant weights,
// unfolded BatchNormalization, opsets from 9, hard-swish as four
// elementwise nodes) to the form the quantizer expects:
//
//	p, err := model.LoadFile("net.onnx")
//	_, err = model.ConstantsToInitializers(p)
//	_, err = model.FoldBatchNorm(p)
//	err = model.UpgradeOpset(p, 13)
//	_, err = model.FuseHardSwish(p)
//	for _, n := range model.QuantizableNodes(p) { fmt.Println(n.GetName()) }
//
// InferTypes gives the element type (and, where it is certain, the shape) of
// every tensor, so that statistics are asked only for float activations and
// never for the int64 tensors of exported shape arithmetic:
//
//	types := model.InferTypes(p)
//	for _, n := range p.GetGraph().GetNode() {
//		for _, o := range n.GetOutput() {
//			if types.IsFloat32(o) { collect(o) }
//		}
//	}
//	tt, ok := types.Of("p2o.Cast.4") // {ElemType: 7 (INT64), Shape: [4]}, true
//	fmt.Println(types.Unknown())     // outputs of custom-domain nodes, sequences...
//
// Errors name the file, node, tensor or opset domain concerned and wrap the
// sentinels of errors.go.
//
// The package is pure Go over the generated bindings in onnxpb; it must never
// import onnxruntime_go (engine/) or nats.go (cluster/).
package model
