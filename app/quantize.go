package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/fleetcal/fleetcal/algorithms/accuracyaware"
	_ "github.com/fleetcal/fleetcal/algorithms/all" // registers the algorithms
	"github.com/fleetcal/fleetcal/algorithms/minmax"
	_ "github.com/fleetcal/fleetcal/data" // registers the data source types
	"github.com/fleetcal/fleetcal/engine"
	_ "github.com/fleetcal/fleetcal/metric" // registers the built-in metrics
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/outputs"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/report"
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

// reportHistogramSamples bounds the samples the HTML report's histograms
// are collected on.
const reportHistogramSamples = 100

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
	// model is the same, but its INT8 speed and (without saturation_fix)
	// its accuracy are not.
	CPU        engine.CPU            `json:"cpu"`
	WorkerCPUs map[string]engine.CPU `json:"worker_cpus,omitempty"`
	MixedCPUs  bool                  `json:"mixed_cpus,omitempty"`
	Warnings   []string              `json:"warnings,omitempty"`
	// Stages holds each stage's report when a cascade's stages were
	// calibrated on their own data.
	Stages map[string]*Report `json:"stages,omitempty"`
	// HTMLReport is the path of report.html ("" when not written).
	HTMLReport string `json:"html_report,omitempty"`
}

// Evaluation is a model's metric and latency on the config's data.
type Evaluation struct {
	Model   string             `json:"model,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Samples int                `json:"samples"`
	// LatencyMs is the median batch-1 latency in milliseconds with
	// engine.threads intra-op threads, from the alternated measurement of
	// Report.Latency.
	LatencyMs float64 `json:"latency_ms"`
	// LatencyRuns is how many timed inferences LatencyMs is the median of.
	LatencyRuns int `json:"latency_runs"`
}

// Latency is a latency comparison in report.json and evaluate's output:
// Models[0] is the FP32 model, Models[1] (if any) the INT8 one, and
// Speedup[0] the median and spread of the per-round FP32/INT8 ratios.
type Latency struct {
	engine.LatencyComparison
	// Sample is the index of the sample timed.
	Sample int `json:"sample"`
}

// job is what a command works with: the config and what it opened.
type job struct {
	cfg   *pipeline.Config
	model *model.CompressedModel
	// modelConfig is how the config names its model (not --model).
	modelConfig model.Config
	loader      pipeline.DataLoader
	metric      pipeline.Metric
	engine      *engine.Engine
	// requests is the number of parallel inferences the engine runs.
	requests int
	// fleet runs calibration (and the report's histogram pass), once started.
	fleet *fleet
	// warnings found while opening (a capped thread count), for the log.
	warnings []string
}

func (j *job) Close() error {
	if j.fleet != nil {
		j.fleet.stop()
	}
	if j.engine != nil {
		return j.engine.Close()
	}
	return nil
}

// open reads the config, the model (or modelOverride) and the data.
// requests > 0 (a command-line flag) wins over the config's engine.requests;
// without either, one request per CPU core runs.
func open(ctx context.Context, configPath, modelOverride string, requests int) (*job, error) {
	cfg, err := pipeline.LoadConfig(configPath)
	if err != nil {
		return nil, err
	}
	return openConfig(ctx, cfg, configPath, modelOverride, requests)
}

// openConfig opens what cfg names (see open).
func openConfig(ctx context.Context, cfg *pipeline.Config, configPath, modelOverride string, requests int) (*job, error) {
	var err error
	j := &job{cfg: cfg}
	if err := j.checkParallelism(configPath, requests); err != nil {
		return nil, err
	}
	mc := cfg.Model
	mc.Name = cfg.ModelName()
	j.modelConfig = mc
	if modelOverride != "" {
		abs, err := filepath.Abs(modelOverride)
		if err != nil {
			return nil, err
		}
		mc = model.Config{Name: cfg.ModelName(), Model: abs}
	}
	if j.model, err = model.Load(mc); err != nil {
		return nil, err
	}
	if cfg.Engine.DataSource == nil {
		return nil, fmt.Errorf("config %s: engine.data_source is required", configPath)
	}
	var inputs []pipeline.TensorInfo
	for _, v := range model.Inputs(j.model.Models()[0].Proto) {
		inputs = append(inputs, pipeline.TensorInfo{Name: v.Name, DType: pipeline.DType(v.ElemType), Shape: v.Shape})
	}
	if j.loader, err = cfg.Engine.DataSource.Open(ctx, inputs, cfg.Engine.Annotations); err != nil {
		return nil, err
	}
	if cfg.Engine.Metric != nil {
		if j.metric, err = cfg.Engine.Metric.New(); err != nil {
			return nil, fmt.Errorf("config %s: %w", configPath, err)
		}
	}
	threads := max(cfg.Engine.Threads, 1)
	if requests == 0 {
		requests = cfg.Engine.Requests
	}
	if requests == 0 {
		requests = runtime.NumCPU()
	}
	j.requests = requests
	eo := engine.Options{Threads: threads, Requests: requests, SkipInvalidSamples: cfg.Engine.SkipInvalidSamples}
	if j.engine, err = engine.New(j.loader, eo); err != nil {
		return nil, err
	}
	return j, nil
}

// checkParallelism checks engine.threads and the parallel requests
// (--workers when set, else engine.requests) against the machine (see
// engine.CheckThreads and engine.CheckWorkers): too many is an error,
// threads beyond the cores are capped in j.cfg, and both are warned about.
func (j *job) checkParallelism(configPath string, requests int) error {
	threads, warn, err := engine.CheckThreads("engine.threads", j.cfg.Engine.Threads)
	if err != nil {
		return fmt.Errorf("config %s: %w", configPath, err)
	}
	j.cfg.Engine.Threads = threads
	what := "--workers"
	if requests == 0 {
		what, requests = "engine.requests", j.cfg.Engine.Requests
	}
	wwarn, err := engine.CheckWorkers(what, requests)
	if err != nil {
		if what == "engine.requests" {
			return fmt.Errorf("config %s: %w", configPath, err)
		}
		return err
	}
	for _, w := range []string{warn, wwarn} {
		if w != "" {
			j.warnings = append(j.warnings, w)
		}
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
	rep, qm, err := j.quantize(ctx, o, log, prog, start)
	if err != nil {
		return nil, err
	}
	return writeOutputs(ctx, o, rep, warn, start, func(set *outputs.Set) error {
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
}

// outputOptions are the options of o's output set. A folder written by a
// fleetcal that wrote no manifest yet is recognized by its report.json:
// the files it lists, report.json and the HTML report are fleetcal's.
func outputOptions(o QuantizeOptions) outputs.Options {
	opts := outputs.Options{Force: o.Force}
	if _, err := os.Stat(filepath.Join(o.OutputDir, outputs.ManifestName)); err == nil {
		return opts
	}
	b, err := os.ReadFile(filepath.Join(o.OutputDir, "report.json"))
	var earlier Report
	if err != nil || json.Unmarshal(b, &earlier) != nil || earlier.FleetcalVersion == "" {
		return opts
	}
	opts.Earlier = []string{"report.json"}
	for _, f := range earlier.Files {
		opts.Earlier = append(opts.Earlier, filepath.Base(f.Model))
		if f.Weights != "" {
			opts.Earlier = append(opts.Earlier, filepath.Base(f.Weights))
		}
	}
	if earlier.HTMLReport != "" {
		opts.Earlier = append(opts.Earlier, report.PageName, report.FilesName)
	}
	return opts
}

// saveModel saves m into the set's staging folder (model.Save) and lists
// the files, by their final paths, in rep.
func saveModel(set *outputs.Set, rep *Report, m *model.CompressedModel) error {
	files, err := model.Save(m, set.Dir(), rep.Model, false)
	if err != nil {
		return err
	}
	for _, f := range files {
		f.Model = set.Final(f.Model)
		if f.Weights != "" {
			f.Weights = set.Final(f.Weights)
		}
		rep.Files = append(rep.Files, f)
	}
	return nil
}

// writeOutputs writes everything a run outputs as a set (outputs.Set):
// write puts the models (and the HTML report) in the staging folder,
// report.json follows, and the set becomes o.OutputDir's files together.
// On any failure, or when ctx has ended (an interrupt), the output folder
// stays as it was.
func writeOutputs(ctx context.Context, o QuantizeOptions, rep *Report, warn *warnings, start time.Time, write func(*outputs.Set) error) (*Report, error) {
	set, err := outputs.Begin(o.OutputDir, outputOptions(o))
	if err != nil {
		return nil, err
	}
	defer set.Abort()
	if err := write(set); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	rep.Warnings = warn.list()
	rep.StageSeconds["total"] = time.Since(start).Seconds()
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("output: report.json: %w", err)
	}
	if err := outputs.WriteFile(filepath.Join(set.Dir(), "report.json"), append(b, '\n')); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := set.Commit(); err != nil {
		return nil, err
	}
	return rep, nil
}

// quantize evaluates the float model, runs the algorithms on the fleet and
// evaluates the result; nothing is written.
func (j *job) quantize(ctx context.Context, o QuantizeOptions, log *slog.Logger, prog *progress, start time.Time) (*Report, *model.CompressedModel, error) {
	rep := &Report{Model: j.cfg.ModelName(), Config: o.Config, FleetcalVersion: Version,
		OnnxRuntimeVersion: engine.Version(), Samples: j.loader.Len(), Workers: j.requests,
		StageSeconds: map[string]float64{"load": time.Since(start).Seconds()}}
	for _, w := range j.warnings {
		log.Warn(w)
	}
	// Everything that can fail without inference is checked before the
	// first one: the fleet (addresses, NATS), the algorithms' parameters.
	fl, err := startFleet(ctx, j, o.Fleet, j.requests, log)
	if err != nil {
		return nil, nil, err
	}
	j.fleet = fl // stopped by j.Close
	rep.NATS, rep.LocalWorkers = fl.url, fl.local
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
	if mm, _ := quantizerReports(rep.Algorithms); mm != nil {
		rep.CalibrationSamples, rep.NothingQuantized = mm.CalibrationSize, mm.NothingQuantized
	}
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
		log.Warn("the fleet mixes CPUs with and without VNNI: the model is the same, its INT8 speed on each is not", "cpus", rep.WorkerCPUs)
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

// writeHTMLReport collects a histogram of each quantized activation on the
// float model (one pass over the first calibration samples) and writes
// dir/report.html with report.Write.
func (j *job) writeHTMLReport(ctx context.Context, dir string, rep *Report, qm *model.CompressedModel, warn *warnings, prog *progress, start time.Time) (string, error) {
	t := time.Now()
	in := report.Input{Model: rep.Model, Config: rep.Config, FleetcalVersion: rep.FleetcalVersion,
		OnnxRuntimeVersion: rep.OnnxRuntimeVersion, Generated: time.Now(), Samples: rep.Samples, Workers: rep.Workers}
	for _, a := range rep.Algorithms {
		in.Algorithms = append(in.Algorithms, report.Algorithm{Name: a.Name, Seconds: a.Seconds})
	}
	for _, e := range []struct {
		from *Evaluation
		to   **report.Evaluation
	}{{rep.FP32, &in.FP32}, {rep.INT8, &in.INT8}} {
		if e.from != nil {
			*e.to = &report.Evaluation{Metrics: e.from.Metrics, Samples: e.from.Samples, LatencyMs: e.from.LatencyMs}
		}
	}
	mm, aa := quantizerReports(rep.Algorithms)
	if aa != nil {
		in.AccuracyAware = &report.AccuracyAware{Metric: aa.Metric, AnnotationFree: aa.AnnotationFree,
			HigherBetter: aa.HigherBetter, DropType: aa.DropType, MaximalDrop: aa.MaximalDrop, Samples: aa.Samples,
			FP32: aa.FP32, InitialINT8: aa.InitialINT8, Final: aa.Final, InitialDrop: aa.InitialDrop,
			FinalDrop: aa.FinalDrop, Achieved: aa.Achieved, RankingSamples: aa.RankingSamples,
			Reverted: aa.Reverted, QuantizedLayers: aa.QuantizedLayers}
		for _, r := range aa.Ranking {
			in.AccuracyAware.Ranking = append(in.AccuracyAware.Ranking, report.Rank{Node: r.Node, Sensitivity: r.Sensitivity})
		}
	}
	var specs []pipeline.StatSpec
	layout := pipeline.StatsLayout{}
	if mm != nil {
		in.CalibrationSamples, in.Preset, in.FloatOps = mm.CalibrationSize, mm.Preset, mm.FloatOps
		in.RangeEstimator = fmt.Sprintf("min: %s; max: %s", mm.RangeEstimator[0], mm.RangeEstimator[1])
		for _, l := range mm.Layers {
			in.Layers = append(in.Layers, report.Layer{Node: l.Node, Op: l.Op, Weight: l.Weight, Granularity: l.Granularity,
				Channels: l.Channels, MinScale: float64(l.MinScale), MaxScale: float64(l.MaxScale), Int32Bias: l.Bias})
		}
		ranges := map[string][2]float64{}
		for _, a := range mm.Activations {
			if a.SharesWith == "" {
				ranges[a.Tensor] = [2]float64{a.Min, a.Max}
			}
		}
		for _, a := range mm.Activations {
			r := [2]float64{a.Min, a.Max}
			if a.SharesWith != "" {
				r = ranges[a.SharesWith] // the range of the parameters shared
			}
			in.Activations = append(in.Activations, report.Activation{Tensor: a.Tensor, Min: r[0], Max: r[1],
				Scale: float64(a.Scale), ZeroPoint: a.ZeroPoint, Type: a.Type, SharesWith: a.SharesWith})
			lo, hi, bins := report.HistogramEdges(r[0], r[1])
			spec := pipeline.StatSpec{Kind: pipeline.StatHistogram, Lo: lo, Hi: hi, Bins: bins}
			specs = append(specs, spec)
			if !slices.Contains(layout[a.Tensor], spec) {
				layout[a.Tensor] = append(layout[a.Tensor], spec)
			}
		}
	}
	if len(layout) > 0 {
		ref := qm.Reference // the prepared float model the quantizer started from
		if ref == nil {
			ref = j.model
		}
		// The pass runs where calibration ran: on the fleet while it is up.
		var eng pipeline.Engine = j.engine
		if j.fleet != nil {
			eng = j.fleet.engine
		}
		if err := eng.SetModel(ref); err != nil {
			return "", fmt.Errorf("histograms: %w", err)
		}
		subset := make([]int, min(reportHistogramSamples, j.loader.Len()))
		for i := range subset {
			subset[i] = i
		}
		res, err := eng.Predict(ctx, pipeline.PredictOptions{
			StatsLayout: layout,
			Sampler:     pipeline.NewBatchSampler(j.loader.Len(), 1, subset),
			Progress:    func(done, total int) { prog.update("report histograms", done, total) },
		})
		if err != nil {
			return "", fmt.Errorf("histograms: %w", err)
		}
		in.HistogramSamples = res.Samples
		for i, a := range in.Activations {
			h := res.Stats.Hist(a.Tensor, specs[i].Key())
			if h == nil {
				continue
			}
			edges := make([]float64, h.Bins()+1)
			for k := range edges {
				edges[k] = h.Edge(k)
			}
			in.Activations[i].Hist = &report.Histogram{Edges: edges, Counts: h.Counts(),
				Underflow: h.Underflow(), Overflow: h.Overflow(), NaN: h.NaN()}
		}
	}
	rep.StageSeconds["report_histograms"] = time.Since(t).Seconds()
	in.StageSeconds = maps.Clone(rep.StageSeconds)
	in.StageSeconds["total"] = time.Since(start).Seconds()
	in.Warnings = warn.list()
	return report.Write(dir, in)
}

// quantizerReports finds the report of the last MinMaxQuantization run
// (alone or inside DefaultQuantization or AccuracyAwareQuantization) and
// of the accuracy-aware search.
func quantizerReports(algs []pipeline.AlgorithmReport) (mm *minmax.Report, aa *accuracyaware.Report) {
	fromMap := func(d any) {
		if m, ok := d.(map[string]any); ok {
			if r, ok := m[minmax.Name].(minmax.Report); ok {
				mm = &r
			}
		}
	}
	for _, a := range algs {
		switch d := a.Details.(type) {
		case minmax.Report:
			mm = &d
		case accuracyaware.Report:
			aa = &d
			fromMap(d.Base)
		default:
			fromMap(d)
		}
	}
	return mm, aa
}

// evaluate measures m's metric over every sample (when the config has a
// metric) and its latency.
func (j *job) evaluate(ctx context.Context, m *model.CompressedModel, stage string, prog *progress) (*Evaluation, error) {
	if err := j.engine.SetModel(m); err != nil {
		return nil, err
	}
	ev := &Evaluation{}
	if j.metric != nil {
		j.metric.Reset()
		res, err := j.engine.Predict(ctx, pipeline.PredictOptions{
			Metric:   j.metric,
			Sampler:  pipeline.NewBatchSampler(j.loader.Len(), 1, nil),
			Progress: func(done, total int) { prog.update(stage, done, total) },
		})
		if err != nil {
			return nil, err
		}
		ev.Metrics, ev.Samples = res.Metrics, res.Samples
	}
	return ev, nil
}

// latency times the first stage of each model on sample 0, alternated
// (see engine.MeasureLatency), with the config's engine.threads.
func (j *job) latency(ctx context.Context, models ...*model.CompressedModel) (*Latency, error) {
	s, err := j.loader.Item(ctx, 0)
	if err != nil {
		return nil, err
	}
	var bufs [][]byte
	for _, m := range models {
		b, err := model.Marshal(m.Models()[0].Proto)
		if err != nil {
			return nil, err
		}
		bufs = append(bufs, b)
	}
	c, err := engine.MeasureLatency(ctx, bufs, s.Inputs, engine.LatencyOptions{Threads: max(j.cfg.Engine.Threads, 1)})
	if err != nil {
		return nil, err
	}
	return &Latency{LatencyComparison: *c}, nil
}

// warnings passes records to the user's handler and keeps the text of
// every warning for report.json.
type warnings struct {
	next  slog.Handler
	mu    *sync.Mutex
	items *[]string
}

func newWarnings(next slog.Handler) *warnings {
	return &warnings{next: next, mu: &sync.Mutex{}, items: new([]string)}
}

func (w *warnings) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || w.next.Enabled(ctx, l)
}

func (w *warnings) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool { msg += fmt.Sprintf(" %s=%v", a.Key, a.Value); return true })
		w.mu.Lock()
		*w.items = append(*w.items, msg)
		w.mu.Unlock()
	}
	if w.next.Enabled(ctx, r.Level) {
		return w.next.Handle(ctx, r)
	}
	return nil
}

func (w *warnings) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &warnings{next: w.next.WithAttrs(attrs), mu: w.mu, items: w.items}
}

func (w *warnings) WithGroup(name string) slog.Handler {
	return &warnings{next: w.next.WithGroup(name), mu: w.mu, items: w.items}
}

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(*w.items)
}
