package report

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// chromium is where Debian's chromium package puts the browser.
const chromium = "/usr/bin/chromium"

// TestScreenshotScript opens a report in headless Chromium with
// scripts/screenshot_report.sh: every picture loads, a screenshot is
// written; with a picture removed, the script fails and names it.
func TestScreenshotScript(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s is not installed (apt-get install -y chromium): %v", chromium, err)
	}
	script, err := filepath.Abs("../scripts/screenshot_report.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page, err := Write(dir, synthetic())
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "shot.png")
	run := func() (string, error) {
		cmd := exec.CommandContext(t.Context(), script, page, shot)
		cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, page, err, out)
	}
	if !strings.Contains(out, "ok: 5 of 5 pictures loaded") {
		t.Errorf("script output %q, want 5 of 5 pictures loaded", out)
	}
	checkPNG(t, shot)

	if err := os.Remove(filepath.Join(dir, FilesName, "act_001.png")); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	if err == nil || !strings.Contains(out, "act_001.png") {
		t.Errorf("with act_001.png removed: error %v, output %q; want a failure naming it", err, out)
	}
}
