// Package metrics owns varmenne's Prometheus metrics: every family's name, help,
// labels and buckets, one registry per server, and the small calls the other
// packages make when something happens (one call per event). Figures the database
// holds (CRLs, the register, organisations, revocations, the connection pool) are
// read from the store at each scrape (store.go), so every replica reports the same.
//
// Labels are bounded: endpoints, statuses, problem types, profiles, issuers,
// challenge types, limits, reasons and states. Never a name, serial, account or
// organisation. The package decides nothing about issuance and must not be
// consulted for a decision: a nil *Metrics counts nothing and every method still
// returns.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every family.
const namespace = "varmenne"

// Outcomes of a finalization (varmenne_finalizations_total's outcome label).
const (
	// Issued: the certificate was signed and stored.
	Issued = "issued"
	// Refused: the order was processing and the signer refused it as asked (its
	// key certified meanwhile, its dates): the client's doing.
	Refused = "refused"
	// Failed: the order was processing and ended invalid because signing or
	// storing failed: the CA's doing.
	Failed = "failed"
)

// Metrics is one server's metrics and their registry. Its methods are safe for
// concurrent use and do nothing on a nil *Metrics.
type Metrics struct {
	reg *prometheus.Registry

	acmeRequests  *prometheus.CounterVec
	acmeDuration  *prometheus.HistogramVec
	orders        *prometheus.CounterVec
	finalizations *prometheus.CounterVec
	certificates  *prometheus.CounterVec
	validations   *prometheus.CounterVec
	caaFailures   *prometheus.CounterVec
	dnsFailures   *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	signDuration  *prometheus.HistogramVec
	signErrors    *prometheus.CounterVec
	txRetries     prometheus.Counter
	auditAppends  prometheus.Counter
	auditFailures prometheus.Counter
	registerStale prometheus.Gauge
}

// New makes the metrics of one server on a registry of their own, with
// varmenne_build_info for version, and the Go runtime's and the process's
// standard collectors.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	m.acmeRequests = counter("acme_requests_total",
		"ACME requests answered, by endpoint, HTTP status and problem type (\"none\" for a success).", "endpoint", "status", "problem")
	m.acmeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "acme_request_duration_seconds",
		Help:    "Time to answer an ACME request, by endpoint.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"endpoint"})
	m.reg.MustRegister(m.acmeDuration)
	m.orders = counter("orders_total", "Orders created, by profile and issuer.", "profile", "issuer")
	m.finalizations = counter("finalizations_total",
		"Finalizations that reached the signer, by profile, issuer and outcome (issued, refused, failed).", "profile", "issuer", "outcome")
	m.certificates = counter("certificates_issued_total", "Certificates signed and stored, by profile and issuer.", "profile", "issuer")
	m.validations = counter("validations_total",
		"Challenge validations, by challenge type and outcome (valid, or the problem type of the failure).", "challenge", "outcome")
	m.caaFailures = counter("caa_failures_total",
		"CAA checks that did not allow issuance, by problem type (caa: the records forbid it; dns: they could not be read).", "problem")
	m.dnsFailures = counter("dns_failures_total",
		"DNS lookups of validation that failed (problem type dns), by check (http-01, dns-01, tls-alpn-01, caa).", "check")
	m.rateLimited = counter("rate_limit_refusals_total", "Requests refused by a rate limit, by limit.", "limit")
	m.signDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "signature_duration_seconds",
		Help:    "Time an issuer key takes to sign (certificates, CRLs), by issuer and key backend (file, pkcs11).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"issuer", "backend"})
	m.reg.MustRegister(m.signDuration)
	m.signErrors = counter("signature_errors_total", "Signatures an issuer key failed to make, by issuer and key backend.", "issuer", "backend")
	m.txRetries = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "db_transaction_retries_total",
		Help: "Database transactions run again after a serialization failure, deadlock or busy database."})
	m.auditAppends = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "audit_appends_total",
		Help: "Audit events appended (committed) to the audit log."})
	m.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "audit_append_failures_total",
		Help: "Audit events that could not be appended: their change did not happen."})
	m.registerStale = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "register_max_stale_seconds",
		Help: "How old the copy of THL's register may be before issuance pauses (--register-max-stale); absent without a register."})
	m.reg.MustRegister(m.txRetries, m.auditAppends, m.auditFailures)
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help:        "The running software: always 1, with its version and Go version as labels.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	build.Set(1)
	m.reg.MustRegister(build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the metrics are on (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats. A figure the
// store could not give is left out of the scrape (and logged through errorLog),
// the others are served.
func (m *Metrics) Handler(errorLog promhttp.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: errorLog, ErrorHandling: promhttp.ContinueOnError, Registry: m.reg})
}

