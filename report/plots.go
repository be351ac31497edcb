package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/fleetcal/fleetcal/pipeline"
)

// The pictures' size in the page: 4.5in x 2.5in at 96 CSS pixels per
// inch, drawn at 1.5 times that resolution so they stay sharp on high
// density screens.
const (
	plotW   = 4.5 * vg.Inch
	plotH   = 2.5 * vg.Inch
	plotDPI = 144
)

// cssPixels is a picture's size in the page for a length.
func cssPixels(l vg.Length) int { return int(math.Round(l.Points() / 72 * 96)) }

var (
	colorBar      = color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff} // values kept by the range
	colorClipped  = color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff} // values the range clips
	colorRange    = color.RGBA{R: 0x22, G: 0x22, B: 0x22, A: 0xff}
	colorReverted = color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff}
	// colorColumns colors FP32, INT8 and accuracy-aware INT8.
	colorColumns = []color.Color{
		color.RGBA{R: 0x8c, G: 0x8c, B: 0x8c, A: 0xff},
		colorBar,
		color.RGBA{R: 0x55, G: 0xa8, B: 0x68, A: 0xff},
	}
)

// savePNG draws p into a w x h PNG file. gonum/plot panics on some
// degenerate inputs; that becomes an error naming the picture.
func savePNG(path string, p *plot.Plot, w, h vg.Length) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing %s: %v", path, r)
		}
	}()
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(plotDPI))
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	sans(&p.Title.TextStyle, 10)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		sans(&a.Label.TextStyle, 9)
		sans(&a.Tick.Label, 8)
	}
	sans(&p.Legend.TextStyle, 8)
	return p
}

// sans sets a text style to the sans-serif Liberation font (embedded in
// gonum/plot) of size points.
func sans(s *text.Style, points float64) {
	s.Font.Typeface, s.Font.Variant = "Liberation", "Sans"
	s.Font.Size = vg.Points(points)
}

// ellipsis shortens s to n runes for a label inside a picture (the page
// shows the whole name).
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// histBars draws a histogram as bars on a log-scale count axis, the bins
// the range clips in their own color.
type histBars struct {
	h      *Histogram
	lo, hi float64
}

func (b histBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for k, n := range b.h.Counts {
		if n == 0 {
			continue
		}
		x0, x1 := b.h.Edges[k], b.h.Edges[k+1]
		clr := colorBar
		if clipped(x0, x1, b.lo, b.hi) {
			clr = colorClipped
		}
		y0, y1 := trY(p.Y.Min), trY(float64(n))
		pts := []vg.Point{{X: trX(x0), Y: y0}, {X: trX(x1), Y: y0}, {X: trX(x1), Y: y1}, {X: trX(x0), Y: y1}}
		c.FillPolygon(clr, c.ClipPolygonXY(pts))
	}
}

// clipped reports whether the range [lo, hi] clips the bin [x0, x1): its
// center lies outside the range by more than a quarter bin. With the edges
// of HistogramEdges, lo and hi are bin centers and their bins count inside.
func clipped(x0, x1, lo, hi float64) bool {
	mid, tol := (x0+x1)/2, (x1-x0)/4
	return mid < lo-tol || mid > hi+tol
}

// histogramPlot is a histogram of a's values with the quantization range
// as two dashed lines.
func histogramPlot(a Activation) (*plot.Plot, error) {
	h := a.Hist
	p := newPlot(ellipsis(a.Tensor, 60))
	p.X.Label.Text = "value"
	p.Y.Label.Text = "count"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.TickerFunc(logTicks)
	var top uint64
	for _, n := range h.Counts {
		top = max(top, n)
	}
	p.Add(histBars{h: h, lo: a.Min, hi: a.Max})
	p.X.Min, p.X.Max = h.Edges[0], h.Edges[len(h.Edges)-1]
	p.Y.Min, p.Y.Max = 0.7, math.Max(10, float64(top)*3)
	for _, x := range []float64{a.Min, a.Max} {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: p.Y.Min}, {X: x, Y: p.Y.Max}})
		if err != nil {
			return nil, err
		}
		l.Color = colorRange
		l.Width = vg.Points(1)
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		p.Add(l)
	}
	// Lines widen the range they cover; keep the histogram's.
	p.X.Min, p.X.Max = h.Edges[0], h.Edges[len(h.Edges)-1]
	p.Y.Min, p.Y.Max = 0.7, math.Max(10, float64(top)*3)
	return p, nil
}

// logTicks labels the powers of ten (1, 10, 100, 1k, 10k, ...) of a log
// count axis.
func logTicks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := 0; math.Pow10(e) <= hi; e++ {
		v := math.Pow10(e)
		if v >= lo {
			ticks = append(ticks, plot.Tick{Value: v, Label: shortCount(v)})
		}
		for m := 2; m < 10; m++ {
			if w := v * float64(m); w >= lo && w <= hi {
				ticks = append(ticks, plot.Tick{Value: w})
			}
		}
	}
	return ticks
}

