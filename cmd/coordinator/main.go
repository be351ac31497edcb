// Command coordinator is fleetcal's front end: it quantizes a model with
// calibration spread over workers, evaluates models and inspects them. Each
// subcommand lives in its own file and registers itself with register; the
// logic lives in library packages.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commands holds the subcommand constructors, added by register from each
// command's file.
var commands []func() *cobra.Command

// register adds a subcommand constructor; call it from an init function.
func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

// newRootCmd builds the command tree afresh (tests run it in-process).
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "coordinator",
		Short:         "Post-training INT8 quantization of ONNX models, calibrated over a fleet of workers",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	return root
}

// run executes the command line args and returns the exit code. An error is
// one line on stderr: "coordinator: <message>".
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "coordinator: internal error: %v\n", oneLine(fmt.Sprint(r)))
			code = 2
		}
	}()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "coordinator: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
