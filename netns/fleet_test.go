package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/cluster"
)

// The run: the shipped example, 300 calibration samples in shards of 10
// (30 shards), each sample slowed by the worker's test hook so that the
// network matters (0.2 s a shard) and, in the cut, a shard lasts long
// enough to be cut in the middle (0.5 s).
const (
	example        = "../examples/fashion-mnist/config.json"
	modelFile      = "fashion_cnn.onnx" // the config's model_name
	calibration    = 300                // the config's stat_subset_size
	shardSize      = "10"
	sampleDelayEnv = "FLEETCAL_WORKER_TEST_SAMPLE_DELAY=" // cmd/worker's test hook
	// ackWait is the coordinator's default AckWait (cluster/coordinator.go):
	// a shard its worker no longer heartbeats is redelivered after it.
	ackWait = 30 * time.Second
)

// natsFlags are the connection flags both binaries get: the one place to
// adapt when the fleet's server requires credentials.
func natsFlags(url string) []string { return []string{"--nats", url} }

// quantizeFlags are the flags of every quantize run besides -c, -o and the
// connection.
var quantizeFlags = []string{"--skip-eval", "--report-html=false", "--shard-size", shardSize}

// TestNetworkFleet runs the fleet across network namespaces (doc.go) and
// checks that the model is byte-identical to the in-process one with latency
// and loss on the workers' links, with a worker cut off mid-shard for longer
// than the ack wait, and after that worker rejoined.
func TestNetworkFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 90 s: a worker is cut off for longer than the 30 s ack wait")
	}
	// The fleet secret the coordinator and the workers share (they inherit
	// the environment through ip netns exec).
	t.Setenv(cluster.EnvSecret, "netns-test-fleet-secret-0123456789")
	began := time.Now()
	n := newFleetNet(t, "A", "B", "C")
	bin := binaries(t)
	config, err := filepath.Abs(example)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := n.hosts["A"], n.hosts["B"], n.hosts["C"]
	natsAddr := net.JoinHostPort(a.addr, natsPort)
	natsURL := "nats://" + natsAddr

	ref := filepath.Join(t.TempDir(), "ref")
	if out, err := run(t.Context(), 2*time.Minute, filepath.Join(bin, "coordinator"),
		append([]string{"quantize", "-c", config, "-o", ref, "--in-process"}, quantizeFlags...)...); err != nil {
		t.Fatalf("in-process reference: %v\n%s", err, out)
	}
	want, err := os.ReadFile(filepath.Join(ref, modelFile))
	if err != nil {
		t.Fatal(err)
	}

	startIn(t, a.ns, "nats-server", nil, filepath.Join(bin, "nats-server"),
		"-js", "-sd", t.TempDir(), "-a", a.addr, "-p", natsPort)
	waitFor(t, 20*time.Second, "nats-server listens", func() error {
		conn, err := dialer(n.router)(t.Context(), "tcp", natsAddr)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	worker := func(h *host, url, delay string) *proc {
		return startIn(t, h.ns, "worker "+h.role, []string{sampleDelayEnv + delay}, filepath.Join(bin, "worker"),
			append(natsFlags(url), "--name", h.role, "--log-level", "debug", "--metrics-addr", net.JoinHostPort(h.addr, "9101"))...)
	}
	// quantize runs the coordinator in A against the fleet and returns its
	// output folder (it must not fail or log: it runs in a goroutine too).
	quantize := func(out string) error {
		log, err := run(t.Context(), 3*time.Minute, "ip", append([]string{"netns", "exec", a.ns,
			filepath.Join(bin, "coordinator"), "quantize", "-c", config, "-o", out}, append(natsFlags(natsURL), quantizeFlags...)...)...)
		if err != nil {
			return fmt.Errorf("%s: quantize: %v\n%s", filepath.Base(out), err, log)
		}
		return nil
	}
	check := func(name string) time.Duration {
		t.Helper()
		start, out := time.Now(), filepath.Join(t.TempDir(), name)
		if err := quantize(out); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("%s: quantize took %s", name, took.Round(time.Millisecond))
		checkOutput(t, name, out, want)
		return took
	}
	shards := func(h *host, metric string) int {
		t.Helper()
		v, err := n.metric(t.Context(), "http://"+net.JoinHostPort(h.addr, "9101")+"/metrics", metric)
		if err != nil {
			t.Fatalf("worker %s: %v", h.role, err)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("worker %s: %s %q: %v", h.role, metric, v, err)
		}
		return int(f)
	}

	// 1. The same fleet undisturbed, then with latency and loss on the
	// workers' links.
	im := newImpairment(t, n, natsAddr, b, c)
	wb, wc := worker(b, im.url, "20ms"), worker(c, im.url, "20ms")
	plain := check("undisturbed")
	b0, c0 := shards(b, "fleetcal_worker_shards_done_total"), shards(c, "fleetcal_worker_shards_done_total")
	im.on()
	slow := check("impaired")
	t.Logf("impaired: shards done by B %d, by C %d; the run took %.2fx the undisturbed one",
		shards(b, "fleetcal_worker_shards_done_total")-b0, shards(c, "fleetcal_worker_shards_done_total")-c0, slow.Seconds()/plain.Seconds())
	im.off()
	stop(t, wb)
	stop(t, wc)

	// 2. B's link goes down while it holds a shard, for longer than the ack
	// wait: the shard is redelivered to C and the run finishes.
	worker(b, natsURL, "50ms")
	worker(c, natsURL, "50ms")
	done := make(chan struct{})
	cutOut := filepath.Join(t.TempDir(), "cut")
	var cutErr error
	go func() {
		defer close(done)
		cutErr = quantize(cutOut)
	}()
	waitFor(t, time.Minute, "worker B holds a shard after finishing one", func() error {
		select {
		case <-done:
			return nil // checked below
		default:
		}
		d, err1 := n.metric(t.Context(), "http://"+net.JoinHostPort(b.addr, "9101")+"/metrics", "fleetcal_worker_shards_done_total")
		f, err2 := n.metric(t.Context(), "http://"+net.JoinHostPort(b.addr, "9101")+"/metrics", "fleetcal_worker_shards_in_flight")
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if d == "0" || f != "1" {
			return fmt.Errorf("shards done %s, in flight %s", d, f)
		}
		return nil
	})
	select {
	case <-done:
		t.Fatalf("cut: the run ended before worker B could be cut off mid-shard: %v", cutErr)
	default:
	}
	if err := command(t.Context(), "ip", "-n", b.ns, "link", "set", "eth0", "down"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	select {
	case <-done:
	case <-time.After(ackWait + 90*time.Second):
		t.Fatalf("cut: quantize still running %s after worker B was cut off", time.Since(cut).Round(time.Second))
	}
	if cutErr != nil {
		t.Fatal(cutErr)
	}
	checkOutput(t, "cut", cutOut, want)
	t.Logf("cut: the run finished %s after worker B's link went down", time.Since(cut).Round(time.Millisecond))
	if r := shards(c, "fleetcal_worker_redeliveries_total"); r < 1 {
		t.Errorf("cut: worker C took %d redelivered shards, want B's", r)
	}
	if d := time.Since(cut); d < ackWait {
		t.Errorf("cut: the run finished %s after the cut, before the %s ack wait: B's shard was not redelivered", d, ackWait)
	}

	// 3. B's link comes back: B reconnects and serves shards of an
	// undisturbed run.
	if err := command(t.Context(), "ip", "-n", b.ns, "link", "set", "eth0", "up"); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	// B's connection survives the cut, but each end's TCP retransmission
	// timer has backed off: what either end queued during the cut (a shard
	// for B, B's fetches) waits for that timer, up to minutes (Linux's
	// TCP_RTO_MAX is 120 s). A shard the server sends to B before its end
	// has recovered sits in its queue for an ack wait. So wait until both
	// ends have nothing unacknowledged, and measure it.
	waitFor(t, 4*time.Minute, "the TCP connections between B and the server recover", func() error {
		return errors.Join(tcpSettled(t.Context(), a.ns, b.addr), tcpSettled(t.Context(), b.ns, a.addr))
	})
	t.Logf("rejoin: the TCP connections between B and the server carried everything %s after B's link came back",
		time.Since(restored).Round(time.Millisecond))
	before := shards(b, "fleetcal_worker_shards_done_total")
	check("rejoined")
	if after := shards(b, "fleetcal_worker_shards_done_total"); after <= before {
		t.Errorf("rejoin: worker B did no shard of the next run (%d done before, %d after)", before, after)
	} else {
		t.Logf("rejoin: worker B did %d shards of the next run", after-before)
	}
	t.Logf("the test took %s", time.Since(began).Round(time.Second))
}

// checkOutput checks that a run wrote the reference model and a report of
// the whole calibration.
func checkOutput(t *testing.T, name, dir string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, modelFile))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %s differs from the in-process model (%d bytes, want %d)", name, modelFile, len(got), len(want))
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var rep struct {
		CalibrationSamples int `json:"calibration_samples"`
		Files              []struct {
			Model string `json:"model"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s: report.json: %v", name, err)
	}
	if rep.CalibrationSamples != calibration || len(rep.Files) != 1 || rep.Files[0].Model != filepath.Join(dir, modelFile) {
		t.Errorf("%s: report.json says %d calibration samples, files %+v; want %d and %s", name,
			rep.CalibrationSamples, rep.Files, calibration, filepath.Join(dir, modelFile))
	}
}

// tcpSettled returns nil when namespace ns has established TCP connections
// to peer and none holds unacknowledged data or a backed-off retransmission
// timer (ss -i shows "unacked:" and "backoff:" only then).
func tcpSettled(ctx context.Context, ns, peer string) error {
	out, err := run(ctx, 20*time.Second, "ip", "netns", "exec", ns, "ss", "-tni", "state", "established", "dst", peer)
	if err != nil {
		return fmt.Errorf("ss in %s: %v: %s", ns, err, out)
	}
	if !strings.Contains(out, peer+":") {
		return fmt.Errorf("no TCP connection from %s to %s", ns, peer)
	}
	if strings.Contains(out, "unacked:") || strings.Contains(out, "backoff:") {
		return fmt.Errorf("%s's TCP connections to %s still retransmit:\n%s", ns, peer, out)
	}
	return nil
}

// impairment adds latency and loss between workers and the NATS server.
//
// With tc netem (the kernel's sch_netem), every worker link gets "delay 50ms
// 20ms loss 5%" on both veth ends. Without it: a relay in the router
// namespace delays every chunk by 25 ms ± 10 ms each way (50 ms ± 20 ms
// per round trip), iptables' statistic match drops 5 % of each worker's
// packets each way, and tbf limits each worker's uplink to 20 Mbit/s.
type impairment struct {
	t       *testing.T
	router  string
	workers []*host
	relay   *relay // nil with netem
	url     string // what the workers connect to
	undo    []func() error
}

// newImpairment finds which mechanism this kernel allows, logs it, and
// starts the relay (without delay yet) when netem is missing.
func newImpairment(t *testing.T, n *fleetNet, natsAddr string, workers ...*host) *impairment {
	t.Helper()
	im := &impairment{t: t, router: n.router, workers: workers, url: "nats://" + natsAddr}
	t.Cleanup(im.off)
	ctx := context.Background()
	probe := im.netem("eth0")
	err := in(ctx, workers[0].ns, probe...)
	if err == nil {
		if err := in(ctx, workers[0].ns, "tc", "qdisc", "del", "dev", "eth0", "root"); err != nil {
			t.Fatal(err)
		}
		t.Log("impairment: tc netem delay 50ms 20ms loss 5% on both ends of each worker's link")
		return im
	}
	t.Logf("impairment: no tc netem here (%v); using a latency relay in the router namespace, "+
		"iptables random drops and a tbf rate limit instead", err)
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatalf("iptables is needed to drop packets without netem (scripts/setup.sh --test installs it): %v", err)
	}
	var ln net.Listener
	relayAddr := net.JoinHostPort(routerAddr, natsPort)
	if err := inNetns(n.router, func() (err error) { ln, err = net.Listen("tcp", relayAddr); return err }); err != nil {
		t.Fatal(err)
	}
	im.relay = &relay{ln: ln, target: natsAddr, dial: dialer(n.router)}
	im.url = "nats://" + relayAddr
	served := make(chan struct{})
	go func() { im.relay.serve(context.Background()); close(served) }()
	t.Cleanup(func() { ln.Close(); <-served })
	return im
}

// netem is the tc command that adds netem on a device.
func (im *impairment) netem(dev string) []string {
	return []string{"tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "50ms", "20ms", "loss", "5%"}
}

// on adds the latency and the loss.
func (im *impairment) on() {
	t, ctx := im.t, context.Background()
	t.Helper()
	type cmd struct {
		ns   string
		args []string
		undo []string
	}
	var cmds []cmd
	for _, h := range im.workers {
		if im.relay == nil {
			cmds = append(cmds,
				cmd{h.ns, im.netem("eth0"), []string{"tc", "qdisc", "del", "dev", "eth0", "root"}},
				cmd{im.router, im.netem(h.port), []string{"tc", "qdisc", "del", "dev", h.port, "root"}})
			continue
		}
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			cmds = append(cmds, cmd{h.ns,
				[]string{"iptables", "-A", chain, "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"},
				[]string{"iptables", "-F", chain}})
		}
		cmds = append(cmds, cmd{h.ns, []string{"tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "20mbit", "burst", "32kbit", "latency", "400ms"},
			[]string{"tc", "qdisc", "del", "dev", "eth0", "root"}})
		im.undo = append(im.undo, func() error {
			counts, err := run(ctx, 20*time.Second, "ip", "netns", "exec", h.ns, "iptables", "-n", "-v", "-x", "-L")
			t.Logf("impairment: worker %s's iptables counters (dropped packets):\n%s", h.role, counts)
			return err
		})
	}
	for _, c := range cmds {
		if err := in(ctx, c.ns, c.args...); err != nil {
			t.Fatalf("impairment: %v", err)
		}
		im.undo = append(im.undo, func() error { return in(ctx, c.ns, c.undo...) })
	}
	if im.relay != nil {
		im.relay.delay.Store(int64(25 * time.Millisecond))
		im.relay.jitter.Store(int64(10 * time.Millisecond))
		im.undo = append(im.undo, func() error {
			im.relay.delay.Store(0)
			im.relay.jitter.Store(0)
			t.Logf("impairment: the relay delayed %d chunks on %d connections", im.relay.chunks.Load(), im.relay.conns.Load())
			return nil
		})
	}
}

// off removes what on added (also run by t's cleanup).
func (im *impairment) off() {
	for _, u := range im.undo {
		if err := u(); err != nil {
			im.t.Errorf("remove the impairment: %v", err)
		}
	}
	im.undo = nil
}
