package alert

import (
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// Thresholds of the bursts, per window.
type Thresholds struct {
	RefusedLogins    int // operator logins and access refused (0: no alert)
	ACMEUnauthorized int // ACME requests refused as unauthorized (0: no alert)
	Window           time.Duration
}

// DefaultThresholds are the flags' defaults.
var DefaultThresholds = Thresholds{RefusedLogins: 10, ACMEUnauthorized: 50, Window: time.Minute}

// Watcher raises the alerts that the audit log's events and the ACME front end's
// refusals call for.
type Watcher struct {
	h       *Hook
	refused *Burst
	acme    *Burst
}

// Watch makes the watcher of h.
func (h *Hook) Watch(t Thresholds) *Watcher {
	return &Watcher{h: h,
		refused: h.Burst(KindRefusedLogins, "operator logins or requests refused", t.RefusedLogins, t.Window),
		acme:    h.Burst(KindACMEUnauthorized, "ACME requests refused as unauthorized", t.ACMEUnauthorized, t.Window)}
}

// AuditEvent looks at one committed audit event (audit.Log.Watch).
func (w *Watcher) AuditEvent(e store.AuditEvent) {
	if w == nil || w.h == nil {
		return
	}
	ok := e.Outcome == audit.OK
	fields := map[string]string{"audit_seq": itoa(e.Seq), "actor": e.Actor, "object": e.Object, "outcome": e.Outcome}
	raise := func(kind string, sev Severity, summary string) {
		w.h.Raise(Alert{Time: e.Time, Kind: kind, Severity: sev, Summary: summary, Fields: fields})
	}
	switch audit.Action(e.Action) {
	case audit.ActServeStart:
		raise(KindStart, Notice, "varmenne serve started")
	case audit.ActServeStop:
		if ok {
			raise(KindStop, Notice, "varmenne serve stopped")
		} else {
			raise(KindStop, Critical, "varmenne serve stopped: "+e.Outcome)
		}
	case audit.ActOperatorLogin, audit.ActAccessDenied:
		if strings.HasPrefix(e.Outcome, "refused") || audit.Action(e.Action) == audit.ActAccessDenied {
			w.refused.Add(map[string]string{"object": e.Object, "outcome": e.Outcome})
		}
	case audit.ActLoginsThrottled:
		raise(KindLoginsThrottled, Warning, "operator logins refused unchecked: a source reached its limit of refused logins")
	case audit.ActHSMRelogin, audit.ActHSMLogin, audit.ActHSMSelfTest:
		if !ok {
			raise(KindHSMFault, Critical, "HSM: "+e.Action+" "+e.Outcome)
		}
	case audit.ActSignEnd:
		if strings.HasPrefix(e.Outcome, audit.Failed) {
			raise(KindHSMFault, Critical, "an issuer key's signature failed: "+e.Outcome)
		}
	}
}

// ACMEProblem counts one problem document the ACME front end sent (its
// server.Config.OnProblem): unauthorized ones make a burst.
func (w *Watcher) ACMEProblem(kind acme.ErrorKind) {
	if w == nil || kind != acme.Unauthorized {
		return
	}
	w.acme.Add(nil)
}

// RegisterFailed reports a failed load of THL's register; stale when the copy
// every replica serves from is older than allowed, so that orders are refused.
func (w *Watcher) RegisterFailed(err error, loadedAt time.Time, stale bool) {
	if w == nil || w.h == nil {
		return
	}
	fields := map[string]string{"err": err.Error()}
	if !loadedAt.IsZero() {
		fields["loaded_at"] = loadedAt.UTC().Format(time.RFC3339)
	}
	if stale {
		w.h.Raise(Alert{Kind: KindRegisterStale, Severity: Critical, Fields: fields,
			Summary: "THL's register is stale: orders are refused until a load succeeds"})
		return
	}
	w.h.Raise(Alert{Kind: KindRegisterFailed, Severity: Warning, Fields: fields,
		Summary: "loading THL's register failed; the copy in the database serves until it is stale"})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
