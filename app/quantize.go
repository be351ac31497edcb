package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	_ "github.com/fleetcal/fleetcal/algorithms/all" // registers the algorithms
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/outputs"
	"github.com/fleetcal/fleetcal/pipeline"
)

// Version is fleetcal's version, printed by `coordinator version`.
const Version = "0.1.0"

// QuantizeOptions are the flags of `coordinator quantize`.
type QuantizeOptions struct {
	Config    string
	OutputDir string
	// Workers is the number of parallel inference requests (default: the
	// config's engine.requests, else one per CPU core).
	Workers int
	// Progress receives progress bars or lines (nil: none).
	Progress io.Writer
	Log      *slog.Logger
	// SkipEvaluation skips the FP32/INT8 metric and latency comparison.
	SkipEvaluation bool
	// Fleet says where calibration runs.
	Fleet FleetOptions
	// ReportHTML writes OUTPUT_DIR/report.html (package report) with a
	// histogram of each quantized activation, collected on the float model
	// over the first reportHistogramSamples calibration samples.
	ReportHTML bool
	// Force writes into an OutputDir that holds files fleetcal did not
	// write (they are kept; files of the same names are replaced).
	Force bool
}

// Validate checks the options before anything runs.
func (o *QuantizeOptions) Validate() error {
	if o.Config == "" {
		return errors.New("quantize: -c CONFIG is required")
	}
	if o.OutputDir == "" {
		return errors.New("quantize: -o OUTPUT_DIR is required")
	}
	if o.Workers < 0 {
		return fmt.Errorf("quantize: --workers %d: want at least 1", o.Workers)
	}
	if _, err := engine.CheckWorkers("--workers", o.Workers); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	if o.Fleet.NATS != "" && o.Fleet.Listen != "" {
		return errors.New("quantize: --listen starts an embedded server; it does not go with --nats")
	}
	if o.Fleet.ShardSize < 0 {
		return fmt.Errorf("quantize: --shard-size %d: want at least 1", o.Fleet.ShardSize)
	}
	if err := o.Fleet.Validate(); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Quantize runs `coordinator quantize`: calibration, the algorithms, and
// OUTPUT_DIR/<model_name>.onnx plus report.json (and report.html), written
// as a set (see writeOutputs).
func Quantize(ctx context.Context, o QuantizeOptions) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	cfg, err := pipeline.LoadConfig(o.Config)
	if err != nil {
		return nil, err
	}
	// Refused before any work (the set checks again when it is written).
	if err := outputs.Check(o.OutputDir, outputOptions(o)); err != nil {
		return nil, err
	}
	warn := newWarnings(o.Log.Handler())
	log := slog.New(warn)
	if err := checkBeforeRun(o, cfg, log); err != nil {
		return nil, err
	}
	if stageData(cfg) {
		return quantizeStages(ctx, o, cfg, warn, start)
	}
	prog := newProgress(o.Progress)
	j, err := openConfig(ctx, cfg, o.Config, "", o.Workers)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	var out *Report
	err = j.onFleet(ctx, o.Fleet, log, func(ctx context.Context) error {
		rep, qm, err := j.quantize(ctx, o, log, prog, start)
		if err != nil {
			return err
		}
		out, err = writeOutputs(ctx, o, rep, warn, start, func(set *outputs.Set) error {
			if err := saveModel(set, rep, qm); err != nil {
				return err
			}
			if o.ReportHTML {
				// The page is an extra: a failure is a warning, not a lost model.
				page, err := j.writeHTMLReport(ctx, set.Dir(), rep, qm, warn, prog, start)
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					log.Warn("the HTML report was not written", "err", err)
				} else {
					rep.HTMLReport = set.Final(page)
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// quantize evaluates the float model, runs the algorithms on j's fleet
// (started: see onFleet) and evaluates the result; nothing is written.
func (j *job) quantize(ctx context.Context, o QuantizeOptions, log *slog.Logger, prog *progress, start time.Time) (*Report, *model.CompressedModel, error) {
	rep := &Report{Model: j.cfg.ModelName(), Config: o.Config, FleetcalVersion: Version,
		OnnxRuntimeVersion: engine.Version(), Samples: j.loader.Len(), Workers: j.requests,
		StageSeconds: map[string]float64{"load": j.loaded.Sub(start).Seconds()}}
	for _, w := range j.warnings {
		log.Warn(w)
	}
	fl := j.fleet
	rep.NATS, rep.LocalWorkers = fl.url, fl.local
	// Everything that can fail without inference is checked before the
	// first one: the fleet (addresses, NATS: onFleet), the algorithms'
	// parameters.
	env := pipeline.AlgorithmEnv{Engine: fl.engine, TargetDevice: j.cfg.Compression.TargetDevice,
		DataLen: j.loader.Len(), Log: log, Progress: prog.update, Metric: j.metric,
		Data: j.loader, Threads: max(j.cfg.Engine.Threads, 1)}
	p, err := createPipeline(j.cfg.Compression.Algorithms, env)
	if err != nil {
		return nil, nil, err
	}

	evaluate := !o.SkipEvaluation && !j.model.IsCascade()
	if evaluate {
		t := time.Now()
		if rep.FP32, err = j.evaluate(ctx, j.model, "FP32 evaluation", prog); err != nil {
			return nil, nil, fmt.Errorf("FP32 evaluation: %w", err)
		}
		rep.StageSeconds["fp32_evaluation"] = time.Since(t).Seconds()
	}

	t := time.Now()
	qm, err := p.Run(ctx, j.model)
	if err != nil {
		return nil, nil, err
	}
	rep.Algorithms = p.Reports()
	rep.summarize()
	rep.StageSeconds["quantization"] = time.Since(t).Seconds()
	rep.CPU = engine.HostCPU()
	if ce, ok := fl.engine.(interface{ WorkerCPUs() map[string]engine.CPU }); ok {
		rep.WorkerCPUs = ce.WorkerCPUs()
	}
	vnni := map[bool]bool{}
	for _, c := range rep.WorkerCPUs {
		vnni[c.VNNI] = true
	}
	if rep.MixedCPUs = len(vnni) > 1; rep.MixedCPUs {
		log.Warn("the fleet mixes CPUs with and without VNNI: the INT8 model's speed on each differs", "cpus", rep.WorkerCPUs)
	}
	if rep.MixedVectorUnits = mixedVectorUnits(rep.WorkerCPUs); rep.MixedVectorUnits {
		log.Warn("the fleet mixes CPUs with different vector units (AVX-512, AVX2): ONNX Runtime's float kernels round differently on them, so the statistics, and the model, may differ in their last bits from a run on one kind of CPU; calibrate on workers of one kind for a reproducible model", "cpus", rep.WorkerCPUs)
	}

	if evaluate {
		t := time.Now()
		if rep.INT8, err = j.evaluate(ctx, qm, "INT8 evaluation", prog); err != nil {
			return nil, nil, fmt.Errorf("INT8 evaluation: %w", err)
		}
		if rep.Latency, err = j.latency(ctx, j.model, qm); err != nil {
			return nil, nil, fmt.Errorf("latency: %w", err)
		}
		rep.FP32.LatencyMs, rep.FP32.LatencyRuns = rep.Latency.Models[0].MedianMs, rep.Latency.Rounds
		rep.INT8.LatencyMs, rep.INT8.LatencyRuns = rep.Latency.Models[1].MedianMs, rep.Latency.Rounds
		if sp := rep.Latency.Speedup[0]; sp.P90Ms < 1 {
			// Slower in 90% of the alternated rounds: say so, with the CPU.
			log.Warn(fmt.Sprintf("the INT8 model is slower than FP32 on %s: %.2fx (10th-90th percentile %.2f-%.2f); ignored.scope or ignored.operations can keep slow layers in float",
				rep.CPU.Model, sp.MedianMs, sp.P10Ms, sp.P90Ms))
		}
		rep.StageSeconds["int8_evaluation"] = time.Since(t).Seconds()
	}
	return rep, qm, nil
}
