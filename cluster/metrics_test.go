package cluster

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// registries returns a registry with every metric of both components, each
// touched once so that histograms and counters expose samples.
func registries(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := NewCoordinatorMetrics(reg)
	w := NewWorkerMetrics(reg)
	c.ShardDuration.Observe(1.5)
	c.MergeSeconds.Observe(0.002)
	c.SamplesDone.Add(16)
	w.ShardDuration.Observe(1.2)
	w.ModelFetchSeconds.Observe(0.01)
	w.ShardsFailed.WithLabelValues(kindSample).Inc()
	return reg
}

func TestMetricsLint(t *testing.T) {
	reg := registries(t)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, m := range []prometheus.Collector{NewCoordinatorMetrics(nil).ShardDuration, NewWorkerMetrics(nil).ShardsFailed} {
		if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// Names follow fleetcal_<component>_<name>_<unit>: 11 coordinator and 10 worker metrics.
	var coord, work int
	for _, mf := range mfs {
		switch {
		case strings.HasPrefix(mf.GetName(), "fleetcal_coordinator_"):
			coord++
		case strings.HasPrefix(mf.GetName(), "fleetcal_worker_"):
			work++
		default:
			t.Errorf("metric %s outside fleetcal_<component>_", mf.GetName())
		}
	}
	if coord != 11 || work != 10 {
		t.Errorf("%d coordinator and %d worker metrics, want 11 and 10", coord, work)
	}
	if n := testutil.ToFloat64(NewWorkerMetrics(prometheus.NewRegistry()).ShardsFailed.WithLabelValues(kindRefused)); n != 0 {
		t.Errorf("fresh refused counter %v", n)
	}
}

// TestServeMetricsPromtool scrapes /metrics and checks it with promtool.
func TestServeMetricsPromtool(t *testing.T) {
	reg := registries(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- serveMetrics(ctx, ln, reg) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	health, herr := http.Get("http://" + ln.Addr().String() + "/healthz")
	if herr == nil {
		hb, _ := io.ReadAll(health.Body)
		health.Body.Close()
		if health.StatusCode != http.StatusOK || string(hb) != "ok\n" {
			t.Errorf("/healthz: %s %q, want 200 \"ok\\n\"", health.Status, hb)
		}
	} else {
		t.Errorf("/healthz: %v", herr)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("fleetcal_coordinator_samples_done_total 16")) {
		t.Errorf("scrape lacks the samples counter:\n%s", body)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus); the scrape was linted by TestMetricsLint only")
	}
	cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// ServeMetrics refuses an address it cannot listen on.
	if err := ServeMetrics(t.Context(), "127.0.0.1:notaport", reg); err == nil {
		t.Error("ServeMetrics on a bad address: no error")
	}
}
