package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"image/color"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/fleetcal/fleetcal/pipeline"
)

//go:embed page.html.tmpl
var pageTemplate string

var tmpl = template.Must(template.New("page").Parse(pageTemplate))

// column is one model compared in the summary: FP32, INT8, and the
// accuracy-aware INT8 when that search ran.
type column struct {
	Label string
	Evaluation
	color color.Color
}

// columns lists the evaluated models. With AccuracyAware, the default INT8
// model is the search's starting point (known by the optimized metric
// only), and INT8 is the search's result.
func columns(in Input) []column {
	var cols []column
	withMetric := func(e *Evaluation, name string, v float64) Evaluation {
		var out Evaluation
		if e != nil {
			out = *e
		}
		out.Metrics = maps.Clone(out.Metrics)
		if out.Metrics == nil {
			out.Metrics = map[string]float64{}
		}
		if _, ok := out.Metrics[name]; !ok {
			out.Metrics[name] = v
		}
		return out
	}
	aa := in.AccuracyAware
	switch {
	case aa != nil:
		cols = append(cols,
			column{Label: "FP32", Evaluation: withMetric(in.FP32, aa.Metric, aa.FP32)},
			column{Label: "INT8 default", Evaluation: Evaluation{Metrics: map[string]float64{aa.Metric: aa.InitialINT8}, Samples: aa.Samples}},
			column{Label: "INT8 accuracy-aware", Evaluation: withMetric(in.INT8, aa.Metric, aa.Final)})
	default:
		if in.FP32 != nil {
			cols = append(cols, column{Label: "FP32", Evaluation: *in.FP32})
		}
		if in.INT8 != nil {
			cols = append(cols, column{Label: "INT8", Evaluation: *in.INT8})
		}
	}
	for i := range cols {
		switch cols[i].Label {
		case "FP32":
			cols[i].color = colorColumns[0]
		case "INT8 accuracy-aware":
			cols[i].color = colorColumns[2]
		default:
			cols[i].color = colorColumns[1]
		}
	}
	return cols
}

// view is what the template shows.
type view struct {
	In         Input
	Generated  string
	Columns    []string
	MetricRows []row
	Latency    *row
	MetricNote string
	Stages     []stage
	Algorithms []stage

	MetricsImg, LatencyImg *img
	// Key is the columns' colors in the metric and latency pictures.
	Key     []key
	SensImg *img

	AA       *pipeline.AccuracyAwareSummary
	AAValues string
	AADrops  string
	Ranking  []rankRow
	Acts     []actRow
	HistNote string
	Layers   []pipeline.QuantizedLayer
	FloatOps string
	// LeftInFloat lists the layers algorithms kept in float, and why.
	LeftInFloat []pipeline.FloatLayer
	// Images counts the <img> elements, for the page's load check.
	Images int
}

type key struct{ Label, Color string }

type row struct {
	Name  string
	Cells []cell
}

type cell struct{ Value, Note string }

type stage struct {
	Name    string
	Seconds string
}

type img struct {
	Src  string
	W, H int
	Alt  string
}

type rankRow struct {
	Rank        int
	Node        string
	Sensitivity string
	Reverted    bool
}

type actRow struct {
	Tensor, Range, Scale, ZeroPoint, Type, SharesWith string
	Outside                                           string
	NaN                                               uint64
	Img                                               *img
}

