package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/internal/testfleet"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// testSecret is the fleet secret of the tests (in $FLEETCAL_SECRET for
// the worker processes and runCmd).
const testSecret = "fleetcal-test-secret-0123456789"

func TestMain(m *testing.M) {
	if err := engine.Init(); err != nil {
		fmt.Fprintf(os.Stderr, "worker tests need ONNX Runtime: %v\n", err)
		os.Exit(1)
	}
	os.Setenv(cluster.EnvSecret, testSecret)
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// workerBinary builds this command once for the tests that run it as a
// separate process.
func workerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "fleetcal-worker-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "worker")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// runCmd runs the worker in-process.
func runCmd(t *testing.T, ctx context.Context, args ...string) (code int, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, errb.String()
}

func startServer(t *testing.T, o cluster.ServerOptions) *cluster.Server {
	t.Helper()
	o.StoreDir = t.TempDir()
	s, err := cluster.StartServer(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "worker: invalid configuration: --nats URL is required\n"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--concurrency", "0"}, "worker: invalid configuration: --concurrency 0: want at least 1\n"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--threads", "-1"}, "worker: invalid configuration: --threads -1: want at least 1\n"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--user", "u"}, "worker: invalid configuration: set both user and password\n"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--token", "t", "--creds", "c"}, "worker: invalid configuration: user/password, token, creds and nkey are exclusive\n"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--tls-cert", "c.pem"}, "worker: invalid configuration: set both the TLS certificate and its key\n"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--log-level", "loud"}, "worker: --log-level \"loud\": want debug, info, warn or error\n"},
		{[]string{"--bogus"}, "worker: unknown flag: --bogus\n"},
		{[]string{"serve"}, "worker: unknown command \"serve\" for \"worker\"\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stderr := runCmd(t, t.Context(), tc.args...)
			if code != 1 || stderr != tc.want {
				t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr, tc.want)
			}
		})
	}
}

// TestParallelismBounds: --threads or --concurrency beyond MaxPerCore per
// CPU core is refused at once; more threads than cores are capped with a
// warning (the worker then tries to connect, and fails on the dead URL).
func TestParallelismBounds(t *testing.T) {
	cores := runtime.NumCPU()
	for _, flag := range []string{"--threads", "--concurrency"} {
		code, stderr := runCmd(t, t.Context(), "--nats", "nats://127.0.0.1:1", flag, "100000")
		want := fmt.Sprintf("worker: invalid configuration: %s 100000: too many for this machine: at most %d (4 per CPU core, %d cores)\n", flag, 4*cores, cores)
		if code != 1 || stderr != want {
			t.Errorf("%s 100000: exit %d, stderr %q; want 1, %q", flag, code, stderr, want)
		}
	}
	url := "nats://" + testfleet.FreeAddr(t)
	code, stderr := runCmd(t, t.Context(), "--nats", url, "--threads", strconv.Itoa(cores+1))
	want := fmt.Sprintf("--threads %d: capped to %d, the number of CPU cores of this machine", cores+1, cores)
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "worker: connect "+url) {
		t.Errorf("exit %d, stderr %q; want 1, a warning %q and the connect error", code, stderr, want)
	}
}

// TestMetricsAddrBusy: --metrics-addr on a taken port fails at once, before
// connecting, saying "address in use" and naming the address.
func TestMetricsAddrBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	code, stderr := runCmd(t, t.Context(), "--nats", "nats://127.0.0.1:1", "--metrics-addr", addr)
	want := "worker: metrics: listen " + addr + ": address in use (another process listens there; choose another port)\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
}

// TestSecret: a worker without the fleet secret, or with a short one,
// refuses to start.
func TestSecret(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("tiny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env  string
		args []string
		want string
	}{
		{"", nil, "worker: invalid configuration: the fleet secret is required: --secret-file FILE or $FLEETCAL_SECRET (the coordinator's; a coordinator with --listen logs it)\n"},
		{testSecret, []string{"--secret-file", short}, "worker: invalid configuration: secret in " + short + ": 4 bytes, want at least 16\n"},
		{"", []string{"--secret-file", "/nonexistent"}, "worker: invalid configuration: --secret-file: open /nonexistent: no such file or directory\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv(cluster.EnvSecret, tc.env)
			code, stderr := runCmd(t, t.Context(), append([]string{"--nats", "nats://127.0.0.1:1"}, tc.args...)...)
			if code != 1 || stderr != tc.want {
				t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr, tc.want)
			}
		})
	}
}

// workerArgs are the worker-role credentials of srv as flags.
func workerArgs(srv *cluster.Server) []string {
	wc := srv.WorkerConn()
	return []string{"--user", wc.User, "--password", wc.Password}
}

// TestUnreachable: a URL where nothing listens fails within seconds, in one
// line naming the URL.
func TestUnreachable(t *testing.T) {
	url := "nats://" + testfleet.FreeAddr(t)
	start := time.Now()
	code, stderr := runCmd(t, t.Context(), "--nats", url)
	want := "worker: connect " + url + ": cannot connect to NATS: no server answered (is NATS running there, and reachable?)\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}

// TestWrongCredentials: the server refuses a wrong password or token.
func TestWrongCredentials(t *testing.T) {
	srv := startServer(t, cluster.ServerOptions{User: "fleet", Password: "right"})
	for _, args := range [][]string{
		{"--user", "fleet", "--password", "wrong"},
		{"--token", "nope"},
		{},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stderr := runCmd(t, t.Context(), append([]string{"--nats", srv.ClientURL()}, args...)...)
			want := "worker: connect " + srv.ClientURL() + ": authorization refused by the server (check the user and password, token, creds or nkey)\n"
			if code != 1 || stderr != want {
				t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr, want)
			}
		})
	}
}

