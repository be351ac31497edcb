package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/internal/testfleet"
)

// TestMixedFleetCPUs: a fleet of one native worker and one worker run as an
// AVX2 CPU without VNNI (qemu-x86_64 -cpu Haswell) completes, and
// report.json names both CPUs and says the fleet is mixed, in VNNI
// (mixed_cpus) and, on an AVX-512 host, in vector units
// (mixed_vector_units): ONNX Runtime's float kernels round differently on
// AVX2 and AVX-512, so such a fleet's statistics, and model, may differ in
// their last bits from a run on one kind of CPU.
func TestMixedFleetCPUs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server and two workers, one under qemu")
	}
	t.Setenv(cluster.EnvSecret, appTestSecret) // the workers inherit it
	qemu := qemuHaswell(t)
	natsBin, workerBin := fleetBinaries(t)
	config := fixtureRun(t, "convnet_op13.onnx", 32, `{"stat_subset_size": 32}`, nil)
	wantDir := t.TempDir()
	if _, err := Quantize(t.Context(), QuantizeOptions{Config: config, OutputDir: wantDir, SkipEvaluation: true,
		Fleet: FleetOptions{InProcess: true}}); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(wantDir, "net.onnx"))
	if err != nil {
		t.Fatal(err)
	}

	addr := testfleet.FreeAddr(t)
	url := "nats://" + addr
	testfleet.StartNATS(t, natsBin, addr, t.TempDir())
	// The native worker is slowed down so that the emulated one, which
	// needs seconds to start, gets shards too.
	testfleet.Command(t, "native worker", []string{"FLEETCAL_WORKER_TEST_SAMPLE_DELAY=150ms"}, workerBin, "--nats", url, "--name", "native")
	emu := testfleet.Command(t, "haswell worker", nil, qemu, "-cpu", "Haswell", workerBin, "--nats", url, "--name", "haswell", "--log-level", "debug")
	// Wait until the emulated worker has joined (it logs once connected).
	testfleet.WaitFor(t, 60*time.Second, "condition", func() error {
		select {
		case <-emu.Exited:
			t.Fatalf("the emulated worker exited: %v\n%s", emu.Err, emu.Out.String())
		default:
		}
		if len(emu.Out.String()) == 0 {
			return context.DeadlineExceeded
		}
		return nil
	})

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rep, err := Quantize(ctx, QuantizeOptions{Config: config, OutputDir: out, SkipEvaluation: true,
		Fleet: FleetOptions{NATS: url, ShardSize: 2}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// On convnet_op13 the model happens to be the in-process one; it is not
	// promised: ONNX Runtime's float kernels round differently on AVX2 and
	// AVX-512, so per-sample statistics differ in their last bits (see
	// mixed_vector_units), and on other models so can the model.
	t.Logf("model equal to the in-process one: %v", string(got) == string(want))
	t.Logf("worker CPUs: %v", rep.WorkerCPUs)
	if len(rep.WorkerCPUs) != 2 {
		t.Fatalf("worker CPUs %v: want both workers (the emulated one took no shard?)", rep.WorkerCPUs)
	}
	if engine.HostCPU().VNNI && !rep.MixedCPUs {
		t.Errorf("a VNNI host and an emulated Haswell: mixed_cpus = false, worker CPUs %v", rep.WorkerCPUs)
	}
	if slices.Contains(engine.HostCPU().Features, "avx512f") && !rep.MixedVectorUnits {
		t.Errorf("an AVX-512 host and an emulated Haswell: mixed_vector_units = false, worker CPUs %v", rep.WorkerCPUs)
	}
}
