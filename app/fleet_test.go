package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/cluster"
)

// fleetBinaries builds the real processes of the fleet tests into a
// temporary folder: nats-server, from the module go.mod pins, and the
// worker command.
func fleetBinaries(t *testing.T) (natsServer, worker string) {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range []string{"github.com/nats-io/nats-server/v2", "../cmd/worker"} {
		if out, err := exec.Command("go", "build", "-o", dir+"/", pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return filepath.Join(dir, "nats-server"), filepath.Join(dir, "worker")
}

// fleetCheckFor polls fn every interval until it returns nil, failing the test
// with fn's last error after timeout.
func fleetCheckFor(t *testing.T, timeout, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// fleetFreeAddr returns a loopback address nobody listens on (now).
func fleetFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fleetProcess is a child process whose output is kept for failure messages.
type fleetProcess struct {
	name   string
	cmd    *exec.Cmd
	out    *fleetBuffer
	exited chan struct{}
	err    error
}

type fleetBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *fleetBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *fleetBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fleetStart runs bin with args; the test's cleanup kills it if it still runs.
func fleetStart(t *testing.T, name string, env []string, bin string, args ...string) *fleetProcess {
	t.Helper()
	p := &fleetProcess{name: name, cmd: exec.Command(bin, args...), out: &fleetBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// stop signals the process and waits for it to exit.
func (p *fleetProcess) stop(t *testing.T, sig syscall.Signal, timeout time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("%s still runs %s after %s", p.name, timeout, sig)
	}
}

// fleetStartNATS runs nats-server with JetStream on addr, storing in dir
// (and extra arguments), and waits until it accepts connections.
func fleetStartNATS(t *testing.T, bin, addr, dir string, extra ...string) *fleetProcess {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p := fleetStart(t, "nats-server", nil, bin, append([]string{"-js", "-sd", dir, "-a", host, "-p", port}, extra...)...)
	fleetCheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		select {
		case <-p.exited:
			return fmt.Errorf("nats-server exited: %v\n%s", p.err, p.out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return p
}

// fleetScrape returns the value of a metric without labels served at addr.
func fleetScrape(addr, name string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in the metrics of %s", name, addr)
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
			addr, store, metrics := fleetFreeAddr(t), t.TempDir(), fleetFreeAddr(t)
			url := "nats://" + addr
			srv := fleetStartNATS(t, natsBin, addr, store)
			// 60ms per sample: about 3 s of statistics on one worker.
			fleetStart(t, "worker", []string{"FLEETCAL_WORKER_TEST_SAMPLE_DELAY=60ms"}, workerBin,
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
			fleetCheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
				v, err := fleetScrape(metrics, "fleetcal_worker_shards_done_total")
				if err != nil || v == "0" {
					return fmt.Errorf("no shard done yet (%q, %v)", v, err)
				}
				return nil
			})
			srv.stop(t, sig, 10*time.Second)
			restarted := time.Now()
			fleetStartNATS(t, natsBin, addr, store)

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
