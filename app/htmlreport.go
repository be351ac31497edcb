package app

import (
	"context"
	"maps"
	"time"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/report"
)

// reportHistogramSamples bounds the samples the HTML report's histograms
// are collected on.
const reportHistogramSamples = 100

// writeHTMLReport writes dir/report.html (report.Write) from rep and the
// algorithms' summary, with a histogram of each quantized activation
// collected on the float model over the first calibration samples
// (report.Histograms), where calibration ran.
func (j *job) writeHTMLReport(ctx context.Context, dir string, rep *Report, qm *model.CompressedModel, warn *warnings, prog *progress, start time.Time) (string, error) {
	t := time.Now()
	in := report.Input{Model: rep.Model, Config: rep.Config, FleetcalVersion: rep.FleetcalVersion,
		OnnxRuntimeVersion: rep.OnnxRuntimeVersion, Generated: time.Now(), Samples: rep.Samples, Workers: rep.Workers,
		Summary: pipeline.Summarize(rep.Algorithms), Algorithms: rep.Algorithms, FP32: rep.FP32, INT8: rep.INT8}
	if q := in.Quantization; q != nil {
		ref := qm.Reference // the prepared float model the quantizer started from
		if ref == nil {
			ref = j.model
		}
		// The pass runs where calibration ran: on the fleet while it is up.
		var eng pipeline.Engine = j.engine
		if j.fleet != nil {
			eng = j.fleet.engine
		}
		var err error
		in.Activations, in.HistogramSamples, err = report.Histograms(ctx, eng, ref, q.Activations, report.HistogramOptions{
			DataLen: j.loader.Len(), Samples: reportHistogramSamples,
			Progress: func(done, total int) { prog.update("report histograms", done, total) },
		})
		if err != nil {
			return "", err
		}
	}
	rep.StageSeconds["report_histograms"] = time.Since(t).Seconds()
	in.StageSeconds = maps.Clone(rep.StageSeconds)
	in.StageSeconds["total"] = time.Since(start).Seconds()
	in.Warnings = warn.list()
	return report.Write(dir, in)
}
