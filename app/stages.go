package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/outputs"
	"github.com/fleetcal/fleetcal/pipeline"
)

// stageData reports whether a cascade names data for its stages: then each
// stage is calibrated on its own inputs (DESIGN: a stage's data_source
// overrides the engine's).
func stageData(cfg *pipeline.Config) bool {
	return len(cfg.StageData) > 0
}

// quantizeStages quantizes each stage of a cascade as a model of its own,
// on the stage's data_source (the first stage may use the engine's), and
// writes the stages together.
func quantizeStages(ctx context.Context, o QuantizeOptions, cfg *pipeline.Config, warn *warnings, start time.Time) (*Report, error) {
	log := slog.New(warn)
	prog := newProgress(o.Progress)
	rep := &Report{Model: cfg.ModelName(), Config: o.Config, FleetcalVersion: Version,
		StageSeconds: map[string]float64{}, Stages: map[string]*Report{}}
	var stages []*model.Stage
	for i, st := range cfg.Model.Cascade {
		sub := *cfg
		sub.Model = model.Config{Name: st.Name, Model: st.Model, Weights: st.Weights, BaseDir: cfg.Model.BaseDir}
		switch ds := cfg.StageData[st.Name]; {
		case ds != nil:
			sub.Engine.DataSource = ds
		case i > 0:
			return nil, fmt.Errorf("config %s: model.cascade[%d] (%s): no data_source: when a stage names its own calibration data, every stage after the first must", o.Config, i, st.Name)
		}
		j, err := openConfig(ctx, &sub, o.Config, "", o.Workers)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", st.Name, err)
		}
		var srep *Report
		var qm *model.CompressedModel
		stageLog := log.With("stage", st.Name)
		t := time.Now()
		err = j.onFleet(ctx, o.Fleet, stageLog, func(ctx context.Context) error {
			var err error
			srep, qm, err = j.quantize(ctx, o, stageLog, prog, t)
			return err
		})
		j.Close()
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", st.Name, err)
		}
		rep.Stages[st.Name] = srep
		rep.Samples += srep.Samples
		rep.CalibrationSamples += srep.CalibrationSamples
		if srep.NothingQuantized != "" && (i == 0 || rep.NothingQuantized != "") { // every stage so far
			rep.NothingQuantized += fmt.Sprintf("stage %s: %s; ", st.Name, srep.NothingQuantized)
		} else {
			rep.NothingQuantized = ""
		}
		rep.Workers, rep.OnnxRuntimeVersion = srep.Workers, srep.OnnxRuntimeVersion
		for k, v := range srep.StageSeconds {
			rep.StageSeconds[st.Name+"/"+k] = v
		}
		s := *qm.Models()[0]
		s.Name = st.Name
		stages = append(stages, &s)
	}
	rep.NothingQuantized = strings.TrimSuffix(rep.NothingQuantized, "; ")
	return writeOutputs(ctx, o, rep, warn, start, func(set *outputs.Set) error {
		return saveModel(set, rep, model.NewCompressedModel(rep.Model, true, stages...))
	})
}
