// Package model is fleetcal's view of ONNX models: the CompressedModel that
// the pipeline and the algorithms pass around (POT's CompressedModel), its
// loading and atomic saving (with ONNX external-data weights), and the graph
// edits the algorithms need.
//
//	m, err := model.Load(model.Config{Name: "mobilenet", Model: "mobilenet.onnx"})
//	for _, s := range m.Models() { fmt.Println(s.Name, len(s.Proto.GetGraph().GetNode())) }
//	files, err := model.Save(m, "out/", "mobilenet", false)
//
// The package is pure Go over the generated bindings in onnxpb; it must never
// import onnxruntime_go (engine/) or nats.go (cluster/).
package model
