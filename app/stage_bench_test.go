package app

import (
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/pipeline"
)

// BenchmarkQuantizationStage measures issue 10's ratio like for like: the
// algorithms of a config (its stage of `coordinator quantize`) against one
// plain FP32 pass over the same samples (no statistics; the model the
// stage's statistics pass runs on), on the same fleet: embedded NATS and
// $FLEETCAL_STAGE_WORKERS local workers (default 2), one thread each as the
// config says, the two alternated in every iteration. The config is
// $FLEETCAL_STAGE_CONFIG (default: the Fashion-MNIST example's). It reports
// the medians stage-s and plain-s and the median of the per-iteration
// ratios, ratio; and the same for the CPU seconds of the whole process
// (coordinator, NATS server and local workers), stage-cpu-s, plain-cpu-s
// and cpu-ratio, which a machine shared with other jobs disturbs less than
// wall time.
func BenchmarkQuantizationStage(b *testing.B) {
	cfg := os.Getenv("FLEETCAL_STAGE_CONFIG")
	if cfg == "" {
		cfg = "../examples/fashion-mnist/config.json"
	}
	workers := 2
	if s := os.Getenv("FLEETCAL_STAGE_WORKERS"); s != "" {
		var err error
		if workers, err = strconv.Atoi(s); err != nil || workers < 1 {
			b.Fatalf("FLEETCAL_STAGE_WORKERS=%q: want a positive number", s)
		}
	}
	ctx := b.Context()
	j, err := open(ctx, cfg, "", workers)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	log := slog.New(slog.DiscardHandler)
	fl, stop := runFleet(b, j, FleetOptions{}, log)
	defer stop()
	var sub struct {
		StatSubsetSize *int   `json:"stat_subset_size"`
		ShuffleData    bool   `json:"shuffle_data"`
		Seed           uint64 `json:"seed"`
	}
	if len(j.cfg.Compression.Algorithms) > 0 {
		_ = json.Unmarshal(j.cfg.Compression.Algorithms[0].Params, &sub) // the stage checks them strictly
	}
	size := minmax.DefaultStatSubsetSize
	if sub.StatSubsetSize != nil {
		size = *sub.StatSubsetSize
	}
	idx := minmax.Subset(j.loader.Len(), size, sub.ShuffleData, sub.Seed)
	// As Quantize builds it: with Data, the cost rule (min_macs_per_element)
	// reads the layers' sizes from a sample, as in `coordinator quantize`.
	env := pipeline.AlgorithmEnv{Engine: fl.engine, TargetDevice: j.cfg.Compression.TargetDevice,
		DataLen: j.loader.Len(), Log: log, Metric: j.metric, Data: j.loader, Threads: max(j.cfg.Engine.Threads, 1)}
	var stage, plain, ratio, stageCPU, plainCPU, cpuRatio []float64
	for b.Loop() {
		p, err := createPipeline(j.cfg.Compression.Algorithms, env)
		if err != nil {
			b.Fatal(err)
		}
		t, c := time.Now(), cpuSeconds(b)
		q, err := p.Run(ctx, j.model)
		if err != nil {
			b.Fatal(err)
		}
		stage, stageCPU = append(stage, time.Since(t).Seconds()), append(stageCPU, cpuSeconds(b)-c)
		if q.Reference == nil {
			b.Fatal("the stage's model has no float reference to time a plain pass on")
		}
		t, c = time.Now(), cpuSeconds(b)
		if err := fl.engine.SetModel(ctx, q.Reference); err != nil {
			b.Fatal(err)
		}
		if _, err := fl.engine.Predict(ctx, pipeline.PredictOptions{Sampler: pipeline.NewBatchSampler(j.loader.Len(), 1, idx)}); err != nil {
			b.Fatal(err)
		}
		plain, plainCPU = append(plain, time.Since(t).Seconds()), append(plainCPU, cpuSeconds(b)-c)
		ratio = append(ratio, stage[len(stage)-1]/plain[len(plain)-1])
		cpuRatio = append(cpuRatio, stageCPU[len(stageCPU)-1]/plainCPU[len(plainCPU)-1])
	}
	median := func(v []float64) float64 {
		s := slices.Sorted(slices.Values(v))
		return s[len(s)/2]
	}
	b.ReportMetric(median(stage), "stage-s")
	b.ReportMetric(median(plain), "plain-s")
	b.ReportMetric(median(ratio), "ratio")
	b.ReportMetric(median(stageCPU), "stage-cpu-s")
	b.ReportMetric(median(plainCPU), "plain-cpu-s")
	b.ReportMetric(median(cpuRatio), "cpu-ratio")
	b.ReportMetric(float64(len(idx)), "samples")
}
