// Package report writes the calibration report people look at: one
// self-contained HTML page (no external CSS, scripts or fonts; it opens
// offline) with PNG pictures drawn by gonum/plot next to it.
//
//	in := report.Input{Model: "mobilenet", FP32: &fp, INT8: &q, Activations: acts}
//	for i, a := range in.Activations {
//		lo, hi, bins := report.HistogramEdges(a.Min, a.Max) // edges of the histogram to collect
//		...
//	}
//	path, err := report.Write("out", in) // out/report.html, out/report_files/*.png
//
// The page shows a summary (model, samples, metric FP32 vs INT8 with the
// delta, latency and speed-up, time per stage, warnings), which metric was
// used, bar charts of metric and latency, the accuracy-aware search with
// its per-layer sensitivity ranking when that algorithm ran, and one row
// per quantized activation: its range, scale, zero point and type next to
// a histogram of its values with the chosen range drawn on it.
//
// Write replaces the page and its pictures at once: everything is written
// into a temporary folder inside the output folder and renamed into place,
// so a failure leaves the previous page (or none), never half a page. All
// text goes through html/template, so tensor and layer names are escaped.
//
// report holds plain values: it must never import app, the engine, the
// algorithms or anything that runs a model; the caller converts its own
// results into an Input.
package report
