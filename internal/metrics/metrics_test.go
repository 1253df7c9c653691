package metrics

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/store"
)

// fakeStore holds what a scrape reads.
type fakeStore struct{ fail bool }

func (f fakeStore) GetPublishedCRL(_ context.Context, issuer string) (*store.CRLState, error) {
	if issuer == "unpublished" {
		return nil, store.ErrNotFound
	}
	return &store.CRLState{Issuer: issuer, Number: 7, ThisUpdate: time.Unix(1000, 0), NextUpdate: time.Unix(1000+8*3600, 0), DER: make([]byte, 321), Entries: 2}, nil
}

func (f fakeStore) LastRegisterLoad(context.Context) (store.RegisterLoad, error) {
	return store.RegisterLoad{LoadedAt: time.Now().Add(-time.Hour), Records: 12}, nil
}

func (f fakeStore) OrganisationStates(context.Context) (map[string]int64, error) {
	if f.fail {
		return nil, errors.New("database down")
	}
	return map[string]int64{store.OrgInRegister: 3, store.OrgSuspended: 1}, nil
}

func (f fakeStore) RevocationCounts(context.Context) ([]store.RevocationCount, error) {
	return []store.RevocationCount{{Issuer: "production", Reason: 1, Count: 2}, {Issuer: "production", Reason: 4, Count: 5}}, nil
}

func (f fakeStore) PoolStats() sql.DBStats { return sql.DBStats{OpenConnections: 2, InUse: 1, Idle: 1} }

type fakeValidator struct{ err error }

func (v fakeValidator) HTTP01(context.Context, string, string, string) error { return v.err }
func (v fakeValidator) DNS01(context.Context, string, string) error          { return v.err }
func (v fakeValidator) TLSALPN01(context.Context, string, string) error      { return v.err }
func (v fakeValidator) CAA(context.Context, string, string, string) error    { return v.err }
func (v fakeValidator) DNSAccount01(context.Context, string, string, string) error {
	return v.err
}
func (v fakeValidator) DNSPersist01(context.Context, string, bool, string, time.Time) (*validate.PersistRecord, error) {
	return nil, v.err
}

// exercised is a Metrics on which every event happened once.
func exercised(t *testing.T, st Store) (*Metrics, crypto.Signer) {
	t.Helper()
	m := New("v1.2.3")
	m.ACMERequest("new-order", 201, "", 30*time.Millisecond)
	m.ACMERequest("finalize", 403, "orderNotReady", time.Millisecond)
	m.OrderCreated("sote-server", "production")
	m.Finalized("sote-server", "production", Issued)
	m.Finalized("sote-server", "production", Failed)
	m.RateLimited("new-orders")
	m.TxRetried()
	m.AuditAppended(3)
	m.AuditFailed(1)
	m.RegisterMaxStale(24 * time.Hour)
	m.WatchHSMSessions(func() (int, int) { return 1, 4 })
	m.WatchStore(st, []string{"production", "unpublished"}, func(code int) string {
		return map[int]string{1: "keyCompromise"}[code]
	})
	m.Validated("http-01", nil)
	m.Validated("dns-01", acme.Errorf(acme.DNS, "SERVFAIL"))
	m.Validated("tls-alpn-01", errors.New("boom"))
	ctx := context.Background()
	v := m.Validations(fakeValidator{})
	_ = v.HTTP01(ctx, "a.example", "t", "k")
	v = m.Validations(fakeValidator{err: acme.Errorf(acme.DNS, "SERVFAIL")})
	_ = v.DNS01(ctx, "a.example", "k")
	_ = v.CAA(ctx, "a.example", "", "dns-01")
	_ = m.Validations(fakeValidator{err: acme.Errorf(acme.CAA, "forbidden")}).CAA(ctx, "b.example", "", "http-01")
	_ = m.Validations(fakeValidator{err: errors.New("boom")}).TLSALPN01(ctx, "c.example", "k")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return m, m.TimedKey(key, "production", "file")
}