// build draws the pictures into files (a folder named FilesName) and
// returns the page's data.
func build(in Input, files string) (*view, error) {
	v := &view{In: in}
	if !in.Generated.IsZero() {
		v.Generated = in.Generated.Format(time.RFC1123)
	}
	// picture draws p as files/name, w x h.
	picture := func(name string, p *plot.Plot, w, h vg.Length, alt string) (*img, error) {
		if err := savePNG(filepath.Join(files, name), p, w, h); err != nil {
			return nil, err
		}
		v.Images++
		return &img{Src: path.Join(FilesName, name), W: cssPixels(w), H: cssPixels(h), Alt: alt}, nil
	}

	cols := columns(in)
	for _, c := range cols {
		v.Columns = append(v.Columns, c.Label)
		r, g, b, _ := c.color.RGBA()
		v.Key = append(v.Key, key{Label: c.Label, Color: fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)})
	}
	names := metricNames(cols)
	for _, n := range names {
		r := row{Name: n}
		fp, hasFP := cols[0].Metrics[n]
		hasFP = hasFP && cols[0].Label == "FP32"
		for i, c := range cols {
			x, ok := c.Metrics[n]
			if !ok {
				r.Cells = append(r.Cells, cell{Value: "—"})
				continue
			}
			cl := cell{Value: num(x, 4)}
			if i > 0 && hasFP {
				cl.Note = fmt.Sprintf("%+.4f", x-fp)
			}
			r.Cells = append(r.Cells, cl)
		}
		v.MetricRows = append(v.MetricRows, r)
	}
	if hasLatency(cols) {
		r := row{Name: "latency"}
		for i, c := range cols {
			if c.LatencyMs <= 0 {
				r.Cells = append(r.Cells, cell{Value: "—"})
				continue
			}
			cl := cell{Value: num(c.LatencyMs, 3) + " ms"}
			if i > 0 && cols[0].Label == "FP32" && cols[0].LatencyMs > 0 {
				if r := cols[0].LatencyMs / c.LatencyMs; r >= 1 {
					cl.Note = fmt.Sprintf("%.2f× faster", r)
				} else {
					cl.Note = fmt.Sprintf("%.2f× slower", 1/r)
				}
			}
			r.Cells = append(r.Cells, cl)
		}
		v.Latency = &r
	}
	v.MetricNote = metricNote(in, cols, names)
	v.Stages = stages(in.StageSeconds)
	for _, a := range in.Algorithms {
		v.Algorithms = append(v.Algorithms, stage{Name: a.Name, Seconds: seconds(a.Seconds)})
	}

	if len(names) > 0 {
		p, err := metricsPlot(names, cols)
		if err != nil {
			return nil, err
		}
		if v.MetricsImg, err = picture("metrics.png", p, plotW, plotH, "metric of each model"); err != nil {
			return nil, err
		}
	}
	if v.Latency != nil {
		p, err := latencyPlot(cols)
		if err != nil {
			return nil, err
		}
		if v.LatencyImg, err = picture("latency.png", p, plotW, plotH, "latency of each model"); err != nil {
			return nil, err
		}
	}

	if aa := in.AccuracyAware; aa != nil {
		v.AA = aa
		v.AAValues = fmt.Sprintf("FP32 %s, initial INT8 %s, final INT8 %s", num(aa.FP32, 4), num(aa.InitialINT8, 4), num(aa.Final, 4))
		v.AADrops = fmt.Sprintf("initial drop %s, final drop %s, maximal drop %s (%s)",
			num(aa.InitialDrop, 4), num(aa.FinalDrop, 4), num(aa.MaximalDrop, 4), aa.DropType)
		reverted := map[string]bool{}
		for _, r := range aa.Reverted {
			reverted[r] = true
		}
		for i, r := range aa.Ranking {
			v.Ranking = append(v.Ranking, rankRow{Rank: i + 1, Node: r.Node, Sensitivity: num(r.Sensitivity, 4), Reverted: reverted[r.Node]})
		}
		if len(aa.Ranking) > 0 {
			p, ph, err := sensitivityPlot(aa)
			if err != nil {
				return nil, err
			}
			if v.SensImg, err = picture("sensitivity.png", p, plotW*4/3, ph, "per-layer sensitivity"); err != nil {
				return nil, err
			}
		}
	}

	for i, a := range in.Activations {
		r := actRow{Tensor: a.Tensor, Range: "[" + num(a.Min, 4) + ", " + num(a.Max, 4) + "]",
			Scale: num(a.Scale, 4), ZeroPoint: strconv.Itoa(int(a.ZeroPoint)), Type: a.Type, SharesWith: a.SharesWith}
		if h := a.Hist; h != nil {
			r.Outside, r.NaN = outside(h, a.Min, a.Max), h.NaN
			p, err := histogramPlot(a)
			if err != nil {
				return nil, fmt.Errorf("tensor %q: %w", a.Tensor, err)
			}
			if r.Img, err = picture(fmt.Sprintf("act_%03d.png", i), p, plotW, plotH, "histogram of "+a.Tensor); err != nil {
				return nil, fmt.Errorf("tensor %q: %w", a.Tensor, err)
			}
		}
		v.Acts = append(v.Acts, r)
	}
	if in.HistogramSamples > 0 {
		v.HistNote = fmt.Sprintf("Histograms count the values of each activation of the FP32 model over %d calibration samples", in.HistogramSamples)
	} else {
		v.HistNote = "Histograms count the values of each activation of the FP32 model"
	}
	v.HistNote += "; the count axis is logarithmic. Dashed lines mark the quantization range; red bars are values it clips."
	if q := in.Quantization; q != nil {
		v.Layers = q.Layers
		var ops []string
		for _, op := range slices.Sorted(maps.Keys(q.FloatOps)) {
			ops = append(ops, fmt.Sprintf("%s × %d", op, q.FloatOps[op]))
		}
		v.FloatOps = strings.Join(ops, ", ")
	}
	v.LeftInFloat = in.LeftInFloat
	return v, nil
}

