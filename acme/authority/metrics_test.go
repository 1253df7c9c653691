package authority

import (
	"crypto/x509"
	"testing"

	"github.com/varmenne/varmenne/internal/metrics"
)

// counted is the value of the family's series with exactly these labels (0: none).
func counted(t *testing.T, m *metrics.Metrics, family string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			if len(s.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range s.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return s.GetCounter().GetValue()
		}
	}
	return 0
}

// TestMetricsCountTheAuthoritysEvents: an order, its validation and its
// finalization are counted once each, by profile and issuer; a finalization whose
// signing fails is counted failed and issues no certificate.
func TestMetricsCountTheAuthoritysEvents(t *testing.T) {
	m := metrics.New("test")
	f := newFixture(t, Config{Metrics: m})
	acct := f.account()
	f.issue(acct, "www.example.fi")

	// The second order reaches the signer, and the database goes as the intent is
	// to be recorded with its sign.begin event: signing cannot be audited, so it
	// fails.
	o := f.readyOrder(acct, "api.example.fi")
	f.rec.beforeBegin = func() { f.st.Close() }
	if _, err := f.finalize(acct, o.ID, makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{"api.example.fi"}})); err == nil {
		t.Fatal("finalize without a database succeeded")
	}

	server := map[string]string{"profile": "sote-server", "issuer": "production"}
	with := func(k, v string) map[string]string {
		l := map[string]string{k: v}
		for k, v := range server {
			l[k] = v
		}
		return l
	}
	for _, tt := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"varmenne_orders_total", server, 2},
		{"varmenne_finalizations_total", with("outcome", metrics.Issued), 1},
		{"varmenne_finalizations_total", with("outcome", metrics.Failed), 1},
		{"varmenne_certificates_issued_total", server, 1},
		{"varmenne_validations_total", map[string]string{"challenge": "http-01", "outcome": "valid"}, 2},
	} {
		if got := counted(t, m, tt.family, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.family, tt.labels, got, tt.want)
		}
	}
}
