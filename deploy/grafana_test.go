package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dashboard mirrors the part of Grafana's dashboard JSON model that
// grafana/fleetcal.json uses; decoding it with unknown fields refused
// catches a misspelled field (Grafana itself would silently drop it).
type dashboard struct {
	UID           string                    `json:"uid"`
	Title         string                    `json:"title"`
	Tags          []string                  `json:"tags"`
	Timezone      string                    `json:"timezone"`
	SchemaVersion int                       `json:"schemaVersion"`
	Version       int                       `json:"version"`
	Editable      bool                      `json:"editable"`
	Refresh       string                    `json:"refresh"`
	Time          struct{ From, To string } `json:"time"`
	Description   string                    `json:"description"`
	Panels        []panel                   `json:"panels"`
	Templating    json.RawMessage           `json:"templating"`
	Annotations   json.RawMessage           `json:"annotations"`
}

type panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Description string                   `json:"description"`
	Datasource  datasourceRef            `json:"datasource"`
	GridPos     struct{ X, Y, W, H int } `json:"gridPos"`
	FieldConfig json.RawMessage          `json:"fieldConfig"`
	Options     json.RawMessage          `json:"options"`
	Targets     []struct {
		RefID        string        `json:"refId"`
		Datasource   datasourceRef `json:"datasource"`
		Expr         string        `json:"expr"`
		LegendFormat string        `json:"legendFormat"`
	} `json:"targets"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func readDashboard(b []byte) (*dashboard, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("grafana/fleetcal.json: %w", err)
	}
	return &d, nil
}

// rules mirrors Prometheus' rule file format.
type rules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Record      string            `json:"record"`
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// query is one PromQL expression and where it comes from.
type query struct{ where, expr, legend string }

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promVariable = regexp.MustCompile(`\$\w+`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	legendLabel  = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"inf": true, "nan": true, "Inf": true, "NaN": true}
)

// promqlNames returns the metric names an expression selects and the label
// names it groups by. It is a small lexer, not a PromQL parser: enough for
// the selector, function, aggregation and binary-operator forms the
// dashboard and the rules use.
func promqlNames(expr string) (metrics, labels []string) {
	s := promVariable.ReplaceAllString(promString.ReplaceAllString(expr, `""`), "")
	for _, m := range promGrouping.FindAllStringSubmatch(s, -1) {
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	s = promGrouping.ReplaceAllString(s, " ")
	s = promRange.ReplaceAllString(promMatchers.ReplaceAllString(s, " "), " ")
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		tok, rest := s[loc[0]:loc[1]], strings.TrimLeft(s[loc[1]:], " \t\n")
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // a number's exponent or suffix
		}
		if strings.HasPrefix(rest, "(") || promKeywords[tok] {
			continue // a function, an aggregation or an operator
		}
		metrics = append(metrics, tok)
	}
	return metrics, labels
}

// exposition is the series and label names of a /metrics scrape.
type exposition struct{ series, labels map[string]bool }

func parseExposition(scrapes ...[]byte) exposition {
	e := exposition{series: map[string]bool{}, labels: map[string]bool{}}
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, b := range scrapes {
		for _, line := range strings.Split(string(b), "\n") {
			if line == "" || line[0] == '#' {
				continue
			}
			end := strings.IndexAny(line, "{ ")
			if end < 0 {
				continue
			}
			e.series[line[:end]] = true
			if line[end] == '{' {
				for _, m := range label.FindAllStringSubmatch(line[end:strings.LastIndexByte(line, '}')+1], -1) {
					e.labels[m[1]] = true
				}
			}
		}
	}
	return e
}

// Series and labels Prometheus adds itself: the "up" series of every
// target, the target labels, and the "le" of histogram buckets (which the
// scrape has too).
var (
	prometheusSeries = map[string]bool{"up": true}
	targetLabels     = map[string]bool{"instance": true, "job": true}
)

// checkQueries returns one error per metric or label a query names that
// neither the scrapes nor the recording rules provide.
func checkQueries(qs []query, e exposition, recorded map[string]bool) []error {
	var errs []error
	for _, q := range qs {
		metrics, labels := promqlNames(q.expr)
		if len(metrics) == 0 {
			errs = append(errs, fmt.Errorf("%s: %q selects no metric", q.where, q.expr))
		}
		for _, m := range metrics {
			if !e.series[m] && !recorded[m] && !prometheusSeries[m] {
				errs = append(errs, fmt.Errorf("%s: %q: metric %s is not in the binaries' /metrics (nor a recording rule)", q.where, q.expr, m))
			}
		}
		for _, m := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			labels = append(labels, m[1])
		}
		for _, l := range labels {
			if !e.labels[l] && !targetLabels[l] {
				errs = append(errs, fmt.Errorf("%s: %q: label %s is on no scraped series and is not a target label", q.where, q.expr, l))
			}
		}
	}
	return errs
}

// queries returns the dashboard's and the rule file's expressions, and the
// names the rules record.
func queries(t *testing.T, dashboardJSON []byte) ([]query, map[string]bool) {
	t.Helper()
	d, err := readDashboard(dashboardJSON)
	if err != nil {
		t.Fatal(err)
	}
	var qs []query
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("grafana/fleetcal.json: panel %q %s", p.Title, tg.RefID), tg.Expr, tg.LegendFormat})
		}
	}
	b, err := os.ReadFile("prometheus/fleetcal-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var r rules
	if err := yaml.UnmarshalStrict(b, &r); err != nil {
		t.Fatalf("prometheus/fleetcal-rules.yml: %v", err)
	}
	recorded := map[string]bool{}
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			name := rule.Record + rule.Alert
			qs = append(qs, query{"prometheus/fleetcal-rules.yml: " + name, rule.Expr, ""})
			if rule.Record != "" {
				recorded[rule.Record] = true
			}
		}
	}
	return qs, recorded
}

// TestDashboardAndRulesMetricsExist checks that every metric and label the
// dashboard and the alerting rules query is one the real binaries serve: it
// scrapes a worker and a coordinator during a real job (runFleet).
func TestDashboardAndRulesMetricsExist(t *testing.T) {
	fs := sharedFleet(t)
	e := parseExposition(fs.worker, fs.coordinator)
	b, err := os.ReadFile("grafana/fleetcal.json")
	if err != nil {
		t.Fatal(err)
	}
	qs, recorded := queries(t, b)
	if len(qs) < 20 {
		t.Fatalf("%d queries in the dashboard and the rules, want at least 20", len(qs))
	}
	for _, err := range checkQueries(qs, e, recorded) {
		t.Error(err)
	}
	// What the dashboard does not show, for the record.
	used := map[string]bool{}
	for _, q := range qs {
		m, _ := promqlNames(q.expr)
		for _, n := range m {
			used[histogramBase(n)] = true
		}
	}
	var unused []string
	for s := range e.series {
		if base := histogramBase(s); strings.HasPrefix(s, "fleetcal_") && !used[base] {
			unused = append(unused, base)
		}
	}
	sort.Strings(unused)
	t.Logf("fleetcal series the dashboard and rules do not query: %v", slices.Compact(unused))

	// A misspelled metric or label must fail.
	for _, tc := range []struct{ from, to, want string }{
		{"fleetcal_worker_samples_done_total", "fleetcal_worker_sample_done_total", "metric fleetcal_worker_sample_done_total is not in"},
		{"sum by (kind)", "sum by (kinds)", "label kinds is on no scraped series"},
	} {
		mutated := bytes.Replace(b, []byte(tc.from), []byte(tc.to), 1)
		mq, _ := queries(t, mutated)
		errs := checkQueries(mq, e, recorded)
		if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), tc.want) {
			t.Errorf("dashboard with %s for %s: errors %v, want one with %q", tc.to, tc.from, errs, tc.want)
		}
	}
}

func TestPromqlNames(t *testing.T) {
	for _, tc := range []struct {
		expr            string
		metrics, labels []string
	}{
		{`sum(rate(a_total[1m]))`, []string{"a_total"}, nil},
		{`histogram_quantile(0.9, sum by (le) (rate(h_bucket{job="x"}[5m])))`, []string{"h_bucket"}, []string{"le"}},
		{`sum(g) > 0 and sum(rate(c[5m])) == 0`, []string{"g", "c"}, nil},
		{`rate(s_sum[5m]) / rate(s_count[5m])`, []string{"s_sum", "s_count"}, nil},
		{`sum by (instance, kind) (increase(x[$__range])) offset 1h`, []string{"x"}, []string{"instance", "kind"}},
		{`rec:ord:rate1m * 1e3`, []string{"rec:ord:rate1m"}, nil},
	} {
		m, l := promqlNames(tc.expr)
		if !slices.Equal(m, tc.metrics) || !slices.Equal(l, tc.labels) {
			t.Errorf("promqlNames(%q) = %q, %q; want %q, %q", tc.expr, m, l, tc.metrics, tc.labels)
		}
	}
}

// grafanaProvisioning mirrors the fields of Grafana's provisioning files
// that deploy/grafana/provisioning uses.
type grafanaProvisioning struct {
	APIVersion  int `json:"apiVersion"`
	Datasources []struct {
		Name      string `json:"name"`
		UID       string `json:"uid"`
		Type      string `json:"type"`
		Access    string `json:"access"`
		URL       string `json:"url"`
		IsDefault bool   `json:"isDefault"`
		Editable  bool   `json:"editable"`
	} `json:"datasources"`
	Providers []struct {
		Name            string `json:"name"`
		Folder          string `json:"folder"`
		Type            string `json:"type"`
		DisableDeletion bool   `json:"disableDeletion"`
		AllowUIUpdates  bool   `json:"allowUiUpdates"`
		Options         struct {
			Path string `json:"path"`
		} `json:"options"`
	} `json:"providers"`
}

// TestGrafanaProvisioning decodes the provisioning files strictly and
// checks that they, the dashboard and the compose file agree: the panels'
// datasource is the provisioned one, which points at the compose service
// prometheus, and the dashboards folder is where compose mounts the JSON.
func TestGrafanaProvisioning(t *testing.T) {
	var ds, dashboards grafanaProvisioning
	for p, dst := range map[string]*grafanaProvisioning{
		"grafana/provisioning/datasources/prometheus.yml": &ds,
		"grafana/provisioning/dashboards/fleetcal.yml":    &dashboards,
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, dst); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if dst.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", p, dst.APIVersion)
		}
	}
	if len(ds.Datasources) != 1 || len(dashboards.Providers) != 1 {
		t.Fatalf("%d datasources and %d dashboard providers, want 1 and 1", len(ds.Datasources), len(dashboards.Providers))
	}
	src := ds.Datasources[0]
	b, err := os.ReadFile("grafana/fleetcal.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := readDashboard(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		refs := []datasourceRef{p.Datasource}
		for _, tg := range p.Targets {
			refs = append(refs, tg.Datasource)
		}
		for _, r := range refs {
			if r.UID != src.UID || r.Type != src.Type {
				t.Errorf("panel %q: datasource %+v, want the provisioned {%s %s}", p.Title, r, src.Type, src.UID)
			}
		}
	}
	project := loadCompose(t, nil)
	if _, ok := project.Services["prometheus"]; !ok || src.URL != "http://prometheus:9090" {
		t.Errorf("datasource url %s: want http://prometheus:9090, the compose service prometheus", src.URL)
	}
	mounted := false
	for _, v := range project.Services["grafana"].Volumes {
		if strings.HasSuffix(v.Source, "/deploy/grafana/fleetcal.json") && v.Target == dashboards.Providers[0].Options.Path+"/fleetcal.json" {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("compose does not mount grafana/fleetcal.json into the provider's folder %s", dashboards.Providers[0].Options.Path)
	}
}

// histogramBase strips a histogram series' _bucket, _sum or _count suffix.
func histogramBase(s string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(s, suffix); ok {
			return b
		}
	}
	return s
}
