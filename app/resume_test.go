package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/internal/testfleet"
)

// TestCoordinatorResume SIGKILLs `coordinator quantize --run-id` (the built
// binary) at half of its statistics pass on an external nats-server and
// one slow worker process, then starts the same command again: it finishes
// with the model of an undisturbed run, byte for byte, and the shards
// computed in all are the pass's plus at most the one in flight at the
// kill (the worker runs one at a time).
func TestCoordinatorResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server, a worker and the coordinator")
	}
	natsBin, workerBin := fleetBinaries(t)
	coordinator := filepath.Join(testfleet.Binaries(t), "coordinator")
	t.Setenv(cluster.EnvSecret, appTestSecret) // the coordinator and the worker inherit it
	const samples, shard = 64, 4
	config := fixtureRun(t, "convnet_op13.onnx", samples, `{"preset": "performance", "stat_subset_size": 64}`, nil)
	want := inProcessModel(t, config)

	addr, metrics := testfleet.FreeAddr(t), testfleet.FreeAddr(t)
	url := "nats://" + addr
	testfleet.StartNATS(t, natsBin, addr, t.TempDir())
	// 50ms per sample, shards of 4: 3.2 s of statistics on one worker.
	testfleet.Command(t, "worker", []string{"FLEETCAL_WORKER_TEST_SAMPLE_DELAY=50ms"}, workerBin,
		"--nats", url, "--name", "w1", "--metrics-addr", metrics, "--concurrency", "1")
	shardsDone := func() int {
		v, err := testfleet.Scrape(t.Context(), metrics, "fleetcal_worker_shards_done_total")
		if err != nil {
			return -1
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"quantize", "-c", config, "-o", out, "--nats", url, "--run-id", "resume-test",
		"--shard-size", strconv.Itoa(shard), "--skip-eval", "--report-html=false"}
	first := testfleet.Command(t, "coordinator (killed)", nil, coordinator, args...)
	total := samples / shard
	testfleet.WaitFor(t, 60*time.Second, "condition", func() error {
		if n := shardsDone(); n < total/2 {
			return &shardCount{n}
		}
		return nil
	})
	stopProcess(t, first, syscall.SIGKILL, 5*time.Second)
	atKill := shardsDone()
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the killed coordinator left %s (%v)", out, err)
	}

	second := testfleet.Command(t, "coordinator (resumed)", nil, coordinator, args...)
	select {
	case <-second.Exited:
	case <-time.After(90 * time.Second):
		t.Fatal("the resumed coordinator did not finish in 90 s")
	}
	if second.Err != nil {
		t.Fatalf("the resumed coordinator: %v\n%s", second.Err, second.Out.String())
	}
	got, err := os.ReadFile(filepath.Join(out, "net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the resumed run wrote another model than an undisturbed one")
	}
	// Every shard computed once, but the one in flight at the kill at most.
	end := shardsDone()
	t.Logf("%d of %d shards done at the kill, %d computed in all", atKill, total, end)
	if end < total || end > total+1 {
		t.Errorf("the worker computed %d shards for a pass of %d (%d done at the kill): want at most one redone", end, total, atKill)
	}
}

type shardCount struct{ n int }

func (s *shardCount) Error() string { return strconv.Itoa(s.n) + " shards done" }

// TestRunIDNeedsNATS: --run-id without --nats is refused: the embedded
// server's store ends with the coordinator, nothing could resume.
func TestRunIDNeedsNATS(t *testing.T) {
	o := FleetOptions{RunID: "r1", Secret: appTestSecret}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--run-id r1: a run resumes on an external server (--nats)") {
		t.Errorf("--run-id without --nats: %v", err)
	}
	o.NATS = "nats://127.0.0.1:4222"
	if err := o.Validate(); err != nil {
		t.Errorf("--run-id with --nats: %v", err)
	}
}
