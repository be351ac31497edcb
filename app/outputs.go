package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/outputs"
	"github.com/fleetcal/fleetcal/report"
)

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
