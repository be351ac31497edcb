// Package report writes the calibration report people look at: one
// self-contained HTML page (no external CSS, scripts or fonts; it opens
// offline) with PNG pictures drawn by gonum/plot next to it.
//
// The algorithms' reports say what the page shows of them through
// pipeline.Summarize (each report type implements pipeline.Summarizer);
// Histograms collects the activations' histograms in one statistics pass
// of a pipeline.Engine (the fleet's, or an in-process one):
//
//	in := report.Input{Model: "mobilenet", Summary: pipeline.Summarize(p.Reports()), FP32: &fp, INT8: &q}
//	in.Activations, in.HistogramSamples, err = report.Histograms(ctx, eng, floatModel,
//		in.Quantization.Activations, report.HistogramOptions{DataLen: n, Samples: 100})
//	path, err := report.Write("out", in) // out/report.html, out/report_files/*.png
//
// The page shows a summary (model, samples, metric FP32 vs INT8 with the
// delta, latency and speed-up, time per stage, warnings), which metric was
// used, bar charts of metric and latency, the accuracy-aware search with
// its per-layer sensitivity ranking when that algorithm ran, one row per
// quantized activation: its range, scale, zero point and type next to a
// histogram of its values with the chosen range drawn on it, the layers
// with quantized weights, and the layers left in float with why.
//
// Write replaces the page and its pictures at once: everything is written
// into a temporary folder inside the output folder and renamed into place,
// so a failure leaves the previous page (or none), never half a page. All
// text goes through html/template, so tensor and layer names are escaped.
//
// report is written against the POT API (pipeline) only: it must never
// import app, the algorithms, the engine or the cluster; whoever runs it
// hands it an Engine.
package report
