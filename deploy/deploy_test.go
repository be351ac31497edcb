package deploy

import (
	"os/exec"
	"testing"
)

// TestPrometheusFiles checks the scrape config and the rules with promtool
// (Debian's prometheus package, which scripts/setup.sh --test installs).
func TestPrometheusFiles(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (run scripts/setup.sh --test): %v", err)
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus/prometheus.yml"},
		{"check", "rules", "prometheus/fleetcal-rules.yml"},
	} {
		out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
