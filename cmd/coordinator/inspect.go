package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/fleetcal/fleetcal/model"
)

func init() { register(newInspectCmd) }

func newInspectCmd() *cobra.Command {
	var asJSON, tensors bool
	cmd := &cobra.Command{
		Use:   "inspect MODEL",
		Short: "Show a model's inputs, outputs, opsets, operators, quantizable nodes (and with --tensors every tensor)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := model.LoadFile(args[0])
			if err != nil {
				return err
			}
			r := model.Inspect(p)
			r.File = args[0]
			if tensors {
				r.WithTensors(p)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return r.WriteText(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	cmd.Flags().BoolVar(&tensors, "tensors", false, "list every tensor with its inferred type and shape and the node making it")
	return cmd
}
