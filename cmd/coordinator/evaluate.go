package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/fleetcal/fleetcal/app"
)

func init() { register(newEvaluateCmd) }

func newEvaluateCmd() *cobra.Command {
	var o app.EvaluateOptions
	cmd := &cobra.Command{
		Use:   "evaluate -c CONFIG [--model FILE]",
		Short: "Run a model over the config's data: metric and latency, as JSON",
		Long: `Run a model over the config's data: metric and latency, as JSON.

SIGINT or SIGTERM stops it: exit 130 (143 for SIGTERM); a second signal exits at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = cmd.ErrOrStderr()
			if err := o.Validate(); err != nil {
				return err
			}
			rep, err := app.Evaluate(cmd.Context(), o)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Config, "config", "c", "", "POT config file (JSON or YAML)")
	f.StringVar(&o.Model, "model", "", "model to evaluate instead of the config's (e.g. a quantized one)")
	f.IntVar(&o.Workers, "workers", 0, "parallel inference workers (default: one per CPU core; at most 4 per core)")
	return cmd
}
