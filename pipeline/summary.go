package pipeline

// Summarizer is implemented by an algorithm's report (what Reporter.Report
// returns, AlgorithmReport.Details) to contribute to the run's Summary:
// what the quantized model carries, what was left in float and why, what
// the accuracy-aware search did. Summarize adds to s; a quantizer's report
// replaces s.Quantization (the model written is the last quantizer's).
type Summarizer interface {
	Summarize(s *Summary)
}

// Summary is what a run's reports show of its algorithms besides each
// one's own details (report.json's calibration_samples and
// nothing_quantized, the HTML report's sections).
type Summary struct {
	// Quantization is the last quantizer's result (nil: none ran).
	Quantization *QuantizationSummary
	// LeftInFloat lists the layers algorithms chose to keep in float, and
	// why, in the order the algorithms decided.
	LeftInFloat []FloatLayer
	// AccuracyAware is the accuracy-aware search (nil: none ran).
	AccuracyAware *AccuracyAwareSummary
}

// Summarize collects what the reports implementing Summarizer contribute,
// in pipeline order.
func Summarize(reports []AlgorithmReport) Summary {
	var s Summary
	for _, r := range reports {
		if c, ok := r.Details.(Summarizer); ok {
			c.Summarize(&s)
		}
	}
	return s
}

// QuantizationSummary is what a quantizer wrote into the model.
type QuantizationSummary struct {
	// Preset and RangeEstimator describe the quantization (e.g.
	// "performance", "min: min; max: max").
	Preset         string
	RangeEstimator string
	// CalibrationSamples is how many samples the ranges were computed on.
	CalibrationSamples int
	// NothingQuantized says why, when the output is the float model.
	NothingQuantized string
	// Activations are the quantized activation tensors, in the quantizer's
	// order; Layers the layers with quantized weights.
	Activations []QuantizedActivation
	Layers      []QuantizedLayer
	// FloatOps counts, by operator, the nodes left reading float inputs.
	FloatOps map[string]int
}

// QuantizedActivation is one quantized activation tensor.
type QuantizedActivation struct {
	Tensor string
	// Min and Max are the quantization range: the tensor's own, or that of
	// the tensor named by SharesWith, whose parameters it reuses.
	Min, Max   float64
	Scale      float64
	ZeroPoint  int32
	Type       string
	SharesWith string
}

// QuantizedLayer is one layer with quantized weights.
type QuantizedLayer struct {
	Node, Op, Weight   string
	Granularity        string
	Channels           int
	MinScale, MaxScale float64
	Int32Bias          bool
}

// FloatLayer is a layer an algorithm kept in float.
type FloatLayer struct {
	Node, Op string
	// By names the algorithm (or its step) that decided; Reason says why.
	By, Reason string
}

// AccuracyAwareSummary is what an accuracy-aware search did.
type AccuracyAwareSummary struct {
	// Metric is the metric value optimized; AnnotationFree tells it is
	// output_fidelity against the FP32 outputs, not the config's metric.
	Metric         string
	AnnotationFree bool
	HigherBetter   bool
	DropType       string
	MaximalDrop    float64
	Samples        int

	FP32, InitialINT8, Final float64
	InitialDrop, FinalDrop   float64
	Achieved                 bool

	// RankingSamples is the size of the subset the ranking was measured on;
	// Ranking is most sensitive first.
	RankingSamples int
	Ranking        []LayerRank
	// Steps are the search's iterations, in order.
	Steps []SearchStep
	// Reverted lists the layers left in float, in the order reverted.
	Reverted        []string
	QuantizedLayers int
}

// LayerRank is one layer's sensitivity: how much the metric recovers when
// only that layer is left in float.
type LayerRank struct {
	Node        string
	Sensitivity float64
}

// SearchStep is one iteration of a search: Node was tried in float with
// the layers reverted before; Kept is false when the step was undone.
type SearchStep struct {
	Node         string
	Metric, Drop float64
	Kept         bool
}
