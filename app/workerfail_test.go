package app

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/cluster"
)

// TestLocalWorkerFailureFailsRun: the only local worker loses its NATS
// connection before it serves (a real connection, closed through
// localWorkerStarting), so no shard can run. The quantize call returns
// that worker's error, not cluster.ErrNoWorker after the no-progress
// timeout, and the output folder is left as it was.
func TestLocalWorkerFailureFailsRun(t *testing.T) {
	localWorkerStarting = func(name string, conn closer) { conn.Close() }
	t.Cleanup(func() { localWorkerStarting = nil })
	out := t.TempDir()
	_, err := Quantize(t.Context(), QuantizeOptions{Config: "../examples/fashion-mnist/config.json", OutputDir: out, Workers: 1})
	if err == nil {
		t.Fatal("quantize succeeded with its only worker disconnected")
	}
	if !strings.Contains(err.Error(), "local worker local-0") || !strings.Contains(err.Error(), "connection closed") || errors.Is(err, cluster.ErrNoWorker) {
		t.Errorf("error %q, want local worker local-0's connection closed", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("output folder holds %d entries after the failed run", len(entries))
	}
}
