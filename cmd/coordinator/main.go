// Command coordinator is fleetcal's front end: it quantizes a model with
// calibration spread over workers, evaluates models and inspects them. Each
// subcommand lives in its own file and registers itself with register; the
// logic lives in library packages.
//
// SIGINT or SIGTERM cancels the command's context: the run stops, its shards
// are purged from the work queue, workers are told the run is gone and the
// temporary folders are removed; the command prints one line
// ("coordinator: interrupted: ...") and exits with 128 + the signal number
// (130 for SIGINT, 143 for SIGTERM). A second signal exits at once, without
// cleaning up.
//
// Test hook: when FLEETCAL_COORDINATOR_TEST_CLEANUP_DELAY holds a duration
// (e.g. "5s"), an interrupted command waits that long after cleaning up
// before it exits. It exists only so that tests can send the second signal
// while the first is being handled; never set it in production.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// envCleanupDelay is the test hook's variable (see the package comment).
const envCleanupDelay = "FLEETCAL_COORDINATOR_TEST_CLEANUP_DELAY"

func main() {
	os.Exit(runWithSignals(os.Args[1:], os.Stdout, os.Stderr, os.Exit))
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
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

// runContext is run under ctx: the commands stop when ctx ends.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
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
	if err := root.ExecuteContext(ctx); err != nil {
		if ctx.Err() != nil {
			// Interrupted: runWithSignals has said so; the error is the
			// cancellation's echo.
			return 1
		}
		fmt.Fprintf(stderr, "coordinator: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// runWithSignals runs args under a context that SIGINT or SIGTERM cancels.
// The first signal prints one line and lets the command stop and clean up;
// the exit code is then 128 + the signal's number. A second signal calls
// exit at once.
func runWithSignals(args []string, stdout, stderr io.Writer, exit func(int)) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var got atomic.Pointer[os.Signal]
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case s := <-sigs:
			got.Store(&s)
			fmt.Fprintf(stderr, "coordinator: interrupted: %s: stopping and cleaning up (%s again exits at once)\n",
				signalName(s), signalName(s))
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(stderr, "coordinator: interrupted again: %s: exiting without cleaning up\n", signalName(s))
			exit(signalCode(s))
		case <-done:
		}
	})
	code := runContext(ctx, args, stdout, stderr)
	if got.Load() != nil {
		if d, err := time.ParseDuration(os.Getenv(envCleanupDelay)); err == nil {
			time.Sleep(d)
		}
	}
	close(done)
	wg.Wait()
	if s := got.Load(); s != nil {
		return signalCode(*s)
	}
	return code
}

// signalCode is the shell's exit status for a command killed by s.
func signalCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// signalName is "SIGINT" or "SIGTERM".
func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