// render executes the template into file.
func render(file string, v *view) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := tmpl.Execute(f, v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func metricNames(cols []column) []string {
	set := map[string]bool{}
	for _, c := range cols {
		for n := range c.Metrics {
			set[n] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func hasLatency(cols []column) bool {
	for _, c := range cols {
		if c.LatencyMs > 0 {
			return true
		}
	}
	return false
}

// metricNote says in one sentence which metric the numbers are.
func metricNote(in Input, cols []column, names []string) string {
	var s []string
	if aa := in.AccuracyAware; aa != nil {
		dir := "lower is better"
		if aa.HigherBetter {
			dir = "higher is better"
		}
		if aa.AnnotationFree {
			s = append(s, fmt.Sprintf("The accuracy-aware search used the annotation-free %s metric: how closely the INT8 model's outputs agree with the FP32 model's on %d samples (FP32 is 1 by definition; %s), because the config gives no metric with annotations.", aa.Metric, aa.Samples, dir))
		} else {
			s = append(s, fmt.Sprintf("The accuracy-aware search optimized the config's metric %s on %d samples (%s).", aa.Metric, aa.Samples, dir))
		}
		if len(aa.Ranking) > 0 && aa.RankingSamples > 0 {
			s = append(s, fmt.Sprintf("The sensitivity ranking was measured on %d samples.", aa.RankingSamples))
		}
	}
	var cfg []string
	for _, n := range names {
		if in.AccuracyAware != nil && n == in.AccuracyAware.Metric && (in.FP32 == nil || !hasKey(in.FP32.Metrics, n)) {
			continue
		}
		cfg = append(cfg, n)
	}
	switch {
	case len(cfg) > 0 && in.FP32 != nil && in.FP32.Samples > 0:
		s = append(s, fmt.Sprintf("The config's metric (%s) was measured on all %d samples of the data set.", strings.Join(cfg, ", "), in.FP32.Samples))
	case len(cfg) > 0:
		s = append(s, fmt.Sprintf("Metric: %s, from the config.", strings.Join(cfg, ", ")))
	case len(names) == 0 && len(cols) > 0:
		s = append(s, "The config has no metric: the models are compared by latency only.")
	case len(cols) == 0:
		s = append(s, "The models were not evaluated (evaluation skipped).")
	}
	return strings.Join(s, " ")
}

func hasKey(m map[string]float64, k string) bool {
	_, ok := m[k]
	return ok
}

// stageOrder is the order of the stages the quantize command times.
var stageOrder = []string{"load", "fp32_evaluation", "quantization", "int8_evaluation", "report_histograms", "total"}

func stages(m map[string]float64) []stage {
	rank := func(n string) int {
		if i := slices.Index(stageOrder, n); i >= 0 {
			return i
		}
		return len(stageOrder) - 1 // before total, by name
	}
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb || a == "total" || b == "total" {
			if a == "total" {
				return 1
			}
			if b == "total" {
				return -1
			}
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	var out []stage
	for _, n := range names {
		out = append(out, stage{Name: strings.ReplaceAll(n, "_", " "), Seconds: seconds(m[n])})
	}
	return out
}

func seconds(s float64) string {
	if s < 10 {
		return strconv.FormatFloat(s, 'f', 2, 64) + " s"
	}
	return strconv.FormatFloat(s, 'f', 1, 64) + " s"
}

// num formats x with digits significant digits.
func num(x float64, digits int) string {
	if x == 0 {
		return "0"
	}
	return strconv.FormatFloat(x, 'g', digits, 64)
}

// outside estimates the share of values the range [lo, hi] clips: the
// values beyond the histogram's edges and those of the bins it clips (up to
// half a bin off, with the edges of HistogramEdges).
func outside(h *Histogram, lo, hi float64) string {
	total := h.Underflow + h.Overflow
	out := total
	for k, n := range h.Counts {
		total += n
		if clipped(h.Edges[k], h.Edges[k+1], lo, hi) {
			out += n
		}
	}
	if total == 0 {
		return "—"
	}
	if out == 0 {
		return "0%"
	}
	pct := 100 * float64(out) / float64(total)
	if pct < 0.001 {
		return "< 0.001%"
	}
	return strconv.FormatFloat(pct, 'g', 3, 64) + "%"
}
