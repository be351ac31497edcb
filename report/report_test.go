package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

// evil is a tensor name that must come out escaped.
const evil = `relu<script>alert("x")</script>&out`

// synthetic is an Input with every section: two activations with
// histograms (one a ReLU output, one of signed values), one sharing
// parameters without a histogram, an accuracy-aware search with a
// ranking, and warnings.
func synthetic() Input {
	act := func(name string, lo, hi float64, f func(x float64) float64) Activation {
		a := Activation{QuantizedActivation: pipeline.QuantizedActivation{Tensor: name, Min: lo, Max: hi, Scale: (hi - lo) / 255, Type: "UINT8"}}
		elo, ehi, bins := HistogramEdges(lo, hi)
		h := &Histogram{Counts: make([]uint64, bins), Underflow: 3, Overflow: 5}
		for k := 0; k <= bins; k++ {
			h.Edges = append(h.Edges, elo+(ehi-elo)*float64(k)/float64(bins))
		}
		for k := range h.Counts {
			h.Counts[k] = uint64(f((h.Edges[k] + h.Edges[k+1]) / 2))
		}
		a.Hist = h
		return a
	}
	relu := act(evil, 0, 6, func(x float64) float64 {
		if x < 0 {
			return 0
		}
		return 1e5 * math.Exp(-x)
	})
	relu.Hist.Counts[9] += 1e6 // the zeros
	gauss := act("conv/BiasAdd:0", -2.5, 3, func(x float64) float64 { return 2e4 * math.Exp(-x*x/2) })
	gauss.ZeroPoint = 116
	return Input{
		Model: "tiny<cnn>", Config: "/tmp/config.json", FleetcalVersion: "0.1.0", OnnxRuntimeVersion: "1.22.0",
		Samples: 1000, Workers: 2,
		Algorithms:   []pipeline.AlgorithmReport{{Name: "AccuracyAwareQuantization", Seconds: 12.5}},
		StageSeconds: map[string]float64{"load": 0.1, "quantization": 12.5, "total": 15, "fp32_evaluation": 1.2, "int8_evaluation": 1},
		Warnings:     []string{"maximal drop <not> reached"},
		FP32:         &Evaluation{Metrics: map[string]float64{"accuracy": 0.97}, Samples: 1000, LatencyMs: 0.8},
		INT8:         &Evaluation{Metrics: map[string]float64{"accuracy": 0.965}, Samples: 1000, LatencyMs: 0.4},
		Summary: pipeline.Summary{
			Quantization: &pipeline.QuantizationSummary{Preset: "performance", RangeEstimator: "min / max", CalibrationSamples: 300,
				Layers:   []pipeline.QuantizedLayer{{Node: "conv1", Op: "Conv", Weight: "w1", Granularity: "perchannel", Channels: 8, MinScale: 0.001, MaxScale: 0.01, Int32Bias: true}},
				FloatOps: map[string]int{"Softmax": 1}},
			AccuracyAware: &pipeline.AccuracyAwareSummary{Metric: "output_fidelity", AnnotationFree: true, HigherBetter: true, DropType: "absolute",
				MaximalDrop: 0.01, Samples: 1000, FP32: 1, InitialINT8: 0.95, Final: 0.992, InitialDrop: 0.05, FinalDrop: 0.008,
				Achieved: true, RankingSamples: 300, QuantizedLayers: 3,
				Ranking:  []pipeline.LayerRank{{Node: "conv<2>", Sensitivity: 0.03}, {Node: "fc", Sensitivity: 0.01}, {Node: "conv1", Sensitivity: -0.001}},
				Reverted: []string{"conv<2>"}},
			LeftInFloat: []pipeline.FloatLayer{{Node: "conv<2>", By: "AccuracyAwareQuantization", Reason: "reverted <to> float"}},
		},
		Activations: []Activation{relu, gauss,
			{QuantizedActivation: pipeline.QuantizedActivation{Tensor: "pool_out", Min: -2.5, Max: 3, Scale: gauss.Scale, ZeroPoint: 116, Type: "UINT8", SharesWith: "conv/BiasAdd:0"}}},
		HistogramSamples: 100,
	}
}

var imgSrc = regexp.MustCompile(`<img [^>]*src="([^"]+)"`)