// ACMERequest counts one answered ACME request. problem is the problem type of an
// error answer, "" for a success.
func (m *Metrics) ACMERequest(endpoint string, status int, problem string, took time.Duration) {
	if m == nil {
		return
	}
	if problem == "" {
		problem = "none"
	}
	m.acmeRequests.WithLabelValues(endpoint, strconv.Itoa(status), problem).Inc()
	m.acmeDuration.WithLabelValues(endpoint).Observe(took.Seconds())
}

// OrderCreated counts a new order of profile, signed by issuer.
func (m *Metrics) OrderCreated(profile, issuer string) {
	if m == nil {
		return
	}
	m.orders.WithLabelValues(profile, issuer).Inc()
}

// Finalized counts a finalization that reached the signer, with its outcome
// (Issued, Refused or Failed); an issued one is also a certificate.
func (m *Metrics) Finalized(profile, issuer, outcome string) {
	if m == nil {
		return
	}
	m.finalizations.WithLabelValues(profile, issuer, outcome).Inc()
	if outcome == Issued {
		m.certificates.WithLabelValues(profile, issuer).Inc()
	}
}

// Profile makes the series of a profile signed by issuer exist at zero (orders,
// every finalization outcome, certificates), so that the first event after a
// start is an increase the rules see: increase() misses a series that appears
// with its first count.
func (m *Metrics) Profile(profile, issuer string) {
	if m == nil {
		return
	}
	m.orders.WithLabelValues(profile, issuer)
	m.certificates.WithLabelValues(profile, issuer)
	for _, o := range []string{Issued, Refused, Failed} {
		m.finalizations.WithLabelValues(profile, issuer, o)
	}
}

// RateLimited counts a refusal by the rate limit named limit.
func (m *Metrics) RateLimited(limit string) {
	if m == nil {
		return
	}
	m.rateLimited.WithLabelValues(limit).Inc()
}

// TxRetried counts a database transaction run again.
func (m *Metrics) TxRetried() {
	if m == nil {
		return
	}
	m.txRetries.Inc()
}

// AuditAppended counts n audit events committed to the log.
func (m *Metrics) AuditAppended(n int) {
	if m == nil {
		return
	}
	m.auditAppends.Add(float64(n))
}

// AuditFailed counts n audit events that could not be appended.
func (m *Metrics) AuditFailed(n int) {
	if m == nil {
		return
	}
	m.auditFailures.Add(float64(n))
}

// RegisterMaxStale publishes --register-max-stale, so the register alert compares
// the copy's age with what the server itself tolerates.
func (m *Metrics) RegisterMaxStale(d time.Duration) {
	if m == nil {
		return
	}
	m.registerStale.Set(d.Seconds())
	_ = m.reg.Register(m.registerStale) // a second call only sets the value
}

// WatchHSMSessions publishes the sessions of the HSM's session pool: sessions
// reports how many are in use (signing now) and how many the pool has.
func (m *Metrics) WatchHSMSessions(sessions func() (inUse, size int)) {
	if m == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "hsm_sessions_in_use",
			Help: "PKCS#11 sessions of the issuer keys' pool in use (an operation running)."},
			func() float64 { n, _ := sessions(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "hsm_sessions",
			Help: "PKCS#11 sessions in the issuer keys' pool (--pkcs11-sessions)."},
			func() float64 { _, n := sessions(); return float64(n) }),
	)
}
