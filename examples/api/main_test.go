package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fashion = "../fashion-mnist"

// The API sample on a fleet (embedded NATS, 2 workers of package worker
// running this program's registered loader, annotations and postprocess)
// writes the INT8 model of the in-process engine, byte for byte, and gives
// the same metrics and statistics.
func TestFleetEqualsInProcess(t *testing.T) {
	local, err := run(t.Context(), fashion, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := run(t.Context(), fashion, t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	a, errA := os.ReadFile(local.Saved[0].Model)
	b, errB := os.ReadFile(fleet.Saved[0].Model)
	if errA != nil || errB != nil || len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("INT8 models differ: %s (%d bytes, %v) and %s (%d bytes, %v)", local.Saved[0].Model, len(a), errA, fleet.Saved[0].Model, len(b), errB)
	}
	if !bytes.Contains(a, []byte("QuantizeLinear")) {
		t.Error("the saved model has no QuantizeLinear node")
	}
	if !reflect.DeepEqual(local.Metrics, fleet.Metrics) || !reflect.DeepEqual(local.PerSample, fleet.PerSample) || !reflect.DeepEqual(local.Relu2, fleet.Relu2) {
		t.Errorf("in process: %v %v %v\non the fleet: %v %v %v", local.Metrics, local.PerSample, local.Relu2, fleet.Metrics, fleet.PerSample, fleet.Relu2)
	}
	// 8 samples asked for; a garment covers part of its image; part of a
	// Relu's outputs are above 0 (the custom statistic).
	if len(fleet.PerSample) != 8 || len(fleet.Relu2[0]) != 8 || len(fleet.Relu2[1]) != 8 || !(fleet.Metrics["box_area"] > 0 && fleet.Metrics["box_area"] < 1) {
		t.Errorf("per sample %v, statistics %v, metrics %v", fleet.PerSample, fleet.Relu2, fleet.Metrics)
	}
	for i, a := range fleet.Relu2[1] {
		if !(a > 0 && a < 1) {
			t.Errorf("sample %d: active share %v, want in (0, 1)", i, a)
		}
	}
}

// A data folder without the IDX files is an error naming it, before any
// inference, in both modes.
func TestMissingData(t *testing.T) {
	dir := t.TempDir()
	m, err := os.ReadFile(filepath.Join(fashion, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{0, 2} {
		out := t.TempDir()
		_, err := run(t.Context(), dir, out, workers)
		if want := "data source " + filepath.Join(dir, "data/calib") + ": 0 images, 0 labels: open "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("workers %d: err = %v, want it to start with %q", workers, err, want)
		}
		if left, _ := os.ReadDir(out); len(left) != 0 {
			t.Errorf("workers %d: wrote %d files", workers, len(left))
		}
	}
}
