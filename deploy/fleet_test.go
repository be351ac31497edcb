package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fleetcal/fleetcal/internal/testfleet"
)

// binaries builds cmd/worker, cmd/coordinator and the nats-server of go.mod
// (once per test binary; TestMain removes them) and returns the folder
// holding worker, coordinator and nats-server.
func binaries(t *testing.T) string { return testfleet.Binaries(t) }

// mdweEnv makes the test binary a launcher (see TestMain): it sets the
// kernel's memory-deny-write-execute flag, what systemd's
// MemoryDenyWriteExecute= enforces, and executes its arguments.
const mdweEnv = "FLEETCAL_DEPLOY_TEST_EXEC_MDWE"

// execUnderMDWE is the launcher's body; it does not return.
func execUnderMDWE() {
	if err := unix.Prctl(unix.PR_SET_MDWE, unix.PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "prctl(PR_SET_MDWE): %v\n", err)
		os.Exit(3)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, mdweEnv+"=") {
			env = append(env, kv)
		}
	}
	err := unix.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", os.Args[1], err)
	os.Exit(3)
}

// mdweSupported reports whether this kernel has PR_SET_MDWE (Linux 6.3+).
func mdweSupported() bool {
	_, err := unix.PrctlRetInt(unix.PR_GET_MDWE, 0, 0, 0, 0)
	return err == nil
}

// unit is a systemd unit file: its sections' directives in file order.
type unit map[string][][2]string

func readUnit(path string) (unit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	u, section := unit{}, ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				return nil, fmt.Errorf("%s:%d: want KEY=VALUE inside a section, on one line: %q", path, i+1, line)
			}
			u[section] = append(u[section], [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return u, nil
}

// values returns the values of a directive of a section, in file order.
func (u unit) values(section, key string) []string {
	var vs []string
	for _, kv := range u[section] {
		if kv[0] == key {
			vs = append(vs, kv[1])
		}
	}
	return vs
}

// readEnvFile reads KEY=VALUE lines as systemd's EnvironmentFile= does
// (comments and blank lines skipped; the files here use no quotes).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, `"'\`) {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE without quotes: %q", path, n, line)
		}
		env[k] = v
	}
	return env, sc.Err()
}

var (
	specifier = regexp.MustCompile(`%.`)
	braceVar  = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	wordVar   = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)$`)
)

// expandSpecifiers replaces the specifiers the units use: %S and %C, the
// roots of StateDirectory= and CacheDirectory=.
func expandSpecifiers(s, stateRoot, cacheRoot string) (string, error) {
	var bad error
	out := specifier.ReplaceAllStringFunc(s, func(m string) string {
		switch m {
		case "%S":
			return stateRoot
		case "%C":
			return cacheRoot
		case "%%":
			return "%"
		}
		bad = fmt.Errorf("specifier %s in %q: the test knows %%S, %%C and %%%%", m, s)
		return m
	})
	return out, bad
}

// expandExec splits an ExecStart= command line as systemd does for the forms
// the units use: "${X}" is one word, a word "$X" splits X's value on white
// space (nothing when empty); an unset variable is an error here (systemd
// would make it empty, and the binary would then get a wrong argument).
func expandExec(line string, env map[string]string) ([]string, error) {
	if strings.ContainsAny(line, `"'\`) {
		return nil, fmt.Errorf("ExecStart %q: quotes and escapes are not handled by this test", line)
	}
	var args []string
	for _, w := range strings.Fields(line) {
		if m := wordVar.FindStringSubmatch(w); m != nil {
			v, ok := env[m[1]]
			if !ok {
				return nil, fmt.Errorf("ExecStart: $%s is not set by the environment file", m[1])
			}
			args = append(args, strings.Fields(v)...)
			continue
		}
		var missing error
		w = braceVar.ReplaceAllStringFunc(w, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := env[name]
			if !ok {
				missing = fmt.Errorf("ExecStart: ${%s} is not set by the environment file", name)
			}
			return v
		})
		if missing != nil {
			return nil, missing
		}
		args = append(args, w)
	}
	return args, nil
}

func freeAddr(t *testing.T) string { return testfleet.FreeAddr(t) }

func httpGet(ctx context.Context, url string) ([]byte, error) { return testfleet.Get(ctx, url) }

// process is a started binary with its output captured.
type process = testfleet.Process

func start(t *testing.T, name string, cmd *exec.Cmd) *process { return testfleet.Start(t, name, cmd) }

// stop sends SIGTERM (the units' KillSignal) and returns the exit error,
// killing the process after 30 s (the worker unit's TimeoutStopSec).
func stop(p *process) error { return p.Stop(syscall.SIGTERM, 30*time.Second) }