func families(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil && !strings.Contains(err.Error(), "database down") {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// documented reads the family table of docs/metrics.md: name → labels.
func documented(t *testing.T) map[string][]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(varmenne_[a-z_]+)` \\| [a-z]+ \\| *([^|]*?) *\\|")
	out := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		var labels []string
		for _, l := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(m[2], -1) {
			labels = append(labels, l[1])
		}
		out[m[1]] = labels
	}
	if len(out) < 30 {
		t.Fatalf("docs/metrics.md lists %d families; the table was not read", len(out))
	}
	return out
}

// TestFamiliesAreTheDocumentedOnes: after every event, the registry exports
// exactly the families docs/metrics.md lists, each with the labels it lists (a
// bounded set: none is a name, serial or account).
func TestFamiliesAreTheDocumentedOnes(t *testing.T) {
	m, key := exercised(t, fakeStore{})
	sum := sha256.Sum256([]byte("x"))
	if _, err := key.Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	got := families(t, m)
	docs := documented(t)
	for name, labels := range docs {
		mf, ok := got[name]
		if !ok {
			t.Errorf("%s is documented but not exported", name)
			continue
		}
		for _, metric := range mf.GetMetric() {
			var have []string
			for _, lp := range metric.GetLabel() {
				have = append(have, lp.GetName())
			}
			slices.Sort(have)
			want := slices.Clone(labels)
			slices.Sort(want)
			if !slices.Equal(have, want) {
				t.Errorf("%s has labels %v, docs/metrics.md says %v", name, have, want)
			}
		}
	}
	for name := range got {
		if _, ok := docs[name]; strings.HasPrefix(name, "varmenne_") && !ok {
			t.Errorf("%s is exported but not in docs/metrics.md", name)
		}
	}
}

// value is the value of the family's metric with these label values.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	mf, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, metric := range mf.GetMetric() {
		for _, lp := range metric.GetLabel() {
			if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
				continue next
			}
		}
		switch {
		case metric.Counter != nil:
			return metric.Counter.GetValue()
		case metric.Gauge != nil:
			return metric.Gauge.GetValue()
		case metric.Histogram != nil:
			return float64(metric.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s has no metric %v", name, labels)
	return 0
}

func TestEventsAreCounted(t *testing.T) {
	m, key := exercised(t, fakeStore{})
	sum := sha256.Sum256([]byte("x"))
	for range 3 {
		if _, err := key.Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	f := families(t, m)
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"varmenne_acme_requests_total", map[string]string{"endpoint": "new-order", "status": "201", "problem": "none"}, 1},
		{"varmenne_acme_requests_total", map[string]string{"endpoint": "finalize", "status": "403", "problem": "orderNotReady"}, 1},
		{"varmenne_acme_request_duration_seconds", map[string]string{"endpoint": "new-order"}, 1},
		{"varmenne_orders_total", map[string]string{"profile": "sote-server", "issuer": "production"}, 1},
		{"varmenne_finalizations_total", map[string]string{"outcome": "issued"}, 1},
		{"varmenne_finalizations_total", map[string]string{"outcome": "failed"}, 1},
		{"varmenne_certificates_issued_total", map[string]string{"profile": "sote-server"}, 1},
		{"varmenne_validations_total", map[string]string{"challenge": "http-01", "outcome": "valid"}, 1},
		{"varmenne_validations_total", map[string]string{"challenge": "dns-01", "outcome": "dns"}, 1},
		{"varmenne_validations_total", map[string]string{"challenge": "tls-alpn-01", "outcome": "serverInternal"}, 1},
		{"varmenne_caa_failures_total", map[string]string{"problem": "dns"}, 1},
		{"varmenne_caa_failures_total", map[string]string{"problem": "caa"}, 1},
		{"varmenne_dns_failures_total", map[string]string{"check": "dns-01"}, 1},
		{"varmenne_dns_failures_total", map[string]string{"check": "caa"}, 1},
		{"varmenne_rate_limit_refusals_total", map[string]string{"limit": "new-orders"}, 1},
		{"varmenne_db_transaction_retries_total", nil, 1},
		{"varmenne_audit_appends_total", nil, 3},
		{"varmenne_audit_append_failures_total", nil, 1},
		{"varmenne_register_max_stale_seconds", nil, 86400},
		{"varmenne_hsm_sessions_in_use", nil, 1},
		{"varmenne_hsm_sessions", nil, 4},
		{"varmenne_signature_duration_seconds", map[string]string{"issuer": "production", "backend": "file"}, 3},
		{"varmenne_signature_errors_total", map[string]string{"issuer": "production"}, 0},
		{"varmenne_crl_number", map[string]string{"issuer": "production"}, 7},
		{"varmenne_crl_next_update_timestamp_seconds", map[string]string{"issuer": "production"}, 1000 + 8*3600},
		{"varmenne_crl_this_update_timestamp_seconds", map[string]string{"issuer": "production"}, 1000},
		{"varmenne_crl_size_bytes", map[string]string{"issuer": "production"}, 321},
		{"varmenne_crl_entries", map[string]string{"issuer": "production"}, 2},
		{"varmenne_register_records", nil, 12},
		{"varmenne_organisations", map[string]string{"state": "in_register"}, 3},
		{"varmenne_organisations", map[string]string{"state": "suspended"}, 1},
		{"varmenne_revocations_total", map[string]string{"issuer": "production", "reason": "keyCompromise"}, 2},
		{"varmenne_revocations_total", map[string]string{"issuer": "production", "reason": "4"}, 5},
		{"varmenne_db_connections_in_use", nil, 1},
		{"varmenne_build_info", map[string]string{"version": "v1.2.3"}, 1},
		{"varmenne_metrics_store_errors", nil, 0},
	} {
		if got := value(t, f, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if len(f["varmenne_crl_number"].GetMetric()) != 1 {
		t.Errorf("an issuer without a published CRL has CRL figures: %v", f["varmenne_crl_number"])
	}
	if age := value(t, f, "varmenne_register_age_seconds", nil); age < 3600 || age > 3700 {
		t.Errorf("register age %v s, want about an hour", age)
	}
}

// TestAFailedStoreReadLeavesTheRestServed: a figure the database cannot give is
// left out and counted; the scrape still answers 200 with the other figures.
func TestAFailedStoreReadLeavesTheRestServed(t *testing.T) {
	m, _ := exercised(t, fakeStore{fail: true})
	w := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	if w.Code != 200 {
		t.Fatalf("/metrics answered %d: %s", w.Code, body)
	}
	for _, want := range []string{"varmenne_metrics_store_errors 1", `varmenne_crl_number{issuer="production"} 7`, "varmenne_orders_total{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "varmenne_organisations{") {
		t.Errorf("/metrics has organisation figures the store did not give")
	}
}

type ctxKey struct{ crypto.Signer }

var errCancelled = errors.New("cancelled")

func (k ctxKey) SignContext(ctx context.Context, _ io.Reader, _ []byte, _ crypto.SignerOpts) ([]byte, error) {
	if ctx.Err() != nil {
		return nil, errCancelled
	}
	return []byte("sig"), nil
}

// TestTimedKeyKeepsTheContext: a key that honours a context (an HSM key) still
// does when timed, and its failures are counted.
func TestTimedKeyKeepsTheContext(t *testing.T) {
	m := New("test")
	inner, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k := m.TimedKey(ctxKey{inner}, "test", "pkcs11")
	cs, ok := k.(contextSigner)
	if !ok {
		t.Fatal("the timed key lost SignContext")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cs.SignContext(ctx, rand.Reader, nil, nil); !errors.Is(err, errCancelled) {
		t.Fatalf("SignContext on a cancelled context: %v", err)
	}
	if got := value(t, families(t, m), "varmenne_signature_errors_total", map[string]string{"backend": "pkcs11"}); got != 1 {
		t.Errorf("signature errors %v, want 1", got)
	}
	if k.Public() == nil {
		t.Error("the timed key has no public key")
	}
	if _, ok := UnwrapKey(k).(ctxKey); !ok {
		t.Errorf("UnwrapKey gave %T, not the key timed", UnwrapKey(k))
	}
	if UnwrapKey(inner) != crypto.Signer(inner) {
		t.Error("UnwrapKey changed a key that was not timed")
	}
}

// TestNilMetricsCountNothing: a server or test without metrics calls the same
// methods.
func TestNilMetricsCountNothing(t *testing.T) {
	var m *Metrics
	m.ACMERequest("x", 200, "", 0)
	m.OrderCreated("p", "i")
	m.Finalized("p", "i", Issued)
	m.RateLimited("l")
	m.TxRetried()
	m.AuditAppended(1)
	m.AuditFailed(1)
	m.RegisterMaxStale(time.Hour)
	m.WatchHSMSessions(nil)
	m.WatchStore(nil, nil, nil)
	m.Validated("http-01", nil)
	v := fakeValidator{}
	if m.Validations(v) != Validator(v) {
		t.Error("a nil Metrics wrapped the validator")
	}
}

// TestPromtoolFindsNoLintProblems: promtool check metrics, Prometheus' own lint of
// names, units and help texts, accepts every family of a full scrape.
func TestPromtoolFindsNoLintProblems(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run ./scripts/install-test-deps (Debian package prometheus; make test does)")
	}
	m, key := exercised(t, fakeStore{})
	sum := sha256.Sum256([]byte("x"))
	if _, err := key.Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = w.Body
	out, err := cmd.CombinedOutput()
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "varmenne_") {
			problems = append(problems, line)
		}
	}
	if len(problems) > 0 || (err != nil && len(out) == 0) {
		t.Errorf("promtool check metrics: %v\n%s", err, strings.Join(problems, "\n"))
	}
}

// TestProfileSeriesStartAtZero: a profile's series exist before its first event,
// so the rules' increase() sees the first failure after a start.
func TestProfileSeriesStartAtZero(t *testing.T) {
	m := New("test")
	m.Profile("sote-server-test", "test")
	f := families(t, m)
	for _, o := range []string{Issued, Refused, Failed} {
		if got := value(t, f, "varmenne_finalizations_total", map[string]string{"profile": "sote-server-test", "issuer": "test", "outcome": o}); got != 0 {
			t.Errorf("finalizations %s = %v before any", o, got)
		}
	}
	for _, name := range []string{"varmenne_orders_total", "varmenne_certificates_issued_total"} {
		if got := value(t, f, name, map[string]string{"profile": "sote-server-test", "issuer": "test"}); got != 0 {
			t.Errorf("%s = %v before any", name, got)
		}
	}
}
