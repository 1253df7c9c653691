package e2e

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/test/logbuf"
)

// prometheus is Debian's prometheus, run for one test on loopback with a
// temporary storage directory, scraping one target every second.
type prometheus struct {
	t    *testing.T
	addr string
	logs *logbuf.Buffer
}

// startPrometheus runs prometheus scraping target (host:port, path /metrics) with
// the repository's rules file loaded, and waits until it is ready. A missing
// prometheus fails the test.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: run ./scripts/install-test-deps (Debian package prometheus; make test does)")
	}
	rules, err := filepath.Abs("../../deploy/prometheus/varmenne-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: varmenne
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), logs: &logbuf.Buffer{}}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready in 60 s:\n%s", p.logs.String())
		}
	}
}

// sample is one series of an instant query's answer.
type sample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant query through the HTTP API (/api/v1/query).
func (p *prometheus) query(q string) ([]sample, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: %v", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s: %s", q, body.ErrorType, body.Error)
	}
	var out []sample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", q, r.Value[1])
		}
		out = append(out, sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// waitFor waits (up to 30 s: a scrape a second) until the query's one series
// satisfies ok, and returns its last value; a query with no such series fails the
// test.
func (p *prometheus) waitFor(q string, ok func(float64) bool) float64 {
	p.t.Helper()
	var last []sample
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		last, err = p.query(q)
		if err == nil && len(last) == 1 && ok(last[0].Value) {
			return last[0].Value
		}
	}
	p.t.Errorf("Prometheus: %s = %v (err %v)", q, last, err)
	return 0
}

