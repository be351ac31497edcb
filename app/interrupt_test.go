package app

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/internal/testfleet"
)

// leftInTemp lists what a run left in its TMPDIR. ONNX Runtime's own
// telemetry files (mat-debug-<pid>.log, .ses: its 1DS SDK writes them in
// TMPDIR whatever fleetcal does) are not fleetcal's and are ignored.
func leftInTemp(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (n == ".ses" || strings.HasPrefix(n, "mat-debug-")) {
			continue
		}
		left = append(left, n)
	}
	return left
}

// waitExit waits for p to exit within bound and returns its exit code and
// how long it took.
func waitExit(t *testing.T, p *testfleet.Process, bound time.Duration) (code int, took time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case <-p.Exited:
	case <-time.After(bound):
		t.Fatalf("%s still runs %s after the signal", p.Name, bound)
	}
	return p.Cmd.ProcessState.ExitCode(), time.Since(start)
}

// interrupt sends sig to a coordinator and checks how it ends: within 2 s,
// with 128 + sig, one line saying so, nothing left in its TMPDIR temp and
// nothing written in out (when not "").
func interrupt(t *testing.T, coord *testfleet.Process, sig syscall.Signal, temp, out string) {
	t.Helper()
	if err := coord.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	code, took := waitExit(t, coord, 2*time.Second)
	t.Logf("coordinator exited %d %s after %s", code, took.Round(time.Millisecond), sig)
	if want := 128 + int(sig); code != want {
		t.Errorf("exit code %d, want %d (%s)", code, want, sig)
	}
	name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig]
	checkInterruptedOutput(t, coord.Out.String(), name)
	if left := leftInTemp(t, temp); len(left) > 0 {
		t.Errorf("the interrupted coordinator left %v in its TMPDIR", left)
	}
	if entries, _ := os.ReadDir(out); out != "" && len(entries) > 0 {
		t.Errorf("the interrupted run wrote %d files in %s", len(entries), out)
	}
}

// checkInterruptedOutput checks the one line an interrupted coordinator
// prints ("coordinator: interrupted: SIG...") and that nothing else is an
// error line.
func checkInterruptedOutput(t *testing.T, out, sig string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "coordinator: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "coordinator: interrupted: "+sig) {
		t.Errorf("want one line 'coordinator: interrupted: %s ...', got %q", sig, lines)
	}
	if strings.Contains(out, "level=ERROR") || strings.Contains(out, "level=WARN") {
		t.Errorf("an interrupt logs errors or warnings:\n%s", out)
	}
}