// TestWrite writes the synthetic report and checks the page: well-formed
// markup, every picture there and a PNG, names escaped, sections present.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path, err := Write(dir, synthetic())
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, PageName); path != want {
		t.Errorf("Write returned %s, want %s", path, want)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)
	checkMarkup(t, page)

	srcs := imgSrc.FindAllStringSubmatch(page, -1)
	// metrics, latency, sensitivity and two histograms (the shared tensor
	// has none).
	if len(srcs) != 5 {
		t.Errorf("%d <img> in the page, want 5", len(srcs))
	}
	if !strings.Contains(page, `data-images="5"`) {
		t.Errorf("body does not announce 5 images for the load check")
	}
	for _, m := range srcs {
		checkPNG(t, filepath.Join(dir, filepath.FromSlash(m[1])))
	}
	entries, err := os.ReadDir(filepath.Join(dir, FilesName))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(srcs) {
		t.Errorf("%d files in %s for %d pictures", len(entries), FilesName, len(srcs))
	}

	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<cnn>") || strings.Contains(page, "<not>") {
		t.Errorf("unescaped text in the page")
	}
	for _, want := range []string{
		"relu&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;out", // the tensor name, escaped
		"tiny&lt;cnn&gt;", "conv&lt;2&gt;", "maximal drop &lt;not&gt; reached",
		"annotation-free output_fidelity", // the metric line
		"2.00× faster",                    // 0.8 ms / 0.4 ms
		"-0.0050",                         // accuracy 0.965 - 0.97
		"shares parameters with conv/BiasAdd:0",
		"INT8 accuracy-aware", "INT8 default",
		"reverted &lt;to&gt; float", // the left-in-float table
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Nothing loads from elsewhere: no http(s) URL in src/href, no <link>.
	if regexp.MustCompile(`(?i)(src|href)="(https?:)?//|<link`).MatchString(page) {
		t.Errorf("page refers to an external resource")
	}

	// A second Write replaces the first, leaving no temporary folder.
	in := synthetic()
	in.AccuracyAware, in.Activations = nil, in.Activations[:1]
	if _, err := Write(dir, in); err != nil {
		t.Fatal(err)
	}
	all, _ := os.ReadDir(dir)
	var names []string
	for _, e := range all {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != PageName+" "+FilesName {
		t.Errorf("after a second Write, %s holds %v", dir, names)
	}
	if _, err := os.Stat(filepath.Join(dir, FilesName, "sensitivity.png")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the first report's sensitivity.png survived the second Write (stat: %v)", err)
	}
}

// TestWriteBadHistogramLeavesNothing checks that a failed Write leaves the
// folder as it was.
func TestWriteBadHistogramLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	in := synthetic()
	in.Activations[1].Hist.Edges[3] = math.NaN()
	if _, err := Write(dir, in); err == nil || !strings.Contains(err.Error(), "conv/BiasAdd:0") {
		t.Fatalf("Write with a NaN edge: error %v, want one naming the tensor", err)
	}
	if all, _ := os.ReadDir(dir); len(all) != 0 {
		t.Errorf("a failed Write left %d entries in the folder", len(all))
	}
}

func TestHistogramEdges(t *testing.T) {
	for _, tc := range []struct{ min, max float64 }{{0, 6}, {-2.5, 3}, {1, 1}, {0, 0}, {-1e-30, 1e30}} {
		lo, hi, bins := HistogramEdges(tc.min, tc.max)
		if !(lo < hi) || bins != HistogramBins || math.IsInf(hi-lo, 0) {
			t.Errorf("HistogramEdges(%g, %g) = %g, %g, %d", tc.min, tc.max, lo, hi, bins)
			continue
		}
		if tc.min < tc.max {
			// min and max are the centers of bins 9 and 54 (of 0..63), up
			// to rounding: 9.5 and 54.5 bins from lo.
			step := (hi - lo) / HistogramBins
			if k := (tc.min - lo) / step; math.Abs(k-9.5) > 1e-6 {
				t.Errorf("HistogramEdges(%g, %g): min %g bins from lo, want 9.5", tc.min, tc.max, k)
			}
			if k := (tc.max - lo) / step; math.Abs(k-54.5) > 1e-6 {
				t.Errorf("HistogramEdges(%g, %g): max %g bins from lo, want 54.5", tc.min, tc.max, k)
			}
		}
	}
}

// TestOutside checks the clipped share: values equal to min or max (the
// centers of bins 9 and 54) are inside, the next bins and the values
// beyond the edges outside.
func TestOutside(t *testing.T) {
	lo, hi, bins := HistogramEdges(0, 6)
	h := &Histogram{Counts: make([]uint64, bins)}
	for k := 0; k <= bins; k++ {
		h.Edges = append(h.Edges, lo+(hi-lo)*float64(k)/float64(bins))
	}
	h.Counts[9], h.Counts[30], h.Counts[54] = 500, 400, 100
	if got := outside(h, 0, 6); got != "0%" {
		t.Errorf("mass on min, inside and max: outside %s, want 0%%", got)
	}
	h.Counts[55], h.Counts[8], h.Overflow = 6, 3, 1
	// 6 + 3 + 1 of 1010 values: 0.990%.
	if got := outside(h, 0, 6); got != "0.99%" {
		t.Errorf("10 of 1010 values beyond the range: outside %s, want 0.99%%", got)
	}
}

// checkMarkup parses the page as XML after removing the doctype and
// closing the void elements, which catches unbalanced or misnested tags
// and stray '<' or '&'.
func checkMarkup(t *testing.T, page string) {
	t.Helper()
	s := strings.Replace(page, "<!DOCTYPE html>", "", 1)
	s = regexp.MustCompile(`<(meta|img|br|link|input)\b([^>]*?)/?>`).ReplaceAllString(s, "<$1$2/>")
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			line, _ := d.InputPos()
			lines := strings.Split(s, "\n")
			t.Fatalf("the page is not well-formed: %v\nline %d: %s", err, line, lines[min(line, len(lines))-1])
		}
	}
}

func checkPNG(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Error(err)
		return
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Errorf("%s: not a PNG: %v", file, err)
		return
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("%s: %v, want a picture at least 100 px wide and high", file, b)
	}
}
