package metrics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/varmenne/varmenne/store"
)

// Store is what the scrape reads of the records (*store.SQL is one).
type Store interface {
	GetPublishedCRL(ctx context.Context, issuer string) (*store.CRLState, error)
	LastRegisterLoad(ctx context.Context) (store.RegisterLoad, error)
	OrganisationStates(ctx context.Context) (map[string]int64, error)
	RevocationCounts(ctx context.Context) ([]store.RevocationCount, error)
	PoolStats() sql.DBStats
}

// storeReadTimeout bounds the store's reads of one scrape.
const storeReadTimeout = 5 * time.Second

// WatchStore publishes, at each scrape, what st holds: each issuer's published CRL
// (number, thisUpdate and nextUpdate as Unix times, size, entries), the register
// copy's load time and records, the organisations by state, the revocations by
// issuer and reason, and the connection pool. reasonName names a CRLReason code
// (revocation.ByCode); an unknown code is labelled by its number.
func (m *Metrics) WatchStore(st Store, issuers []string, reasonName func(code int) string) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&storeCollector{st: st, issuers: issuers, reasonName: reasonName})
	m.reg.MustRegister(&poolCollector{st: st})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	crlNumberDesc     = desc("crl_number", "CRLNumber of the issuer's last published CRL.", "issuer")
	crlThisUpdateDesc = desc("crl_this_update_timestamp_seconds", "thisUpdate of the issuer's last published CRL, as a Unix time.", "issuer")
	crlNextUpdateDesc = desc("crl_next_update_timestamp_seconds", "nextUpdate of the issuer's last published CRL, as a Unix time: compare with time().", "issuer")
	crlSizeDesc       = desc("crl_size_bytes", "Size of the issuer's last published CRL (DER).", "issuer")
	crlEntriesDesc    = desc("crl_entries", "Revoked certificates listed in the issuer's last published CRL.", "issuer")
	registerLoadDesc  = desc("register_loaded_timestamp_seconds", "When THL's register was last written into the store, as a Unix time; absent while never loaded.")
	registerAgeDesc   = desc("register_age_seconds", "Age of the store's copy of THL's register; absent while never loaded.")
	registerRecsDesc  = desc("register_records", "Organisations the last register load listed.")
	orgsDesc          = desc("organisations", "Organisations in the store, by state (in_register, left_register, not_in_register, suspended).", "state")
	revocationsDesc   = desc("revocations_total", "Certificates revoked, by issuer and reason, read from the store (every door and replica; revocations are never deleted).", "issuer", "reason")
	storeErrorsDesc   = desc("metrics_store_errors", "Reads of this scrape from the store that failed (their figures are left out).")

	dbOpenDesc     = desc("db_connections_open", "Connections of the database pool, in use or idle.")
	dbInUseDesc    = desc("db_connections_in_use", "Connections of the database pool in use.")
	dbIdleDesc     = desc("db_connections_idle", "Idle connections of the database pool.")
	dbMaxDesc      = desc("db_connections_max", "Most connections the database pool opens (0: no limit).")
	dbWaitsDesc    = desc("db_connection_waits_total", "Times a request waited for a free connection of the pool.")
	dbWaitTimeDesc = desc("db_connection_wait_seconds_total", "Time requests waited for a free connection of the pool.")
)

type storeCollector struct {
	st         Store
	issuers    []string
	reasonName func(int) string
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{crlNumberDesc, crlThisUpdateDesc, crlNextUpdateDesc, crlSizeDesc, crlEntriesDesc,
		registerLoadDesc, registerAgeDesc, registerRecsDesc, orgsDesc, revocationsDesc, storeErrorsDesc} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storeReadTimeout)
	defer cancel()
	var failed []error
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, issuer := range c.issuers {
		crl, err := c.st.GetPublishedCRL(ctx, issuer)
		if errors.Is(err, store.ErrNotFound) {
			continue // none published yet
		}
		if err != nil {
			failed = append(failed, err)
			continue
		}
		gauge(crlNumberDesc, float64(crl.Number), issuer)
		gauge(crlThisUpdateDesc, unix(crl.ThisUpdate), issuer)
		gauge(crlNextUpdateDesc, unix(crl.NextUpdate), issuer)
		gauge(crlSizeDesc, float64(len(crl.DER)), issuer)
		gauge(crlEntriesDesc, float64(crl.Entries), issuer)
	}
	if l, err := c.st.LastRegisterLoad(ctx); err != nil {
		failed = append(failed, err)
	} else if !l.LoadedAt.IsZero() {
		gauge(registerLoadDesc, unix(l.LoadedAt))
		gauge(registerAgeDesc, time.Since(l.LoadedAt).Seconds())
		gauge(registerRecsDesc, float64(l.Records))
	}
	if states, err := c.st.OrganisationStates(ctx); err != nil {
		failed = append(failed, err)
	} else {
		for state, n := range states {
			gauge(orgsDesc, float64(n), state)
		}
	}
	if counts, err := c.st.RevocationCounts(ctx); err != nil {
		failed = append(failed, err)
	} else {
		byLabel := map[[2]string]int64{}
		for _, rc := range counts {
			byLabel[[2]string{rc.Issuer, c.reason(rc.Reason)}] += rc.Count
		}
		for l, n := range byLabel {
			ch <- prometheus.MustNewConstMetric(revocationsDesc, prometheus.CounterValue, float64(n), l[0], l[1])
		}
	}
	gauge(storeErrorsDesc, float64(len(failed)))
	for _, err := range failed {
		ch <- prometheus.NewInvalidMetric(storeErrorsDesc, fmt.Errorf("reading the store for the metrics: %w", err))
	}
}

func (c *storeCollector) reason(code int) string {
	if c.reasonName != nil {
		if n := c.reasonName(code); n != "" {
			return n
		}
	}
	return strconv.Itoa(code)
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

type poolCollector struct{ st Store }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dbOpenDesc, dbInUseDesc, dbIdleDesc, dbMaxDesc, dbWaitsDesc, dbWaitTimeDesc} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.PoolStats()
	ch <- prometheus.MustNewConstMetric(dbOpenDesc, prometheus.GaugeValue, float64(s.OpenConnections))
	ch <- prometheus.MustNewConstMetric(dbInUseDesc, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(dbIdleDesc, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(dbMaxDesc, prometheus.GaugeValue, float64(s.MaxOpenConnections))
	ch <- prometheus.MustNewConstMetric(dbWaitsDesc, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(dbWaitTimeDesc, prometheus.CounterValue, s.WaitDuration.Seconds())
}