func equals(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func atLeast(n float64) func(float64) bool   { return func(v float64) bool { return v >= n } }

// TestMetricsThroughPrometheus: a real Prometheus scrapes a server whose issuer
// keys are in an HSM (SoftHSM2) and which reads THL's register, while a client
// issues, is refused by CAA, meets a broken DNS zone and a rate limit, and
// revokes; every metric family is then read back through Prometheus' query API
// with the value those steps give, the rules load and evaluate, and every
// dashboard query runs.
func TestMetricsThroughPrometheus(t *testing.T) {
	h := newHSM(t)
	data := t.TempDir()
	h.ceremony(t, data, "ecdsa-p256")
	in := startWith(t, data, h.serve("--limit-new-orders-per-account", "3")...)
	if !in.StdoutHas("/metrics (Prometheus)") {
		t.Errorf("serve did not print the metrics URL:\n%s", in.Stdout.String())
	}
	prom := startPrometheus(t, in.Ops())
	prom.waitFor(`up{job="varmenne"}`, equals(1))

	kid, mac := in.org("1.2.246.10.44444444.10.0", "HSM-apteekki", "mittari.example")
	c := in.client(kid, mac)
	r := in.responder()

	// One certificate (order 1), revoked as superseded; a second revocation is
	// refused as alreadyRevoked.
	chain, _ := in.obtain(c, r, newKey(t), "www.mittari.example")
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonSuperseded); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	_ = c.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonSuperseded) // x/crypto/acme takes alreadyRevoked for success
	// Order 2: CAA names another CA, so the proven name does not become valid.
	in.DNS.SetCAA("kielletty.mittari.example", 0, "issue", "toinen-ca.example")
	if _, _, err := in.tryFinalize(c, r, newKey(t), "kielletty.mittari.example"); err == nil {
		t.Fatal("a name whose CAA names another CA was certified")
	}
	// Order 3: the name's zone answers SERVFAIL.
	in.DNS.SetServfail("rikki.mittari.example")
	if _, _, err := in.tryFinalize(c, r, newKey(t), "rikki.mittari.example"); err == nil {
		t.Fatal("a name whose zone answers SERVFAIL was certified")
	}
	// Order 4 is one more than the limit allows. The client takes the 429 at
	// once instead of waiting out its Retry-After (x/crypto/acme retries until
	// the context ends otherwise: two minutes of this test).
	c.RetryBackoff = func(int, *http.Request, *http.Response) time.Duration { return -1 }
	if _, err := c.AuthorizeOrder(ctxT(t), acme.DomainIDs("neljas.mittari.example")); !isProblem(err, "rateLimited") {
		t.Fatalf("the fourth order: want rateLimited, got %v", err)
	}

	// The figures, as Prometheus scraped them.
	for _, f := range []struct {
		query string
		ok    func(float64) bool
	}{
		{`varmenne_build_info{job="varmenne"}`, equals(1)},
		{`varmenne_acme_requests_total{endpoint="finalize", status="200", problem="none"}`, equals(1)},
		{`varmenne_acme_requests_total{endpoint="revoke-cert", status="200", problem="none"}`, equals(1)},
		{`varmenne_acme_requests_total{endpoint="revoke-cert", status="400", problem="alreadyRevoked"}`, equals(1)},
		{`varmenne_acme_requests_total{endpoint="new-order", status="429", problem="rateLimited"}`, equals(1)},
		{`varmenne_acme_requests_total{endpoint="new-account", status="201", problem="none"}`, equals(1)},
		{`varmenne_acme_request_duration_seconds_count{endpoint="new-order"}`, equals(4)},
		{`varmenne_orders_total{profile="sote-server", issuer="production"}`, equals(3)},
		{`varmenne_finalizations_total{profile="sote-server", issuer="production", outcome="issued"}`, equals(1)},
		{`varmenne_certificates_issued_total{profile="sote-server", issuer="production"}`, equals(1)},
		{`varmenne_validations_total{challenge="http-01", outcome="valid"}`, equals(1)},
		{`varmenne_validations_total{challenge="http-01", outcome="caa"}`, equals(1)},
		// CAA refused kielletty (it names another CA) and rikki (its lookup failed).
		{`varmenne_caa_failures_total{problem="caa"}`, equals(2)},
		// rikki's http-01 lookup failed too, which decided its validation.
		{`varmenne_dns_failures_total{check="http-01"}`, equals(1)},
		{`varmenne_validations_total{challenge="http-01", outcome="dns"}`, equals(1)},
		{`varmenne_rate_limit_refusals_total{limit="new-orders-per-account"}`, equals(1)},
		{`varmenne_revocations_total{issuer="production", reason="superseded"}`, equals(1)},
		{`varmenne_crl_entries{issuer="production"}`, equals(1)},
		{`varmenne_crl_number{issuer="production"}`, atLeast(2)}, // the first, then the one listing the revocation
		{`varmenne_crl_size_bytes{issuer="production"}`, atLeast(100)},
		{`varmenne_crl_next_update_timestamp_seconds{issuer="production"} - time()`, atLeast(2 * 3600)},
		{`time() - varmenne_crl_this_update_timestamp_seconds{issuer="production"}`, atLeast(-5)},
		{`varmenne_crl_number{issuer="test"}`, atLeast(1)},
		{`varmenne_register_records`, equals(float64(len(hsmOrgs)))},
		{`varmenne_register_age_seconds`, atLeast(0)},
		{`time() - varmenne_register_loaded_timestamp_seconds`, atLeast(-5)},
		{`varmenne_register_max_stale_seconds`, atLeast(3600)},
		{`varmenne_organisations{state="in_register"}`, equals(float64(len(hsmOrgs)))},
		{`varmenne_organisations{state="suspended"}`, equals(0)},
		{`varmenne_hsm_sessions`, equals(4)},
		{`varmenne_hsm_sessions_in_use`, atLeast(0)},
		{`varmenne_signature_duration_seconds_count{issuer="production", backend="pkcs11"}`, atLeast(3)}, // the certificate and two CRLs
		{`varmenne_signature_errors_total{issuer="production", backend="pkcs11"}`, equals(0)},
		{`varmenne_db_connections_open`, atLeast(1)},
		{`varmenne_db_connections_in_use`, atLeast(0)},
		{`varmenne_db_connections_idle`, atLeast(0)},
		{`varmenne_db_connections_max`, atLeast(0)},
		{`varmenne_db_connection_waits_total`, atLeast(0)},
		{`varmenne_db_connection_wait_seconds_total`, atLeast(0)},
		{`varmenne_db_transaction_retries_total`, atLeast(0)},
		{`varmenne_audit_appends_total`, atLeast(10)},
		{`varmenne_audit_append_failures_total`, equals(0)},
		{`varmenne_metrics_store_errors`, equals(0)},
	} {
		prom.waitFor(f.query, f.ok)
	}

	t.Run("every family the docs list was scraped", func(t *testing.T) {
		doc := string(mustRead(t, "../../docs/metrics.md"))
		for _, m := range regexp.MustCompile("(?m)^\\| `(varmenne_[a-z_]+)` \\|").FindAllStringSubmatch(doc, -1) {
			name := m[1]
			if strings.HasSuffix(name, "_duration_seconds") {
				name += "_count"
			}
			got, err := prom.query(`count(` + name + `)`)
			if err != nil || len(got) != 1 || got[0].Value < 1 {
				t.Errorf("Prometheus has no %s: %v %v", m[1], got, err)
			}
		}
	})
	t.Run("the rules loaded and evaluate without error, and none fires", func(t *testing.T) {
		resp, err := http.Get("http://" + prom.addr + "/api/v1/rules")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
						State     string `json:"state"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range body.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health == "err" || r.LastError != "" {
					t.Errorf("rule %s: %s %s", r.Name, r.Health, r.LastError)
				}
				if r.State == "firing" {
					t.Errorf("rule %s fires on a healthy server", r.Name)
				}
			}
		}
		if n != 6 {
			t.Errorf("%d rules loaded, want 6", n)
		}
	})
	t.Run("every dashboard query runs", func(t *testing.T) {
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(mustRead(t, "../../deploy/grafana/varmenne-dashboard.json"), &d); err != nil {
			t.Fatal(err)
		}
		// Grafana's variables, as Grafana would fill them in.
		fill := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*")
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if _, err := prom.query(fill.Replace(tg.Expr)); err != nil {
					t.Errorf("panel %q: %v", p.Title, err)
				}
			}
		}
	})
}
