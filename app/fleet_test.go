package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/internal/testfleet"
)

// fleetBinaries returns the real processes of the fleet tests, built once
// per test binary (internal/testfleet): nats-server, from the module
// go.mod pins, and the worker command.
func fleetBinaries(t *testing.T) (natsServer, worker string) {
	t.Helper()
	dir := testfleet.Binaries(t)
	return filepath.Join(dir, "nats-server"), filepath.Join(dir, "worker")
}

// stopProcess signals p and waits for it to exit, failing the test if it
// still runs after timeout.
func stopProcess(t *testing.T, p *testfleet.Process, sig syscall.Signal, timeout time.Duration) {
	t.Helper()
	if err := p.Stop(sig, timeout); errors.Is(err, testfleet.ErrStillRunning) {
		t.Fatal(err)
	}
}

// fleetLeftovers lists what a failed run must not leave in dir: a model
// or temporary files.
func fleetLeftovers(dir string) []string {
	var bad []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") || strings.HasSuffix(e.Name(), ".onnx") || strings.HasSuffix(e.Name(), ".data") {
			bad = append(bad, e.Name())
		}
	}
	return bad
}

// TestNATSServerRestart runs a quantize against an external nats-server
// (JetStream, file storage) served by a worker process, stops the server
// in the middle of the statistics pass and starts it again on the same
// port and store. The run must either finish with the model of the
// fault-free in-process run, or fail within a bounded time with an error
// naming NATS; either way the output folder holds no half-written model.
func TestNATSServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server and a worker")
	}
	t.Setenv(cluster.EnvSecret, appTestSecret) // the workers inherit it
	natsBin, workerBin := fleetBinaries(t)
	// 48 samples, one statistics pass (MinMaxQuantization: no bias
	// correction), in shards of 4.
	config := fixtureRun(t, "convnet_op13.onnx", 48, `{"preset": "performance", "stat_subset_size": 48}`, func(dir string) {
		path := filepath.Join(dir, "config.json")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, bytes.Replace(b, []byte(`"DefaultQuantization"`), []byte(`"MinMaxQuantization"`), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	})

	want := inProcessModel(t, config)

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			addr, store, metrics := testfleet.FreeAddr(t), t.TempDir(), testfleet.FreeAddr(t)
			url := "nats://" + addr
			srv := testfleet.StartNATS(t, natsBin, addr, store)
			// 60ms per sample: about 3 s of statistics on one worker.
			testfleet.Command(t, "worker", []string{"FLEETCAL_WORKER_TEST_SAMPLE_DELAY=60ms"}, workerBin,
				"--nats", url, "--name", "w1", "--metrics-addr", metrics, "--log-level", "debug")

			out := filepath.Join(t.TempDir(), "out")
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			type result struct {
				rep *Report
				err error
			}
			done := make(chan result, 1)
			go func() {
				rep, err := Quantize(ctx, QuantizeOptions{Config: config, OutputDir: out, SkipEvaluation: true,
					Fleet: FleetOptions{NATS: url, ShardSize: 4}})
				done <- result{rep, err}
			}()

			// Mid-pass: the worker has finished a shard or two of twelve.
			testfleet.WaitFor(t, 20*time.Second, "condition", func() error {
				v, err := testfleet.Scrape(t.Context(), metrics, "fleetcal_worker_shards_done_total")
				if err != nil || v == "0" {
					return fmt.Errorf("no shard done yet (%q, %v)", v, err)
				}
				return nil
			})
			stopProcess(t, srv, sig, 10*time.Second)
			restarted := time.Now()
			testfleet.StartNATS(t, natsBin, addr, store)

			// Bounded: the rest of the pass (about 3 s), the clients'
			// reconnection (1 s apart), the coordinator's new results
			// watcher and, after SIGKILL, the worker's wait for the
			// acknowledgement the old server never confirms (5 s). Measured
			// on 2 busy cores: 3.6 s after SIGTERM, 8.8 s after SIGKILL.
			const bound = 20 * time.Second
			var res result
			select {
			case res = <-done:
			case <-time.After(bound):
				cancel()
				<-done
				t.Fatalf("quantize still running %s after the NATS server restarted", bound)
			}
			t.Logf("quantize returned %s after the restart: %v", time.Since(restarted).Round(time.Millisecond), res.err)
			if res.err != nil {
				if !strings.Contains(res.err.Error(), "NATS") && !strings.Contains(res.err.Error(), "nats") {
					t.Errorf("error does not name NATS: %v", res.err)
				}
				if bad := fleetLeftovers(out); len(bad) > 0 {
					t.Errorf("failed run left %v in %s", bad, out)
				}
				return
			}
			got, err := os.ReadFile(filepath.Join(out, "net.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("model after the restart (%d bytes) differs from the fault-free one (%d bytes)", len(got), len(want))
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp") {
					t.Errorf("temporary file %s left in %s", e.Name(), out)
				}
			}
		})
	}
}

// TestRunBeside: a failing actor fails the run with its error and ends
// do's context; once do has succeeded, an actor failing as it stops does
// not.
func TestRunBeside(t *testing.T) {
	boom := errors.New("worker died")
	ended := 0
	end := func() { ended++ }

	err := runBeside(t.Context(), func(ctx context.Context) error { return boom },
		func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, end)
	if !errors.Is(err, boom) {
		t.Errorf("actor failed during do: run returned %v, want %v", err, boom)
	}

	doneDo := make(chan struct{})
	err = runBeside(t.Context(), func(ctx context.Context) error { <-doneDo; return boom },
		func(ctx context.Context) error { close(doneDo); return nil }, end)
	if err != nil {
		t.Errorf("actor failed after do succeeded: run returned %v, want nil", err)
	}

	bad := errors.New("do failed")
	err = runBeside(t.Context(), func(ctx context.Context) error { <-ctx.Done(); return nil },
		func(ctx context.Context) error { return bad }, end)
	if !errors.Is(err, bad) {
		t.Errorf("do failed: run returned %v, want %v", err, bad)
	}
	if ended != 3 {
		t.Errorf("end ran %d times, want once per run (3)", ended)
	}
}
