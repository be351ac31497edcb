package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/internal/testfleet"
)

// appTestSecret is the fleet secret of the app tests that run workers.
const appTestSecret = "fleetcal-app-test-secret-0123"

// TestFleetForgedResults: while an embedded fleet (--listen, with the
// workers' user and password) calibrates, a hostile client holding those
// credentials but not the fleet secret steals shards and writes forged,
// garbage and forged-error results for them; a client without credentials
// is refused. The model is byte-identical to an undisturbed run's.
func TestFleetForgedResults(t *testing.T) {
	config := fixtureRun(t, "convnet_op13.onnx", 48, `{"preset": "performance", "stat_subset_size": 48}`, nil)
	want := inProcessModel(t, config)

	addr := testfleet.FreeAddr(t)
	url := "nats://" + addr
	creds := cluster.ConnOptions{User: "remote", Password: "remote-password"}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	actx, stopAttack := context.WithCancel(ctx)
	var forged atomic.Int64
	attackDone := make(chan error, 1)
	go func() { attackDone <- attack(actx, url, creds, &forged) }()

	out := t.TempDir()
	_, err := Quantize(ctx, QuantizeOptions{Config: config, OutputDir: out, SkipEvaluation: true, Workers: 1,
		Fleet: FleetOptions{Listen: addr, Conn: creds, ShardSize: 4}})
	stopAttack()
	if aerr := <-attackDone; aerr != nil {
		t.Error(aerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if forged.Load() == 0 {
		t.Fatal("the attacker wrote no result: the test proves nothing")
	}
	got, err := os.ReadFile(filepath.Join(out, "net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("the model under attack differs from the undisturbed one (%d vs %d bytes)", len(got), len(want))
	}
	t.Logf("%d forged results written, all dropped", forged.Load())
}

// attack connects to the embedded server at url without credentials
// (which must fail), then with the workers' credentials, and until ctx
// ends takes shards and writes a forged result under each one's key.
func attack(ctx context.Context, url string, creds cluster.ConnOptions, forged *atomic.Int64) error {
	var nc interface{ Close() }
	for ctx.Err() == nil {
		c, err := cluster.Connect(ctx, url, cluster.ConnOptions{Timeout: time.Second})
		if err == nil {
			c.Close()
			return errors.New("a client without credentials connected")
		}
		if errors.Is(err, cluster.ErrAuth) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the server is not up yet
	}
	c, err := cluster.Connect(ctx, url, creds)
	if err != nil {
		return fmt.Errorf("attacker with the workers' credentials: %w", err)
	}
	nc = c
	defer nc.Close()
	js, err := jetstream.New(c)
	if err != nil {
		return err
	}
	var cons jetstream.Consumer
	var kv jetstream.KeyValue
	for ctx.Err() == nil {
		if cons, err = js.Consumer(ctx, cluster.StreamName, cluster.ConsumerName); err == nil {
			if kv, err = js.KeyValue(ctx, cluster.ResultsBucket); err == nil {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	values := []func(predict, shard string) []byte{
		func(string, string) []byte { return []byte("\x00garbage{") },
		func(string, string) []byte {
			return append([]byte("FCS\x03"+strings.Repeat("\x00", 32)), `{"v":3,"worker":"evil","samples":4,"error":"sample 0: boom","kind":"deterministic","cause":"bad_input"}`...)
		},
		func(string, string) []byte {
			return []byte(`{"v":3,"worker":"evil","samples":4,"stats":{"inline":"","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}}`)
		},
	}
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
		if err != nil {
			continue
		}
		// A shard message is a 4-byte magic, a 32-byte MAC and the JSON
		// body, readable by anyone who can pull it (cluster/doc.go).
		var shard struct {
			Predict, Shard, Attempt string
		}
		if d := msg.Data(); len(d) < 36 || json.Unmarshal(d[36:], &shard) != nil {
			return fmt.Errorf("shard message %q", d)
		}
		key := shard.Predict + "." + shard.Shard
		if shard.Attempt != "" {
			key += "=" + shard.Attempt
		}
		v := values[int(forged.Load())%len(values)](shard.Predict, shard.Shard)
		if _, err := kv.Create(ctx, key, v); err == nil {
			forged.Add(1)
		}
		_ = msg.Ack()
	}
	return nil
}

// TestFleetDataMismatch: a worker that sees another file at the path of a
// calibration file (a bind mount in its own mount namespace) refuses the
// run; quantize fails naming the file and writes no model.
func TestFleetDataMismatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server and a worker")
	}
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		t.Skipf("needs unshare -m (root) to show the worker another file at the same path: %v %s", err, out)
	}
	natsBin, workerBin := fleetBinaries(t)
	config := fixtureRun(t, "convnet_op13.onnx", 8, `{"preset": "performance", "stat_subset_size": 8}`, nil)
	victim := filepath.Join(filepath.Dir(config), "calib", "003.npy")
	other := filepath.Join(t.TempDir(), "other.npy")
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0x40 // same size, one float changed
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(cluster.EnvSecret, appTestSecret)
	addr := testfleet.FreeAddr(t)
	url := "nats://" + addr
	testfleet.StartNATS(t, natsBin, addr, t.TempDir())
	testfleet.Command(t, "worker", nil, "unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" "$1" && exec "$2" --nats "$3" --name elsewhere`, other, victim, workerBin, url)

	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	_, err = Quantize(ctx, QuantizeOptions{Config: config, OutputDir: out, SkipEvaluation: true,
		Fleet: FleetOptions{NATS: url, ShardSize: 4}})
	if !errors.Is(err, cluster.ErrDataMismatch) || !strings.Contains(err.Error(), "data file "+victim+": SHA-256 ") {
		t.Fatalf("got %v, want ErrDataMismatch naming %s", err, victim)
	}
	if _, serr := os.Stat(filepath.Join(out, "net.onnx")); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("a model was written: %v", serr)
	}
	t.Log(err)
}

// TestListenAnnounce: with --listen and neither worker credentials nor a
// fleet secret given, quantize logs once the command remote workers run,
// with the generated ones; a worker given them is let in and runs until
// the end without error, a client without them is refused.
func TestListenAnnounce(t *testing.T) {
	t.Setenv(cluster.EnvSecret, "")
	config := fixtureRun(t, "convnet_op13.onnx", 16, `{"preset": "performance", "stat_subset_size": 16}`, nil)
	addr := testfleet.FreeAddr(t)
	logs := &testfleet.Buffer{}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Quantize(ctx, QuantizeOptions{Config: config, OutputDir: t.TempDir(), SkipEvaluation: true, Workers: 1,
			Fleet: FleetOptions{Listen: addr}, Log: slog.New(slog.NewTextHandler(logs, nil))})
		done <- result{rep, err}
	}()
	var line string
	testfleet.WaitFor(t, 30*time.Second, "condition", func() error {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "remote workers join") {
				line = l
				return nil
			}
		}
		return errors.New("no announce yet")
	})
	m := regexp.MustCompile(`FLEETCAL_SECRET=([0-9a-f]{64}) worker --nats (nats://\S+) --user (fleetcal-worker) --password ([0-9a-f]{64})"`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("announce line %q: want the secret, URL, user and password", line)
	}
	if c, err := cluster.Connect(ctx, m[2], cluster.ConnOptions{}); !errors.Is(err, cluster.ErrAuth) {
		if c != nil {
			c.Close()
		}
		t.Errorf("a client without credentials: %v, want ErrAuth", err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	werr := make(chan error, 1)
	go func() {
		werr <- cluster.RunWorker(wctx, cluster.WorkerConfig{NATS: m[2], Conn: cluster.ConnOptions{User: m[3], Password: m[4]},
			Worker: cluster.WorkerOptions{Name: "remote", Concurrency: 1, Threads: 1, Secret: m[1]}})
	}()
	res := <-done
	stop()
	if err := <-werr; err != nil {
		t.Errorf("remote worker: %v", err)
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	if n := strings.Count(logs.String(), "remote workers join"); n != 1 {
		t.Errorf("announced %d times, want once", n)
	}
	for _, w := range res.rep.Warnings {
		if strings.Contains(w, m[1]) || strings.Contains(w, m[4]) {
			t.Errorf("report.json's warnings hold the credentials: %q", w)
		}
	}
}
