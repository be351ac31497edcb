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
)

// The run: the shipped example, 300 calibration samples in shards of 10,
// each sample slowed by the worker's test hook so that a shard lasts long
// enough to be cut in the middle (30 shards of 0.2 s).
const (
	example     = "../examples/fashion-mnist/config.json"
	modelFile   = "fashion_cnn.onnx" // the config's model_name
	calibration = 300                // the config's stat_subset_size
	shardSize   = "10"
	sampleDelay = "FLEETCAL_WORKER_TEST_SAMPLE_DELAY=20ms"
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
	worker := func(h *host, url string) *proc {
		return startIn(t, h.ns, "worker "+h.role, []string{sampleDelay}, filepath.Join(bin, "worker"),
			append(natsFlags(url), "--name", h.role, "--log-level", "debug", "--metrics-addr", net.JoinHostPort(h.addr, "9101"))...)
	}
	// quantize runs the coordinator in A against the fleet and returns its
	// output folder (it must not fail the test: it runs in a goroutine too).
	quantize := func(name string) (string, error) {
		out := filepath.Join(t.TempDir(), name)
		start := time.Now()
		log, err := run(t.Context(), 3*time.Minute, "ip", append([]string{"netns", "exec", a.ns,
			filepath.Join(bin, "coordinator"), "quantize", "-c", config, "-o", out}, append(natsFlags(natsURL), quantizeFlags...)...)...)
		if err != nil {
			return "", fmt.Errorf("%s: quantize: %v\n%s", name, err, log)
		}
		t.Logf("%s: quantize took %s", name, time.Since(start).Round(time.Millisecond))
		return out, nil
	}
	check := func(name string) {
		t.Helper()
		out, err := quantize(name)
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, name, out, want)
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

	// 1. Latency and loss on the workers' links.
	url, undo := impair(t, n, natsAddr, b, c)
	wb, wc := worker(b, url), worker(c, url)
	check("impaired")
	t.Logf("impaired: shards done by B %d, by C %d", shards(b, "fleetcal_worker_shards_done_total"), shards(c, "fleetcal_worker_shards_done_total"))
	undo()
	wb.stop(t)
	wc.stop(t)

	// 2. B's link goes down while it holds a shard, for longer than the ack
	// wait: the shard is redelivered to C and the run finishes.
	worker(b, natsURL)
	worker(c, natsURL)
	done := make(chan struct{})
	var cutOut string
	var cutErr error
	go func() {
		defer close(done)
		cutOut, cutErr = quantize("cut")
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
	check("undisturbed")

	if after := shards(b, "fleetcal_worker_shards_done_total"); after <= before {
		t.Errorf("rejoin: worker B did no shard of the undisturbed run (%d done before, %d after)", before, after)
	} else {
		t.Logf("rejoin: worker B did %d shards of the undisturbed run", after-before)
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

// impair adds latency and loss between the workers and the NATS server at
// natsAddr, logs which mechanism runs, and returns the URL the workers
// connect to and a function that removes it all (also run by t's cleanup).
//
// With tc netem (the kernel's sch_netem), every worker link gets "delay 50ms
// 20ms loss 5%" on both veth ends. Without it: a relay in the router
// namespace delays every chunk by 25 ms ± 10 ms each way (50 ms ± 20 ms
// per round trip), iptables' statistic match drops 5 % of each worker's
// packets each way, and tbf limits each worker's uplink to 20 Mbit/s.
func impair(t *testing.T, n *fleetNet, natsAddr string, workers ...*host) (url string, undo func()) {
	t.Helper()
	ctx := context.Background()
	var undos []func() error
	undo = func() {
		for _, u := range undos {
			if err := u(); err != nil {
				t.Errorf("remove the impairment: %v", err)
			}
		}
		undos = nil
	}
	t.Cleanup(undo)
	netem := func(dev string) []string {
		return []string{"tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "50ms", "20ms", "loss", "5%"}
	}
	err := in(ctx, workers[0].ns, netem("eth0")...)
	if err == nil {
		for i, h := range workers {
			if i > 0 {
				err = in(ctx, h.ns, netem("eth0")...)
			}
			if err := errors.Join(err, in(ctx, n.router, netem(h.port)...)); err != nil {
				t.Fatal(err)
			}
			undos = append(undos, func() error { return in(ctx, h.ns, "tc", "qdisc", "del", "dev", "eth0", "root") },
				func() error { return in(ctx, n.router, "tc", "qdisc", "del", "dev", h.port, "root") })
		}
		t.Log("impairment: tc netem delay 50ms 20ms loss 5% on both ends of each worker's link")
		return "nats://" + natsAddr, undo
	}
	t.Logf("impairment: no tc netem here (%v); using a latency relay, iptables and tbf instead", err)

	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatalf("iptables is needed to drop packets without netem (scripts/setup.sh --test installs it): %v", err)
	}
	var ln net.Listener
	relayAddr := net.JoinHostPort(routerAddr, natsPort)
	if err := inNetns(n.router, func() (err error) { ln, err = net.Listen("tcp", relayAddr); return err }); err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: natsAddr, dial: dialer(n.router), delay: 25 * time.Millisecond, jitter: 10 * time.Millisecond}
	served := make(chan struct{})
	go func() { r.serve(context.Background()); close(served) }()
	undos = append(undos, func() error {
		err := ln.Close()
		<-served
		t.Logf("impairment: the relay delayed %d chunks on %d connections", r.chunks.Load(), r.conns.Load())
		return err
	})
	for _, h := range workers {
		for _, c := range [][]string{
			{"iptables", "-A", "INPUT", "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"},
			{"iptables", "-A", "OUTPUT", "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"},
			{"tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "20mbit", "burst", "32kbit", "latency", "400ms"},
		} {
			if err := in(ctx, h.ns, c...); err != nil {
				t.Fatalf("impairment: %v", err)
			}
		}
		undos = append(undos, func() error {
			counts, err := run(ctx, 20*time.Second, "ip", "netns", "exec", h.ns, "iptables", "-n", "-v", "-x", "-L")
			t.Logf("impairment: worker %s's iptables counters:\n%s", h.role, counts)
			return errors.Join(err,
				in(ctx, h.ns, "iptables", "-F"),
				in(ctx, h.ns, "tc", "qdisc", "del", "dev", "eth0", "root"))
		})
	}
	return "nats://" + relayAddr, undo
}
