package testfleet

import (
	"bytes"
	"context"
	"errors"
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
)

// The binaries built by Binaries, once per test binary. The folder is
// left to the operating system's temporary-file cleanup unless the test
// binary's TestMain calls Cleanup.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries builds cmd/coordinator, cmd/worker and the nats-server of
// go.mod once per test binary and returns the folder holding
// coordinator, worker and nats-server.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "fleetcal-test-bin-"); buildErr != nil {
			return
		}
		for _, args := range [][]string{
			{"build", "-o", binDir + "/", "./cmd/coordinator", "./cmd/worker"},
			{"build", "-o", filepath.Join(binDir, "nats-server"), "github.com/nats-io/nats-server/v2"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build the fleet binaries: %v", buildErr)
	}
	return binDir
}

// Cleanup removes the binaries Binaries built; call it from TestMain
// after m.Run.
func Cleanup() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// ModuleRoot is the folder of fleetcal's go.mod, found from the working
// directory upwards (a package's tests run in its folder).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Buffer is a goroutine-safe buffer for a process's output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Process is a started child process with its output kept.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  Buffer
	// Exited is closed when the process has exited, with Err set.
	Exited chan struct{}
	Err    error
}

// Command starts bin with args and the test's environment plus env.
func Command(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return Start(t, name, cmd)
}

// Start starts cmd, its output going to the Process's buffer. The test's
// cleanup kills it if it still runs and logs its output if the test
// failed.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Name: name, Cmd: cmd, Exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.Out, &p.Out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.Err = cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() {
		select {
		case <-p.Exited:
		default:
			_ = cmd.Process.Kill()
			<-p.Exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Out.String())
		}
	})
	return p
}

// ErrStillRunning is what Stop returns when the process outlived its
// timeout.
var ErrStillRunning = errors.New("still running")

// Stop sends sig and waits for the process to exit, returning its exit
// error; after timeout it kills the process and returns ErrStillRunning.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) error {
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.Exited:
		return p.Err
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.Exited
		return fmt.Errorf("%s: %w %s after %s", p.Name, ErrStillRunning, timeout, sig)
	}
}

// Running reports an error if the process has exited.
func (p *Process) Running() error {
	select {
	case <-p.Exited:
		return fmt.Errorf("%s exited: %v\n%s", p.Name, p.Err, p.Out.String())
	default:
		return nil
	}
}

// WaitFor polls f every 20 ms until it returns nil, failing the test with
// what and f's last error after d (or when the test's context ends).
func WaitFor(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	WaitEvery(t, d, 20*time.Millisecond, what, f)
}

// WaitEvery is WaitFor polling every interval.
func WaitEvery(t testing.TB, d, interval time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, d, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-time.After(interval):
		}
	}
}

// FreeAddr returns a loopback host:port nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartNATS runs the nats-server binary with JetStream on addr, storing
// in dir (and extra arguments), and waits until it accepts connections.
func StartNATS(t testing.TB, bin, addr, dir string, extra ...string) *Process {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p := Command(t, "nats-server", nil, bin, append([]string{"-js", "-sd", dir, "-a", host, "-p", port}, extra...)...)
	WaitFor(t, 10*time.Second, "nats-server accepts connections", func() error {
		if err := p.Running(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return p
}

// Get returns the body of a 200 answer to GET url.
func Get(ctx context.Context, url string) ([]byte, error) {
	return GetWith(ctx, http.DefaultClient, url)
}

// GetWith is Get through client (e.g. one that dials from a network
// namespace).
func GetWith(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

// Metric returns the value of a sample of the Prometheus text body:
// name is the metric with its labels as printed (`x_total` or
// `x_total{reason="mac"}`).
func Metric(body []byte, name string) (string, error) {
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in the metrics", name)
}

// Scrape returns the value of metric name served at http://addr/metrics.
func Scrape(ctx context.Context, addr, name string) (string, error) {
	b, err := Get(ctx, "http://"+addr+"/metrics")
	if err != nil {
		return "", err
	}
	return Metric(b, name)
}
