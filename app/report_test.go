package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/pipeline"
)

// TestQuantizeHTMLReport quantizes the shipped example with the HTML
// report on: report.html and every picture it shows exist, and
// report.json points at the page.
func TestQuantizeHTMLReport(t *testing.T) {
	out := t.TempDir()
	rep, err := Quantize(t.Context(), QuantizeOptions{Config: "../examples/fashion-mnist/config.json", OutputDir: out,
		Workers: 2, ReportHTML: true})
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(out, "report.html")
	if rep.HTMLReport != page {
		t.Errorf("HTMLReport = %q, want %q (warnings: %q)", rep.HTMLReport, page, rep.Warnings)
	}
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	html := string(raw)
	srcs := regexp.MustCompile(`<img [^>]*src="([^"]+)"`).FindAllStringSubmatch(html, -1)
	var acts int
	for _, m := range srcs {
		if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(m[1]))); err != nil {
			t.Errorf("picture %s: %v", m[1], err)
		}
		if strings.Contains(m[1], "/act_") {
			acts++
		}
	}
	// Every quantized activation of the example has a histogram: none
	// shares parameters and none is missing from the float model.
	var mmActs int
	if q := pipeline.Summarize(rep.Algorithms).Quantization; q != nil {
		mmActs = len(q.Activations)
	}
	if mmActs == 0 || acts != mmActs {
		t.Errorf("%d histograms for %d quantized activations", acts, mmActs)
	}
	for _, want := range []string{"fashion_cnn", "accuracy", "median, 1 thread, batch 1", "histograms below from 100"} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}

	raw, err = os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		HTMLReport   string             `json:"html_report"`
		StageSeconds map[string]float64 `json:"stage_seconds"`
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.HTMLReport != page {
		t.Errorf("report.json html_report = %q, want %q", back.HTMLReport, page)
	}
	if _, ok := back.StageSeconds["report_histograms"]; !ok {
		t.Errorf("report.json stage_seconds lacks report_histograms: %v", back.StageSeconds)
	}
}

// TestMixedVectorUnits: workers are mixed when their widest vector units
// (AVX-512, AVX2, neither) differ, whatever else they differ in.
func TestMixedVectorUnits(t *testing.T) {
	epyc := engine.CPU{Model: "EPYC", Features: []string{"avx2", "avx512f", "avx512_vnni"}, VNNI: true}
	xeon := engine.CPU{Model: "Xeon", Features: []string{"avx2", "avx512f"}}
	haswell := engine.CPU{Model: "Haswell", Features: []string{"avx2"}}
	old := engine.CPU{Model: "Westmere"}
	for _, c := range []struct {
		cpus map[string]engine.CPU
		want bool
	}{
		{nil, false},
		{map[string]engine.CPU{"a": epyc}, false},
		{map[string]engine.CPU{"a": epyc, "b": xeon}, false},
		{map[string]engine.CPU{"a": epyc, "b": haswell}, true},
		{map[string]engine.CPU{"a": haswell, "b": haswell}, false},
		{map[string]engine.CPU{"a": haswell, "b": old}, true},
	} {
		if got := mixedVectorUnits(c.cpus); got != c.want {
			t.Errorf("mixedVectorUnits(%v) = %v, want %v", c.cpus, got, c.want)
		}
	}
}