// jetStreamDepth returns the messages in the shard stream and the
// consumer's pending and unacknowledged counts, from the nats-server
// monitoring endpoint at addr.
func jetStreamDepth(addr string) (messages, pending, ackPending uint64, err error) {
	resp, err := http.Get("http://" + addr + "/jsz?streams=true&consumers=true")
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					Messages uint64 `json:"messages"`
				} `json:"state"`
				Consumers []struct {
					Name       string `json:"name"`
					NumPending uint64 `json:"num_pending"`
					AckPending uint64 `json:"num_ack_pending"`
				} `json:"consumer_detail"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return 0, 0, 0, err
	}
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			if s.Name != "FLEETCAL_SHARDS" {
				continue
			}
			for _, c := range s.Consumers {
				pending += c.NumPending
				ackPending += c.AckPending
			}
			return s.State.Messages, pending, ackPending, nil
		}
	}
	return 0, 0, 0, fmt.Errorf("no stream FLEETCAL_SHARDS at %s", addr)
}

// TestInterruptExternalFleet interrupts `coordinator quantize --ship-data`
// (the built binary) in the middle of calibration on an external
// nats-server served by a slow worker process: the coordinator exits
// within 2 s with 130 and one line, leaves nothing in its TMPDIR, no shard
// on the work queue, the worker drops the run's downloaded data, and a
// worker started afterwards computes nothing and removes the download
// folder of the first worker, killed.
func TestInterruptExternalFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server, a worker and the coordinator")
	}
	natsBin, workerBin := fleetBinaries(t)
	coordinator := filepath.Join(testfleet.Binaries(t), "coordinator")
	t.Setenv(cluster.EnvSecret, appTestSecret) // the coordinator and the workers inherit it
	config := fixtureRun(t, "convnet_op13.onnx", 64, `{"preset": "performance", "stat_subset_size": 64}`, nil)

	addr, monitor, metrics := testfleet.FreeAddr(t), testfleet.FreeAddr(t), testfleet.FreeAddr(t)
	_, mport, _ := net.SplitHostPort(monitor)
	testfleet.StartNATS(t, natsBin, addr, t.TempDir(), "-m", mport)
	url := "nats://" + addr
	// 100ms per sample, shards of 4: 6 s of statistics on one worker.
	workerTemp := t.TempDir()
	w1 := testfleet.Command(t, "worker", []string{"FLEETCAL_WORKER_TEST_SAMPLE_DELAY=100ms", "TMPDIR=" + workerTemp}, workerBin,
		"--nats", url, "--name", "w1", "--metrics-addr", metrics, "--log-level", "debug")

	temp, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	coord := testfleet.Command(t, "coordinator", []string{"TMPDIR=" + temp}, coordinator,
		"quantize", "-c", config, "-o", out, "--nats", url, "--shard-size", "4", "--ship-data", "--skip-eval")
	testfleet.WaitFor(t, 30*time.Second, "condition", func() error {
		v, err := testfleet.Scrape(t.Context(), metrics, "fleetcal_worker_shards_done_total")
		if err != nil || v == "0" {
			return fmt.Errorf("no shard done yet (%q, %v)", v, err)
		}
		return nil
	})
	if dl, _ := filepath.Glob(filepath.Join(workerTemp, "fleetcal-downloads-*", "run-*")); len(dl) != 1 {
		t.Fatalf("the worker's downloads of the run: %v, want one folder", dl)
	}
	interrupt(t, coord, syscall.SIGINT, temp, out)
	msgs, pending, ackPending, err := jetStreamDepth(monitor)
	if err != nil {
		t.Fatal(err)
	}
	if msgs+pending+ackPending != 0 {
		t.Errorf("after the interrupt the work queue holds %d shards (%d pending, %d unacknowledged)", msgs, pending, ackPending)
	}
	// The worker was told: it drops the run's downloaded data.
	testfleet.WaitFor(t, 5*time.Second, "condition", func() error {
		if dl, _ := filepath.Glob(filepath.Join(workerTemp, "fleetcal-downloads-*", "run-*")); len(dl) > 0 {
			return fmt.Errorf("the worker keeps the data of the dead run: %v", dl)
		}
		return nil
	})

	// The worker is killed: its (empty) download folder stays, until the
	// next worker starting with the same TMPDIR removes it.
	stopProcess(t, w1, syscall.SIGKILL, 5*time.Second)
	if dl, _ := filepath.Glob(filepath.Join(workerTemp, "fleetcal-downloads-*")); len(dl) != 1 {
		t.Fatalf("download folders of the killed worker: %v, want one", dl)
	}

	// A worker that joins later finds nothing of the dead run to compute.
	metrics2 := testfleet.FreeAddr(t)
	late := testfleet.Command(t, "late worker", []string{"TMPDIR=" + workerTemp}, workerBin,
		"--nats", url, "--name", "w2", "--metrics-addr", metrics2, "--log-level", "debug")
	testfleet.WaitFor(t, 10*time.Second, "condition", func() error {
		if !strings.Contains(late.Out.String(), "serving shards") {
			return fmt.Errorf("the late worker is not serving yet")
		}
		return nil
	})
	if left := leftInTemp(t, workerTemp); len(left) > 0 {
		t.Errorf("the late worker left the download folder of the killed one: %v", left)
	}
	time.Sleep(500 * time.Millisecond) // a Fetch or two: what it would pull, it has pulled
	for _, name := range []string{"fleetcal_worker_shards_done_total", "fleetcal_worker_shards_in_flight"} {
		if v, err := testfleet.Scrape(t.Context(), metrics2, name); err != nil || v != "0" {
			t.Errorf("late worker: %s = %q (%v), want 0", name, v, err)
		}
	}
}

// TestInterruptEmbedded interrupts `coordinator quantize --ship-data` on
// its embedded NATS server and local workers while they calibrate (a local
// worker has downloaded the data): exit within 2 s with 143 after SIGTERM,
// one line, and the NATS store and the download folders gone from TMPDIR.
// A second signal while the first is handled (slowed down by the test
// hook) exits at once. `evaluate` stops on SIGINT the same way.
func TestInterruptEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the coordinator")
	}
	coordinator := filepath.Join(testfleet.Binaries(t), "coordinator")
	config := exampleConfig(t, `{"preset": "performance", "stat_subset_size": 1000}`)

	started := func(temp string) func() error {
		return func() error {
			nats, _ := filepath.Glob(filepath.Join(temp, "fleetcal-nats-*"))
			dl, _ := filepath.Glob(filepath.Join(temp, "fleetcal-downloads-*"))
			if len(nats) == 0 || len(dl) == 0 {
				return fmt.Errorf("calibration has not started: NATS stores %v, downloads %v", nats, dl)
			}
			return nil
		}
	}
	t.Run("SIGTERM", func(t *testing.T) {
		temp, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
		coord := testfleet.Command(t, "coordinator", []string{"TMPDIR=" + temp}, coordinator,
			"quantize", "-c", config, "-o", out, "--workers", "1", "--ship-data", "--skip-eval")
		testfleet.WaitEvery(t, 30*time.Second, 2*time.Millisecond, "the coordinator started", started(temp))
		interrupt(t, coord, syscall.SIGTERM, temp, out)
	})
	t.Run("second signal", func(t *testing.T) {
		temp, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
		coord := testfleet.Command(t, "coordinator", []string{"TMPDIR=" + temp, "FLEETCAL_COORDINATOR_TEST_CLEANUP_DELAY=60s"}, coordinator,
			"quantize", "-c", config, "-o", out, "--workers", "1", "--ship-data", "--skip-eval")
		testfleet.WaitEvery(t, 30*time.Second, 2*time.Millisecond, "the coordinator started", started(temp))
		if err := coord.Cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		testfleet.WaitFor(t, 5*time.Second, "condition", func() error {
			if !strings.Contains(coord.Out.String(), "coordinator: interrupted: SIGINT") {
				return fmt.Errorf("no message after the first SIGINT")
			}
			return nil
		})
		select {
		case <-coord.Exited:
			t.Fatalf("the coordinator exited before the second signal (the test hook did not slow it down)")
		case <-time.After(100 * time.Millisecond):
		}
		if err := coord.Cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		code, took := waitExit(t, coord, time.Second)
		t.Logf("coordinator exited %d %s after the second SIGINT", code, took.Round(time.Millisecond))
		if code != 130 || !strings.Contains(coord.Out.String(), "coordinator: interrupted again: SIGINT") {
			t.Errorf("exit code %d, output:\n%s\nwant 130 and 'interrupted again'", code, coord.Out.String())
		}
	})
	t.Run("evaluate", func(t *testing.T) {
		temp := t.TempDir()
		coord := testfleet.Command(t, "coordinator", []string{"TMPDIR=" + temp}, coordinator,
			"evaluate", "-c", "../examples/fashion-mnist/eval-config.json", "--workers", "1")
		// Evaluating the 10,000 test images takes about 0.7 s on one worker
		// (measured: its "seconds"), after the process has started and
		// loaded ONNX Runtime and the images: 300 ms lands in the run.
		time.Sleep(300 * time.Millisecond)
		interrupt(t, coord, syscall.SIGINT, temp, "")
	})
}
