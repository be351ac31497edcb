package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/internal/testfleet"
)

// binaries builds cmd/coordinator, cmd/worker and the nats-server go.mod
// pins (once per test binary) and returns their folder.
func binaries(t *testing.T) string { return testfleet.Binaries(t) }

// proc is a binary running in a namespace.
type proc = testfleet.Process

// startIn runs bin in namespace ns (ip netns exec executes it in place, so
// the process is bin itself). t's cleanup kills it if it still runs and
// prints its output if the test failed.
func startIn(t *testing.T, ns, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return testfleet.Start(t, name, cmd)
}

// stop sends SIGTERM and waits, killing the process after 30 s.
func stop(t *testing.T, p *proc) {
	t.Helper()
	if err := p.Stop(syscall.SIGTERM, 30*time.Second); errors.Is(err, testfleet.ErrStillRunning) {
		t.Error(err)
	}
}

// waitFor polls f every 20 ms until it returns nil, failing the test after
// d with f's last error.
func waitFor(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	testfleet.WaitFor(t, d, what, f)
}

// run runs a command to its end within d and returns its combined output.
func run(ctx context.Context, d time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %s: %w", d, ctx.Err())
	}
	return string(out), err
}
