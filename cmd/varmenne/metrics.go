package main

import (
	"log/slog"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/internal/metrics"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
	"github.com/varmenne/varmenne/store"
)

// newMetrics makes the server's metrics (internal/metrics), served on the ops
// listener's /metrics, and hooks the store's transaction retries into them.
func newMetrics(st *store.SQL) *metrics.Metrics {
	m := metrics.New(version())
	st.OnTxRetry(m.TxRetried)
	return m
}

// watchKeys times every signature of the issuer keys of every generation and,
// with HSM keys, publishes the session pool; then, once the issuers are known,
// what the store holds of them (CRLs, revocations) and of the register and the
// organisations.
// Call it before the keys are handed to the profiles and the CRL publisher.
func watchKeys(m *metrics.Metrics, st *store.SQL, pki *filekey.DevPKI) {
	watched := false
	var names []string
	for _, g := range pki.Generations { // Production and Test are the first of theirs
		iss := g.Issuer
		names = append(names, iss.Name)
		backend := "file"
		if k, ok := iss.Key.(*pkcs11.Key); ok {
			backend = "pkcs11"
			if !watched { // the issuers' keys share the token's one pool
				m.WatchHSMSessions(k.Sessions)
				watched = true
			}
		}
		iss.Key = m.TimedKey(iss.Key, iss.Name, backend)
	}
	m.WatchStore(st, names, func(code int) string {
		r, _ := revocation.ByCode(code)
		return r.Name
	})
}

// watchProfiles makes each profile's series exist from the start (Metrics.Profile).
func watchProfiles(m *metrics.Metrics, profiles []authority.Profile) {
	for _, p := range profiles {
		m.Profile(p.Name, p.CA.Issuer().Name)
	}
}

// metricsErrorLog logs what the metrics handler could not serve.
type metricsErrorLog struct{ log *slog.Logger }

func (l metricsErrorLog) Println(v ...any) { l.log.Warn("metrics", "err", slog.AnyValue(v)) }
