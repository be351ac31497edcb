package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
)

// EvaluateOptions are the flags of `coordinator evaluate`.
type EvaluateOptions struct {
	Config string
	// Model, when set, replaces the config's model (e.g. a quantized one).
	Model    string
	Workers  int
	Progress io.Writer
}

// Validate checks the options.
func (o *EvaluateOptions) Validate() error {
	if o.Config == "" {
		return errors.New("evaluate: -c CONFIG is required")
	}
	if o.Workers < 0 {
		return fmt.Errorf("evaluate: --workers %d: want at least 1", o.Workers)
	}
	if _, err := engine.CheckWorkers("--workers", o.Workers); err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	return nil
}

// EvaluationReport is what `coordinator evaluate` prints as JSON.
type EvaluationReport struct {
	Evaluation
	// Latency: the model alone, or with --model the config's model
	// (Models[0]) against the --model one (Models[1]), alternated.
	Latency *Latency `json:"latency"`
	Seconds float64  `json:"seconds"`
	// Warnings: settings adjusted to the machine (a capped engine.threads).
	Warnings []string `json:"warnings,omitempty"`
}

// Evaluate runs the config's metric over every sample of its data with the
// config's model (or o.Model) and measures latency.
func Evaluate(ctx context.Context, o EvaluateOptions) (*EvaluationReport, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	j, err := open(ctx, o.Config, o.Model, o.Workers)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	ev, err := j.evaluate(ctx, j.model, "evaluation", newProgress(o.Progress))
	if err != nil {
		return nil, err
	}
	ev.Model = j.model.Models()[0].Path
	models := []*model.CompressedModel{j.model}
	if o.Model != "" {
		base, err := model.Load(j.modelConfig)
		if err != nil {
			return nil, err
		}
		models = []*model.CompressedModel{base, j.model}
	}
	lat, err := j.latency(ctx, models...)
	if err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	ev.LatencyMs, ev.LatencyRuns = lat.Models[len(lat.Models)-1].MedianMs, lat.Rounds
	return &EvaluationReport{Evaluation: *ev, Latency: lat, Seconds: time.Since(start).Seconds(), Warnings: j.warnings}, nil
}
