package report

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetcal/fleetcal/outputs"
	"github.com/fleetcal/fleetcal/pipeline"
)

// The names Write uses inside the output folder.
const (
	PageName  = "report.html"
	FilesName = "report_files"
)

// Input is everything the page shows. Only Model is required; a section
// whose data is missing is left out.
type Input struct {
	Model              string
	Config             string
	FleetcalVersion    string
	OnnxRuntimeVersion string
	// Generated is when the report was made (zero: not shown).
	Generated time.Time

	// Samples is the size of the calibration data set.
	Samples int
	Workers int

	// Summary is what the algorithms' reports contribute
	// (pipeline.Summarize): the quantization (preset, range estimator,
	// calibration samples, layers with quantized weights, operators left in
	// float), the layers kept in float and why, the accuracy-aware search.
	pipeline.Summary
	// Algorithms are the pipeline's algorithms and their running times.
	Algorithms   []pipeline.AlgorithmReport
	StageSeconds map[string]float64
	Warnings     []string

	// FP32 and INT8 are the evaluations of the float and the quantized
	// model (nil: not evaluated). With AccuracyAware, INT8 is the model the
	// search returned.
	FP32, INT8 *Evaluation

	// Activations are the quantized activation tensors, in the order the
	// quantizer reports them, with their histograms (see Histograms).
	Activations []Activation
	// HistogramSamples is how many samples the histograms count.
	HistogramSamples int
}

// Evaluation is a model's metric values and latency on the config's data
// (report.json's fp32 and int8).
type Evaluation struct {
	Model   string             `json:"model,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Samples is how many samples the metric was averaged over.
	Samples int `json:"samples"`
	// LatencyMs is the median batch-1 latency in milliseconds with
	// engine.threads intra-op threads (0: not measured).
	LatencyMs float64 `json:"latency_ms"`
	// LatencyRuns is how many timed inferences LatencyMs is the median of.
	LatencyRuns int `json:"latency_runs"`
}

// Activation is one quantized activation tensor and the histogram of its
// values.
type Activation struct {
	pipeline.QuantizedActivation
	// Hist is the histogram of the tensor's values (nil: none collected).
	Hist *Histogram
}

// Histogram counts values in len(Counts) bins between consecutive Edges.
type Histogram struct {
	Edges  []float64
	Counts []uint64
	// Underflow and Overflow count values below the first and at or above
	// the last edge; NaN counts NaNs.
	Underflow, Overflow, NaN uint64
}

// HistogramBins is the number of bins HistogramEdges asks for.
const HistogramBins = 64

// HistogramEdges returns the edges of the histogram to collect for an
// activation quantized to [qmin, qmax]: 64 bins, the 46 middle ones
// centered from qmin to qmax and 9 more on each side (about 20% of the
// range), so the picture shows what the range clips, and a value equal to
// qmin or qmax (ReLU's zeros, a saturated input) counts inside the range.
func HistogramEdges(qmin, qmax float64) (lo, hi float64, bins int) {
	// 45 steps between the first and last centers inside, and 9.5 more to
	// each outer edge: 45 + 2×9.5 == HistogramBins.
	const inside, pad = 45, 9.5
	w := qmax - qmin
	if !(w > 0) || math.IsInf(w, 0) {
		// A degenerate range: center a window of its magnitude (or 1) on it.
		c := (qmin + qmax) / 2
		w = math.Max(math.Abs(qmin), math.Abs(qmax))
		if !(w > 0) || math.IsInf(w, 0) || math.IsInf(c, 0) || math.IsNaN(c) {
			w, c = 1, 0
		}
		qmin, qmax = c-w/2, c+w/2
	}
	step := w / inside
	return qmin - pad*step, qmax + pad*step, HistogramBins
}

// Write writes dir/report.html and its pictures in dir/report_files,
// replacing a previous report, and returns the page's path. On error
// nothing of the new report is left in dir.
func Write(dir string, in Input) (path string, err error) {
	if in.Model == "" {
		return "", errors.New("report: the model name is empty")
	}
	if err := in.validate(); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".report-*")
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	defer os.RemoveAll(tmp)
	files := filepath.Join(tmp, FilesName)
	if err := os.Mkdir(files, 0o755); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	pg, err := build(in, files)
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	if err := render(filepath.Join(tmp, PageName), pg); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	if err := install(dir, tmp); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return filepath.Join(dir, PageName), nil
}

// install moves tmp's page and pictures into dir together (outputs.Files):
// the old ones go aside, the new ones in; on failure the old ones return.
func install(dir, tmp string) error {
	var f outputs.Files
	f.Stage(filepath.Join(tmp, FilesName), filepath.Join(dir, FilesName))
	f.Stage(filepath.Join(tmp, PageName), filepath.Join(dir, PageName))
	return f.Commit()
}

// validate rejects values the page cannot show.
func (in *Input) validate() error {
	for _, a := range in.Activations {
		if h := a.Hist; h != nil {
			if len(h.Counts) == 0 || len(h.Edges) != len(h.Counts)+1 {
				return fmt.Errorf("tensor %q: histogram has %d edges for %d bins", a.Tensor, len(h.Edges), len(h.Counts))
			}
			for k, e := range h.Edges {
				if math.IsNaN(e) || math.IsInf(e, 0) || (k > 0 && !(e > h.Edges[k-1])) {
					return fmt.Errorf("tensor %q: histogram edge %d is %g: want finite increasing edges", a.Tensor, k, e)
				}
			}
		}
	}
	return nil
}
