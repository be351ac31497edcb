package fastbias

import "github.com/fleetcal/fleetcal/pipeline"

// LastReport is the report of the last Run, typed (Report returns it as
// any for pipeline.Reporter).
func (a *Algorithm) LastReport() Report { return a.report }

// Summarize names BiasCorrection among the CPU-dependent algorithms
// (pipeline.Summarizer): its sub-graph runs on the workers sum in ONNX
// Runtime's CPU-specific order, so the same run on AVX2 and AVX-512
// workers can differ in a corrected bias's last bits.
func (r Report) Summarize(s *pipeline.Summary) {
	if r.CPUDependent {
		s.CPUDependent = append(s.CPUDependent, BiasCorrectionName)
	}
}