// scrape returns the value of a metric without labels served at addr.
func scrape(addr, name string) (string, error) {
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
	return "", fmt.Errorf("no %s in the metrics", name)
}

// TestSIGTERM: the binary stops cleanly, exit 0, on SIGTERM.
func TestSIGTERM(t *testing.T) {
	bin := workerBinary(t)
	srv := startServer(t, cluster.ServerOptions{})
	addr := testfleet.FreeAddr(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"--nats", srv.ClientURL(), "--metrics-addr", addr, "--name", "polite"}, workerArgs(srv)...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testfleet.WaitFor(t, 20*time.Second, "worker metrics", func() error {
		_, err := scrape(addr, "fleetcal_worker_shards_in_flight")
		return err
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM\n%s", stderr.String())
	}
}

// writeNpy writes a float32 .npy file.
func writeNpy(t *testing.T, path string, shape []int, values []float32) {
	t.Helper()
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", strings.Join(dims, ", "))
	header += strings.Repeat(" ", (64-(10+len(header)+1)%64)%64) + "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	for _, v := range values {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestKillMidShard kills a worker process with SIGKILL while it runs a
// shard; another worker finishes the pass after redelivery, and the
// statistics equal the local engine's, bit for bit.
func TestKillMidShard(t *testing.T) {
	bin := workerBinary(t)
	srv := startServer(t, cluster.ServerOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	nc, err := cluster.Connect(ctx, srv.ClientURL(), srv.CoordinatorConn())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// 8 samples of the convnet's input, in shards of 4.
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 7))
	if err := os.Mkdir(filepath.Join(dir, "calib"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		v := make([]float32, 3*16*16)
		for k := range v {
			v[k] = rng.Float32()*4 - 2
		}
		writeNpy(t, filepath.Join(dir, "calib", fmt.Sprintf("%03d.npy", i)), []int{3, 16, 16}, v)
	}
	m, err := model.Load(model.Config{Model: filepath.Join("..", "..", "testdata", "models", "convnet_op13.onnx")})
	if err != nil {
		t.Fatal(err)
	}
	layout := pipeline.StatsLayout{
		"relu_0_out": {{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}, {Kind: pipeline.StatQuantile, Q: 0.99}},
		"logits":     {{Kind: pipeline.StatAbsMax}, {Kind: pipeline.StatChannelMax, Axis: 1}},
	}
	opts := pipeline.PredictOptions{StatsLayout: layout, Sampler: pipeline.NewBatchSampler(8, 1, nil)}

	// The fault-free result, from the local engine.
	var inputs []pipeline.TensorInfo
	for _, v := range model.Inputs(m.Models()[0].Proto) {
		inputs = append(inputs, pipeline.TensorInfo{Name: v.Name, DType: pipeline.DType(v.ElemType), Shape: v.Shape})
	}
	loader, err := data.Open(ctx, data.Config{Type: "npy", Path: "calib"}, nil, dir, inputs)
	if err != nil {
		t.Fatal(err)
	}
	local, err := engine.New(loader, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if err := local.SetModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	want, err := local.Predict(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}

	cm := cluster.NewCoordinatorMetrics(nil)
	e, err := cluster.NewEngine(nc, cluster.RunSpec{DataSource: data.Config{Type: "npy", Path: "calib", BaseDir: dir}, Len: 8},
		cluster.EngineOptions{ShardSize: 4, AckWait: time.Second, Metrics: cm, IdleTimeout: 30 * time.Second, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetModel(ctx, m); err != nil {
		t.Fatal(err)
	}

	// The victim reads each sample 300ms late: 1.2s per shard.
	addr := testfleet.FreeAddr(t)
	var stderr bytes.Buffer
	victim := exec.Command(bin, append([]string{"--nats", srv.ClientURL(), "--name", "victim", "--metrics-addr", addr}, workerArgs(srv)...)...)
	victim.Env = append(os.Environ(), envSampleDelay+"=300ms")
	victim.Stderr = &stderr
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer victim.Process.Kill()

	type outcome struct {
		res pipeline.PredictResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := e.Predict(ctx, opts)
		done <- outcome{res, err}
	}()
	testfleet.WaitFor(t, 20*time.Second, "worker metrics", func() error {
		v, err := scrape(addr, "fleetcal_worker_shards_in_flight")
		if err != nil || v != "1" {
			return fmt.Errorf("victim not in a shard yet (in flight %q, %v)", v, err)
		}
		return nil
	})
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := victim.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("victim exit: %v, want killed", err)
	}

	survivor, err := cluster.NewWorker(nc, cluster.WorkerOptions{Name: "survivor", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := survivor.Run(wctx); err != nil {
			t.Error(err)
		}
	})
	defer func() { stop(); wg.Wait() }()

	out := <-done
	if out.err != nil {
		t.Fatalf("%v\nvictim's log:\n%s", out.err, stderr.String())
	}
	if !out.res.Stats.Equal(want.Stats) {
		t.Fatal("statistics differ from the fault-free result")
	}
	gb, _ := out.res.Stats.MarshalBinary()
	wb, _ := want.Stats.MarshalBinary()
	if !bytes.Equal(gb, wb) {
		t.Fatal("statistics encode differently from the fault-free result")
	}
	if n := testutil.ToFloat64(cm.Redeliveries); n < 1 {
		t.Errorf("redeliveries %v, want at least 1 (the killed shard)", n)
	}
}
