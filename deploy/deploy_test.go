package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fleetcal/fleetcal/internal/testfleet"
)

func TestMain(m *testing.M) {
	if os.Getenv(mdweEnv) == "1" {
		execUnderMDWE()
	}
	code := m.Run()
	testfleet.Cleanup()
	os.Exit(code)
}

// TestPrometheusFiles checks the scrape configs and the rules with promtool
// (Debian's prometheus package, which scripts/setup.sh --test installs).
// compose/prometheus.yml is checked beside a copy of the rules, as the
// compose file mounts them.
func TestPrometheusFiles(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (run scripts/setup.sh --test): %v", err)
	}
	composeDir := t.TempDir()
	for _, f := range []struct{ from, to string }{
		{"compose/prometheus.yml", "prometheus.yml"},
		{"prometheus/fleetcal-rules.yml", "fleetcal-rules.yml"},
	} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(composeDir, f.to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus/prometheus.yml"},
		{"check", "rules", "prometheus/fleetcal-rules.yml"},
		{"check", "config", filepath.Join(composeDir, "prometheus.yml")},
	} {
		out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
