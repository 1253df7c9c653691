package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// promtool runs Debian's promtool (package prometheus) in dir.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run ./scripts/install-test-deps (Debian package prometheus; make test does)")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRulesPassPromtool: the rules file loads as it is, and each alert fires on
// its fault and stays quiet while the figure is healthy (varmenne-rules.test.yml).
func TestRulesPassPromtool(t *testing.T) {
	out := promtool(t, "prometheus", "check", "rules", "varmenne-rules.yml")
	if !strings.Contains(out, "SUCCESS: 6 rules found") {
		t.Errorf("promtool check rules: %s", out)
	}
	out = promtool(t, "prometheus", "test", "rules", "varmenne-rules.test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
	// Every alert of the file has a unit test.
	rules := read(t, "prometheus/varmenne-rules.yml")
	tests := read(t, "prometheus/varmenne-rules.test.yml")
	for _, m := range regexp.MustCompile(`alert: (\w+)`).FindAllStringSubmatch(rules, -1) {
		if !strings.Contains(tests, "alertname: "+m[1]) {
			t.Errorf("alert %s has no promtool unit test", m[1])
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// family is a metric family a query names; histogram series map to their family.
var family = regexp.MustCompile(`varmenne_[a-z_]+`)

func familyOf(series string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(series, s); ok && strings.HasSuffix(f, "_seconds") {
			return f
		}
	}
	return series
}

// documentedFamilies are the families of docs/metrics.md's table (the metrics
// package's test checks that the code exports exactly these).
func documentedFamilies(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(varmenne_[a-z_]+)` \\|").FindAllStringSubmatch(read(t, "../docs/metrics.md"), -1) {
		out[m[1]] = true
	}
	if len(out) < 30 {
		t.Fatalf("docs/metrics.md lists %d families; the table was not read", len(out))
	}
	return out
}

type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// dashboardQueries reads the Grafana dashboard's queries, by panel.
func dashboardQueries(t *testing.T, path string) (queries map[string]string) {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(read(t, path)), &d); err != nil {
		t.Fatalf("%s is not JSON: %v", path, err)
	}
	queries = map[string]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries[p.Title+": "+tg.Expr] = tg.Expr
		}
	}
	return queries
}

// TestDashboardShowsTheFigures: the dashboard is valid JSON, every panel queries
// documented families only, and it shows the figures the alerts watch.
func TestDashboardShowsTheFigures(t *testing.T) {
	queries := dashboardQueries(t, "grafana/varmenne-dashboard.json")
	docs := documentedFamilies(t)
	used := map[string]bool{}
	for title, q := range queries {
		for _, s := range family.FindAllString(q, -1) {
			f := familyOf(s)
			used[f] = true
			if !docs[f] {
				t.Errorf("%s queries %s, which is not a documented family", title, s)
			}
		}
	}
	for _, want := range []string{
		"varmenne_acme_requests_total", "varmenne_acme_request_duration_seconds", "varmenne_orders_total",
		"varmenne_finalizations_total", "varmenne_certificates_issued_total", "varmenne_validations_total",
		"varmenne_caa_failures_total", "varmenne_dns_failures_total", "varmenne_rate_limit_refusals_total",
		"varmenne_revocations_total", "varmenne_crl_next_update_timestamp_seconds", "varmenne_crl_number",
		"varmenne_crl_size_bytes", "varmenne_register_age_seconds", "varmenne_organisations",
		"varmenne_hsm_sessions_in_use", "varmenne_signature_duration_seconds", "varmenne_signature_errors_total",
		"varmenne_db_connections_in_use", "varmenne_db_transaction_retries_total", "varmenne_audit_appends_total",
		"varmenne_audit_append_failures_total", "varmenne_build_info",
	} {
		if !used[want] {
			t.Errorf("the dashboard shows no %s", want)
		}
	}
	// The rules use documented families only too.
	for _, s := range family.FindAllString(read(t, "prometheus/varmenne-rules.yml"), -1) {
		if !docs[familyOf(s)] {
			t.Errorf("the rules use %s, which is not a documented family", s)
		}
	}
}