// shortCount writes a count as 1, 10, 100, 1k, 10k, 100k, 1M, 10M, ...
func shortCount(v float64) string {
	switch {
	case v >= 1e9:
		return strconv.FormatFloat(v/1e9, 'g', -1, 64) + "G"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// maxRanked is how many layers the sensitivity picture shows.
const maxRanked = 20

// sensitivityPlot draws the most sensitive layers as horizontal bars, the
// most sensitive on top, reverted layers in their own color. It returns
// the picture's height.
func sensitivityPlot(aa *pipeline.AccuracyAwareSummary) (*plot.Plot, vg.Length, error) {
	ranked := aa.Ranking[:min(len(aa.Ranking), maxRanked)]
	n := len(ranked)
	reverted := map[string]bool{}
	for _, r := range aa.Reverted {
		reverted[r] = true
	}
	kept, back := make(plotter.Values, n), make(plotter.Values, n)
	names := make([]string, n)
	anyReverted := false
	for i, r := range ranked {
		at := n - 1 - i // most sensitive on top
		names[at] = ellipsis(r.Node, 28)
		if reverted[r.Node] {
			back[at] = r.Sensitivity
			anyReverted = true
		} else {
			kept[at] = r.Sensitivity
		}
	}
	title := "sensitivity of the " + strconv.Itoa(n) + " most sensitive layers"
	if n == len(aa.Ranking) {
		title = "sensitivity of each layer"
	}
	p := newPlot(title)
	p.X.Label.Text = aa.Metric + " recovered with the layer in float"
	barW := vg.Points(9)
	for _, s := range []struct {
		v     plotter.Values
		clr   color.Color
		label string
	}{{kept, colorBar, "kept in INT8"}, {back, colorReverted, "reverted to float"}} {
		if s.label == "reverted to float" && !anyReverted {
			continue
		}
		b, err := plotter.NewBarChart(s.v, barW)
		if err != nil {
			return nil, 0, err
		}
		b.Horizontal = true
		b.Color = s.clr
		b.LineStyle.Width = 0
		p.Add(b)
		p.Legend.Add(s.label, b)
	}
	p.NominalY(names...)
	p.Legend.Top = false
	p.Legend.YOffs = vg.Points(8) // clear of the axis
	h := max(plotH, vg.Inch*0.6+vg.Points(13)*vg.Length(n))
	return p, h, nil
}

// groupedBars draws one group of bars per name, one bar per column with a
// value, labeled with format. The page shows the columns' colors in a key
// above the pictures rather than a legend over the bars.
func groupedBars(p *plot.Plot, names []string, cols []column, value func(column, string) (float64, bool), format func(float64) string) error {
	var used []int
	for ci, c := range cols {
		for _, n := range names {
			if _, ok := value(c, n); ok {
				used = append(used, ci)
				break
			}
		}
	}
	barW := vg.Points(min(40, 200/float64(max(1, len(used)*len(names)))))
	for j, ci := range used {
		c := cols[ci]
		vals := make(plotter.Values, len(names))
		var lab plotter.XYLabels
		for i, n := range names {
			v, ok := value(c, n)
			if !ok {
				continue
			}
			vals[i] = v
			lab.XYs = append(lab.XYs, plotter.XY{X: float64(i), Y: v})
			lab.Labels = append(lab.Labels, format(v))
		}
		b, err := plotter.NewBarChart(vals, barW)
		if err != nil {
			return err
		}
		off := barW * vg.Length(float64(j)-float64(len(used)-1)/2)
		b.Offset = off
		b.Color = c.color
		b.LineStyle.Width = 0
		p.Add(b)
		if len(lab.XYs) > 0 {
			l, err := plotter.NewLabels(lab)
			if err != nil {
				return err
			}
			for k := range l.TextStyle {
				sans(&l.TextStyle[k], 7)
				l.TextStyle[k].XAlign = text.XCenter
			}
			l.Offset = vg.Point{X: off, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	p.Y.Min = math.Min(p.Y.Min, 0)
	p.Y.Max *= 1.12 // room for the labels
	if p.Y.Max <= 0 {
		p.Y.Max = 1
	}
	return nil
}

// metricsPlot compares the columns' metric values.
func metricsPlot(names []string, cols []column) (*plot.Plot, error) {
	p := newPlot("metric")
	err := groupedBars(p, names, cols, func(c column, n string) (float64, bool) {
		v, ok := c.Metrics[n]
		return v, ok && !math.IsNaN(v) && !math.IsInf(v, 0)
	}, func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) })
	return p, err
}

// latencyPlot compares the columns' latencies.
func latencyPlot(cols []column) (*plot.Plot, error) {
	p := newPlot("latency (1 thread, batch 1)")
	p.Y.Label.Text = "ms"
	err := groupedBars(p, []string{""}, cols, func(c column, _ string) (float64, bool) {
		return c.LatencyMs, c.LatencyMs > 0 && !math.IsInf(c.LatencyMs, 0)
	}, func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + " ms" })
	p.HideX()
	return p, err
}
