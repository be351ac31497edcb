package app

import (
	"slices"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/report"
)

// Report is report.json.
type Report struct {
	Model              string `json:"model"`
	Config             string `json:"config"`
	FleetcalVersion    string `json:"fleetcal_version"`
	OnnxRuntimeVersion string `json:"onnxruntime_version"`
	Samples            int    `json:"samples"`
	// CalibrationSamples is how many samples the quantizer calibrated on
	// (stat_subset_size of Samples, less those skipped).
	CalibrationSamples int `json:"calibration_samples"`
	// NothingQuantized says why, when the output is the float model.
	NothingQuantized string                     `json:"nothing_quantized,omitempty"`
	Workers          int                        `json:"workers"`
	NATS             string                     `json:"nats,omitempty"`
	LocalWorkers     int                        `json:"local_workers,omitempty"`
	Files            []model.SavedFile          `json:"files"`
	Algorithms       []pipeline.AlgorithmReport `json:"algorithms"`
	StageSeconds     map[string]float64         `json:"stage_seconds"`
	FP32             *Evaluation                `json:"fp32,omitempty"`
	INT8             *Evaluation                `json:"int8,omitempty"`
	// Latency compares the user's FP32 model (as loaded, not normalized)
	// with the INT8 one, alternated in one measurement (see
	// engine.MeasureLatency); FP32.LatencyMs and INT8.LatencyMs are its
	// medians.
	Latency *Latency `json:"latency,omitempty"`
	// CPU is the coordinator's processor (it measures latency); WorkerCPUs
	// the processor each worker reported with its results (in process:
	// the coordinator's). MixedCPUs is set when they differ in VNNI: the
	// INT8 model's speed and (without saturation_fix) accuracy on each
	// differ.
	CPU        engine.CPU            `json:"cpu"`
	WorkerCPUs map[string]engine.CPU `json:"worker_cpus,omitempty"`
	MixedCPUs  bool                  `json:"mixed_cpus,omitempty"`
	// MixedVectorUnits is set when the workers differ in their widest
	// vector unit (AVX-512, AVX2, neither): ONNX Runtime's float kernels
	// then sum in different orders, and the statistics (so the model) can
	// depend on which worker ran which shard.
	MixedVectorUnits bool     `json:"mixed_vector_units,omitempty"`
	Warnings         []string `json:"warnings,omitempty"`
	// Stages holds each stage's report when a cascade's stages were
	// calibrated on their own data.
	Stages map[string]*Report `json:"stages,omitempty"`
	// HTMLReport is the path of report.html ("" when not written).
	HTMLReport string `json:"html_report,omitempty"`
}

// Evaluation is a model's metric and latency on the config's data; its
// LatencyMs is the median from the alternated measurement of
// Report.Latency. The HTML report shows the same value.
type Evaluation = report.Evaluation

// Latency is a latency comparison in report.json and evaluate's output:
// Models[0] is the FP32 model, Models[1] (if any) the INT8 one, and
// Speedup[0] the median and spread of the per-round FP32/INT8 ratios.
type Latency struct {
	engine.LatencyComparison
	// Sample is the index of the sample timed.
	Sample int `json:"sample"`
}

// summarize fills what report.json's top level says of the algorithms
// (calibration_samples, nothing_quantized) from their reports, through
// pipeline.Summarize.
func (r *Report) summarize() pipeline.Summary {
	s := pipeline.Summarize(r.Algorithms)
	if q := s.Quantization; q != nil {
		r.CalibrationSamples, r.NothingQuantized = q.CalibrationSamples, q.NothingQuantized
	}
	return s
}

// mixedVectorUnits reports whether the workers differ in their widest
// vector unit, which decides the float kernels ONNX Runtime runs.
func mixedVectorUnits(cpus map[string]engine.CPU) bool {
	seen := map[string]bool{}
	for _, c := range cpus {
		switch {
		case slices.Contains(c.Features, "avx512f"):
			seen["avx512f"] = true
		case slices.Contains(c.Features, "avx2"):
			seen["avx2"] = true
		default:
			seen[""] = true
		}
	}
	return len(seen) > 1
}
