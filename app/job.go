package app

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	_ "github.com/fleetcal/fleetcal/data" // registers the data source types
	"github.com/fleetcal/fleetcal/engine"
	_ "github.com/fleetcal/fleetcal/metric" // registers the built-in metrics
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

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
	// loaded is when the job was open, before its fleet started.
	loaded time.Time
}

func (j *job) Close() error {
	if j.fleet != nil {
		j.fleet.close()
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

// evaluate measures m's metric over every sample (when the config has a
// metric) and its latency.
func (j *job) evaluate(ctx context.Context, m *model.CompressedModel, stage string, prog *progress) (*Evaluation, error) {
	if err := j.engine.SetModel(ctx, m); err != nil {
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
// (engine.MeasureModelLatency), with the config's engine.threads.
func (j *job) latency(ctx context.Context, models ...*model.CompressedModel) (*Latency, error) {
	c, err := engine.MeasureModelLatency(ctx, models, j.loader, 0, engine.LatencyOptions{Threads: max(j.cfg.Engine.Threads, 1)})
	if err != nil {
		return nil, err
	}
	return &Latency{LatencyComparison: *c}, nil
}
