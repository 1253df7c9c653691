// Package alert tells an operator's monitoring, as it happens, what needs a
// person: serve started or stopped, a burst of refused access, an HSM fault, a
// THL register that could not be loaded or went stale, and the audit log's
// anchors. It sends to sinks (a signed webhook, syslog) from a bounded queue of
// its own: raising an alert never blocks the path that raised it, and an alert
// that finds the queue full is dropped and counted.
//
// It must not decide anything: an alert reports what the audit log, the
// register or the front end already decided.
package alert

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Severity says how soon a person should look.
type Severity string

// Severities, most urgent first (syslog's crit, warning, notice, info).
const (
	Critical Severity = "critical"
	Warning  Severity = "warning"
	Notice   Severity = "notice"
	Info     Severity = "info"
)

// Kinds of alert.
const (
	KindStart            = "serve.start"
	KindStop             = "serve.stop"
	KindRefusedLogins    = "access.refused.burst"    // operator logins or access refused, above the threshold per window
	KindLoginsThrottled  = "access.throttled"        // a source's logins refused unchecked (operator.login.throttled)
	KindACMEUnauthorized = "acme.unauthorized.burst" // ACME requests refused as unauthorized, above the threshold per window
	KindHSMFault         = "hsm.fault"               // a failed HSM re-login or signature
	KindRegisterFailed   = "register.load.failed"    // a load of THL's register failed; the copy in the database serves
	KindRegisterStale    = "register.stale"          // the register's copy is older than allowed: orders are refused
	KindAnchor           = "audit.anchor"            // the audit log's head, for an off-host copy
)

// Alert is one message to the operator's monitoring.
type Alert struct {
	Time     time.Time         `json:"time"`
	Host     string            `json:"host"`
	Kind     string            `json:"kind"`
	Severity Severity          `json:"severity"`
	Summary  string            `json:"summary"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// Sink delivers alerts somewhere.
type Sink interface {
	Name() string
	Send(ctx context.Context, a Alert) error
}

// QueueSize is how many alerts wait for delivery before new ones are dropped.
const QueueSize = 256

// sendTimeout bounds one delivery to one sink.
const sendTimeout = 5 * time.Second

// Hook queues alerts and delivers each to every sink, in order, on a goroutine
// of its own. A nil *Hook drops everything silently: serve without sinks.
type Hook struct {
	host  string
	sinks []Sink
	log   *slog.Logger
	now   func() time.Time

	q       chan Alert
	done    chan struct{}
	closing sync.Once
	mu      sync.RWMutex // held for reading by Raise, for writing by Close
	closed  bool

	dropped atomic.Uint64
	failed  atomic.Uint64
}

// New starts a hook that sends to sinks, naming host as the alerts' source; nil
// when there are no sinks. now nil means time.Now.
func New(host string, sinks []Sink, log *slog.Logger, now func() time.Time) *Hook {
	if len(sinks) == 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hook{host: host, sinks: sinks, log: log, now: now, q: make(chan Alert, QueueSize), done: make(chan struct{})}
	go h.deliver()
	return h
}

// Raise queues a without waiting; when the queue is full a is dropped and
// counted (Dropped).
func (h *Hook) Raise(a Alert) {
	if h == nil {
		return
	}
	if a.Time.IsZero() {
		a.Time = h.now()
	}
	a.Time = a.Time.UTC()
	a.Host = h.host
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		h.dropped.Add(1)
		return
	}
	select {
	case h.q <- a:
	default:
		h.dropped.Add(1)
	}
}

// Dropped is how many alerts found the queue full (or the hook closed).
func (h *Hook) Dropped() uint64 {
	if h == nil {
		return 0
	}
	return h.dropped.Load()
}

// Failed is how many deliveries to a sink failed.
func (h *Hook) Failed() uint64 {
	if h == nil {
		return 0
	}
	return h.failed.Load()
}

func (h *Hook) deliver() {
	defer close(h.done)
	for a := range h.q {
		for _, s := range h.sinks {
			ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
			err := s.Send(ctx, a)
			cancel()
			if err != nil {
				h.failed.Add(1)
				h.log.Warn("an alert was not delivered", "sink", s.Name(), "kind", a.Kind, "err", err)
			}
		}
	}
}

// Close stops taking alerts and waits until those queued are delivered, or ctx
// ends. The stop alert is raised before it.
func (h *Hook) Close(ctx context.Context) {
	if h == nil {
		return
	}
	h.closing.Do(func() {
		h.mu.Lock()
		h.closed = true
		close(h.q)
		h.mu.Unlock()
	})
	select {
	case <-h.done:
	case <-ctx.Done():
		h.log.Warn("alerts still queued at stop were not delivered", "queued", len(h.q))
	}
	if n := h.dropped.Load(); n > 0 {
		h.log.Warn("alerts were dropped: the queue was full", "dropped", n)
	}
}

// Burst raises one alert of kind when threshold events were counted (Add) within
// one window: a refused login is routine, a run of them is an attack or a
// broken client. A window starts at the first event after the last one ended.
type Burst struct {
	h         *Hook
	kind      string
	what      string // "operator logins or requests refused", for the summary
	threshold int
	window    time.Duration

	mu     sync.Mutex
	start  time.Time
	count  int
	raised bool
}

// Burst counts events of kind for h; threshold 0 never raises.
func (h *Hook) Burst(kind, what string, threshold int, window time.Duration) *Burst {
	return &Burst{h: h, kind: kind, what: what, threshold: threshold, window: window}
}

// Add counts one event, with fields of the event that crossed the threshold.
func (b *Burst) Add(fields map[string]string) {
	if b == nil || b.h == nil || b.threshold <= 0 {
		return
	}
	now := b.h.now()
	b.mu.Lock()
	if b.start.IsZero() || now.Sub(b.start) >= b.window {
		b.start, b.count, b.raised = now, 0, false
	}
	b.count++
	raise := b.count >= b.threshold && !b.raised
	if raise {
		b.raised = true
	}
	start := b.start
	b.mu.Unlock()
	if !raise {
		return
	}
	f := map[string]string{"count": fmt.Sprint(b.threshold), "window": b.window.String(), "since": start.UTC().Format(time.RFC3339)}
	for k, v := range fields {
		f["last_"+k] = v
	}
	b.h.Raise(Alert{Kind: b.kind, Severity: Warning, Fields: f,
		Summary: fmt.Sprintf("%d %s within %s", b.threshold, b.what, b.window)})
}
