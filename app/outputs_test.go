package app

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/internal/testfleet"
	"github.com/fleetcal/fleetcal/outputs"
)

// snapshot maps every path under dir to the SHA-256 of its bytes ("" for
// a folder).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	fsys, got := os.DirFS(dir), map[string]string{}
	if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != "." {
			var b []byte
			if !d.IsDir() {
				b, err = fs.ReadFile(fsys, p)
				got[p] = fmt.Sprintf("%x", sha256.Sum256(b))
			} else {
				got[p] = ""
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// sameSnapshot fails the test unless dir holds exactly want.
func sameSnapshot(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := snapshot(t, dir)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: changed or gone (SHA-256 %q, want %q)", k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: appeared", k)
		}
	}
}

// topNames lists the entries of dir.
func topNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestOutputsReplacePreviousRun: a run into the folder of an earlier run
// leaves only its own files: the earlier run's external data, report.html
// and pictures are gone, a file the user added stays.
func TestOutputsReplacePreviousRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	first := fixtureRun(t, "convnet_extdata.onnx", 8, `{"stat_subset_size": 8}`, nil)
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: first, OutputDir: out, Workers: 1, SkipEvaluation: true,
		ReportHTML: true, Fleet: FleetOptions{InProcess: true}})
	if err != nil {
		t.Fatal(err)
	}
	// The fixture keeps its weights in convnet_extdata.onnx.data, so the
	// INT8 model writes its initializers of model.ExternalThreshold bytes or
	// more to net.onnx.data.
	want := []string{outputs.ManifestName, "net.onnx", "net.onnx.data", "report.html", "report.json", "report_files"}
	if got := topNames(t, out); !slices.Equal(got, want) || rep.Files[0].Weights != filepath.Join(out, "net.onnx.data") {
		t.Fatalf("first run wrote %v (weights %q), want %v", got, rep.Files[0].Weights, want)
	}
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := fixtureRun(t, "convnet_op13.onnx", 8, `{"stat_subset_size": 8}`, nil)
	if _, err := Quantize(t.Context(), QuantizeOptions{Config: second, OutputDir: out, Workers: 1, SkipEvaluation: true,
		Fleet: FleetOptions{InProcess: true}}); err != nil {
		t.Fatal(err)
	}
	want = []string{outputs.ManifestName, "net.onnx", "notes.txt", "report.json"}
	if got := topNames(t, out); !slices.Equal(got, want) {
		t.Errorf("second run left %v, want %v (no stale file of the first run)", got, want)
	}
	// A folder of a fleetcal that wrote no manifest is known by its
	// report.json (`make run` into an old out/fashion-mnist).
	if err := os.Remove(filepath.Join(out, outputs.ManifestName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Quantize(t.Context(), QuantizeOptions{Config: first, OutputDir: out, Workers: 1, SkipEvaluation: true,
		Fleet: FleetOptions{InProcess: true}}); err != nil {
		t.Fatalf("into the folder of a fleetcal without manifest: %v", err)
	}
	want = []string{outputs.ManifestName, "net.onnx", "net.onnx.data", "notes.txt", "report.json"}
	if got := topNames(t, out); !slices.Equal(got, want) {
		t.Errorf("third run left %v, want %v", got, want)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".out.fleetcal-staging-*")); len(left) > 0 {
		t.Errorf("staging folders left: %v", left)
	}
}

// TestOutputsForeignFolderRefused: a non-empty folder fleetcal did not
// make is refused before any work, unchanged, unless Force; and a folder
// of an earlier run whose report.json was replaced by a folder is refused
// too, its files intact.
func TestOutputsForeignFolderRefused(t *testing.T) {
	cfg := fixtureRun(t, "convnet_op13.onnx", 8, `{"stat_subset_size": 8}`, nil)
	opts := func(out string, force bool) QuantizeOptions {
		return QuantizeOptions{Config: cfg, OutputDir: out, Workers: 1, SkipEvaluation: true, Force: force,
			Fleet: FleetOptions{InProcess: true}}
	}
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "thesis.tex"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, out)
	rep, err := Quantize(t.Context(), opts(out, false))
	if !errors.Is(err, outputs.ErrForeign) || !strings.Contains(err.Error(), "thesis.tex") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("Quantize into a foreign folder: %v, want ErrForeign naming thesis.tex and --force", err)
	}
	if rep != nil {
		t.Errorf("a report for a refused run")
	}
	sameSnapshot(t, out, before)
	if _, err := Quantize(t.Context(), opts(out, true)); err != nil {
		t.Fatalf("with Force: %v", err)
	}
	if got := snapshot(t, out); got["thesis.tex"] != before["thesis.tex"] || got["net.onnx"] == "" {
		t.Errorf("with Force: %v", topNames(t, out))
	}

	// An earlier run's report.json is now a folder (a file the new report
	// needs is in the way): refused, everything left as it was.
	out = t.TempDir()
	if _, err := Quantize(t.Context(), opts(out, false)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(out, "report.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(out, "report.json", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, out)
	if _, err := Quantize(t.Context(), opts(out, false)); !errors.Is(err, outputs.ErrForeign) || !strings.Contains(err.Error(), "report.json") {
		t.Errorf("report.json a folder: %v, want ErrForeign naming it", err)
	}
	sameSnapshot(t, out, before)
}

// TestOutputsDiskFull runs the coordinator binary with a file size limit
// (ulimit -f: writes past it fail with EFBIG, as on a full disk, even for
// root) into the folder of an earlier run: it exits non-zero naming the
// file, and the earlier run's files are byte-identical, with no staging
// folder left.
func TestOutputsDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the coordinator")
	}
	coordinator := filepath.Join(testfleet.Binaries(t), "coordinator")
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"quantize", "-c", "../examples/fashion-mnist/config.json", "-o", out, "--in-process", "--skip-eval"}
	if b, err := exec.Command(coordinator, args...).CombinedOutput(); err != nil {
		t.Fatalf("first run: %v\n%s", err, b)
	}
	before := snapshot(t, out)
	// The INT8 model is 134668 bytes (measured: ls -l out/fashion-mnist
	// after make run); 64 KiB fits report.json and the pictures, not it.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `ulimit -f 64 && exec "$0" "$@"`, coordinator}, args...)...)
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("with a full disk: %v, want exit code 1\n%s", err, b)
	}
	if !strings.Contains(string(b), "fashion_cnn.onnx: file too large") {
		t.Errorf("the error does not name the file and the cause:\n%s", b)
	}
	sameSnapshot(t, out, before)
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".out.fleetcal-staging-*")); len(left) > 0 {
		t.Errorf("staging folders left: %v", left)
	}
}