// waitFor polls f until it returns nil; it fails the test after d, or at
// once when p (if not nil) exits.
func waitFor(t *testing.T, d time.Duration, what string, p *process, f func() error) {
	t.Helper()
	testfleet.WaitFor(t, d, what, func() error {
		err := f()
		if err != nil && p != nil {
			if gone := p.Running(); gone != nil {
				t.Fatalf("%s: %v; last: %v", what, gone, err)
			}
		}
		return err
	})
}

// fleetScrape is what a real run on the deploy files' fleet served.
type fleetScrape struct {
	worker      []byte // the worker's /metrics after the run
	coordinator []byte // the coordinator's /metrics after it accepted shards
	health      []byte // the worker's /healthz
	mdwe        bool   // the worker ran under PR_SET_MDWE
}

// The password both shipped configurations hold (systemd/nats-server.conf
// and systemd/fleetcal-worker.env): the run fails if they disagree.
const (
	placeholderUser     = "fleet"
	placeholderPassword = "CHANGE-ME"
)

// runFleet runs the shipped systemd units' commands without systemd: the
// NATS server as nats-server.service starts it (its ExecStart, its config
// file with the listen address moved to a free loopback port), a worker as
// fleetcal-worker.service starts it (its ExecStart expanded with
// fleetcal-worker.env, its Environment=, under memory-deny-write-execute
// where the kernel has it), then a coordinator quantizes the shipped example
// on that worker. It returns the /metrics both served.
func runFleet(t *testing.T) fleetScrape {
	t.Helper()
	bin := binaries(t)
	tmp := t.TempDir()
	stateRoot, cacheRoot := filepath.Join(tmp, "state"), filepath.Join(tmp, "cache")

	// The NATS server.
	natsAddr := freeAddr(t)
	conf, err := os.ReadFile("systemd/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf, n1 := replaceLine(conf, "listen: 0.0.0.0:4222", "listen: "+natsAddr)
	conf, n2 := replaceLine(conf, "http: 127.0.0.1:8222", "")
	if n1 != 1 || n2 != 1 {
		t.Fatalf("systemd/nats-server.conf: want one 'listen: 0.0.0.0:4222' and one 'http: 127.0.0.1:8222' line to move, found %d and %d", n1, n2)
	}
	confPath := filepath.Join(tmp, "nats-server.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	natsArgs := unitCommand(t, "systemd/nats-server.service", nil, stateRoot, cacheRoot)
	natsArgs[0] = filepath.Join(bin, "nats-server")
	natsArgs = replaceArg(t, natsArgs, "/etc/nats/nats-server.conf", confPath)
	ns := start(t, "nats-server", exec.CommandContext(t.Context(), natsArgs[0], natsArgs[1:]...))
	waitFor(t, 20*time.Second, "nats-server listening", ns, func() error {
		c, err := net.Dial("tcp", natsAddr)
		if err == nil {
			c.Close()
		}
		return err
	})

	// The worker, as its unit runs it.
	env, err := readEnvFile("systemd/fleetcal-worker.env")
	if err != nil {
		t.Fatal(err)
	}
	workerMetrics := freeAddr(t)
	env["FLEETCAL_NATS"] = "nats://" + natsAddr
	env["FLEETCAL_METRICS_ADDR"] = workerMetrics
	// The library where this machine has it (the env file names the
	// installed path, /usr/local/lib/fleetcal).
	delete(env, "ONNXRUNTIME_LIB")
	if lib := os.Getenv("ONNXRUNTIME_LIB"); lib != "" {
		env["ONNXRUNTIME_LIB"] = lib
	}
	workerArgs := unitCommand(t, "systemd/fleetcal-worker.service", env, stateRoot, cacheRoot)
	workerArgs[0] = filepath.Join(bin, "worker")
	u, err := readUnit("systemd/fleetcal-worker.service")
	if err != nil {
		t.Fatal(err)
	}
	wcmd := exec.CommandContext(t.Context(), workerArgs[0], workerArgs[1:]...)
	wcmd.Dir = ".." // where the binaries look for .deps/onnxruntime without ONNXRUNTIME_LIB
	wcmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		wcmd.Env = append(wcmd.Env, k+"="+v)
	}
	for _, e := range u.values("Service", "Environment") {
		e, err := expandSpecifiers(e, stateRoot, cacheRoot)
		if err != nil {
			t.Fatal(err)
		}
		wcmd.Env = append(wcmd.Env, e)
	}
	for _, d := range u.values("Service", "CacheDirectory") { // what systemd creates
		if err := os.MkdirAll(filepath.Join(cacheRoot, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The test hook slows samples down so that the coordinator's /metrics
	// can be read while it runs (cmd/worker's package comment).
	wcmd.Env = append(wcmd.Env, "FLEETCAL_WORKER_TEST_SAMPLE_DELAY=10ms")
	var fs fleetScrape
	if fs.mdwe = mdweSupported(); fs.mdwe {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		wcmd.Args = append([]string{self}, wcmd.Args...)
		wcmd.Path = self
		wcmd.Env = append(wcmd.Env, mdweEnv+"=1")
	} else {
		t.Log("this kernel has no PR_SET_MDWE (Linux 6.3+): the worker runs without memory-deny-write-execute")
	}
	w := start(t, "worker", wcmd)
	waitFor(t, 60*time.Second, "worker /healthz", w, func() error {
		fs.health, err = httpGet(t.Context(), "http://"+workerMetrics+"/healthz")
		return err
	})

	// The coordinator: the shipped example on the fleet.
	coordMetrics := freeAddr(t)
	out := filepath.Join(tmp, "out")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ccmd := exec.CommandContext(ctx, filepath.Join(bin, "coordinator"), "quantize",
		"-c", "../examples/fashion-mnist/config.json", "-o", out,
		"--nats", "nats://"+natsAddr, "--user", placeholderUser, "--password", placeholderPassword,
		"--metrics-addr", coordMetrics, "--shard-size", "8", "--skip-eval", "--report-html=false")
	// The fleet secret of the env file: the coordinator's must be the workers'.
	ccmd.Env = append(os.Environ(), "FLEETCAL_SECRET="+env["FLEETCAL_SECRET"])
	coord := start(t, "coordinator", ccmd)
	shardsDone := regexp.MustCompile(`(?m)^fleetcal_coordinator_shards_done_total [1-9]`)
	var coordErr error
poll:
	for {
		select {
		case <-coord.Exited:
			coordErr = coord.Err
			break poll
		case <-time.After(50 * time.Millisecond):
		}
		if b, err := httpGet(ctx, "http://"+coordMetrics+"/metrics"); err == nil && shardsDone.Match(b) {
			fs.coordinator = b
		}
	}
	if coordErr != nil {
		t.Fatalf("coordinator quantize on the fleet: %v\n%s", coordErr, coord.Out.String())
	}
	if _, err := os.Stat(filepath.Join(out, "fashion_cnn.onnx")); err != nil {
		t.Fatalf("the run wrote no model: %v\n%s", err, coord.Out.String())
	}
	if fs.coordinator == nil {
		t.Fatal("the coordinator's /metrics never showed an accepted shard while it ran")
	}
	if fs.worker, err = httpGet(t.Context(), "http://"+workerMetrics+"/metrics"); err != nil {
		t.Fatal(err)
	}
	if err := stop(w); err != nil {
		t.Errorf("worker after SIGTERM: %v", err)
	}
	if err := stop(ns); err != nil {
		t.Errorf("nats-server after SIGTERM: %v", err)
	}
	return fs
}

// unitCommand returns a unit's ExecStart, its specifiers and variables
// expanded.
func unitCommand(t *testing.T, path string, env map[string]string, stateRoot, cacheRoot string) []string {
	t.Helper()
	u, err := readUnit(path)
	if err != nil {
		t.Fatal(err)
	}
	execs := u.values("Service", "ExecStart")
	if len(execs) != 1 {
		t.Fatalf("%s: %d ExecStart lines, want 1", path, len(execs))
	}
	line, err := expandSpecifiers(execs[0], stateRoot, cacheRoot)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	args, err := expandExec(line, env)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return args
}

func replaceLine(b []byte, from, to string) ([]byte, int) {
	lines := strings.Split(string(b), "\n")
	n := 0
	for i, l := range lines {
		if strings.TrimSpace(l) == from {
			lines[i] = to
			n++
		}
	}
	return []byte(strings.Join(lines, "\n")), n
}

func replaceArg(t *testing.T, args []string, from, to string) []string {
	t.Helper()
	for i, a := range args {
		if a == from {
			args[i] = to
			return args
		}
	}
	t.Fatalf("command %q has no argument %q", args, from)
	return nil
}

var (
	fleetOnce sync.Once
	fleet     fleetScrape
	fleetOK   bool
)

// sharedFleet runs runFleet once for the tests that read its scrapes; a
// test after a failed run fails too.
func sharedFleet(t *testing.T) fleetScrape {
	t.Helper()
	ran := false
	fleetOnce.Do(func() {
		ran = true
		fleet = runFleet(t)
		fleetOK = !t.Failed()
	})
	if !ran && !fleetOK {
		t.Fatal("the fleet run of an earlier test failed")
	}
	return fleet
}
