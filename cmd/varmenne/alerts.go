package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/varmenne/varmenne/alert"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// alertFlags are serve's settings of the alert hook (package alert) and of the
// audit log's anchors.
type alertFlags struct {
	webhook, webhookSecret string
	allowNets              stringList
	syslog                 string
	thresholds             alert.Thresholds
	anchorEvery            time.Duration
	anchorsFile            string

	nets []netip.Prefix // allowNets, parsed by validate
}

// addAlertFlags adds --alert-* and --audit-anchor* to serve.
func addAlertFlags(fs *flag.FlagSet) *alertFlags {
	a := &alertFlags{thresholds: alert.DefaultThresholds}
	fs.StringVar(&a.webhook, "alert-webhook", "", "URL alerts are POSTed to as JSON, signed with HMAC-SHA256 (X-Varmenne-Signature) as the policy webhook's requests; https to a public address, or http/https to an --alert-allow-network")
	fs.StringVar(&a.webhookSecret, "alert-webhook-secret-file", "", "file of the HMAC key that signs the alert webhook's requests (at least 16 bytes)")
	fs.Var(&a.allowNets, "alert-allow-network", "non-public CIDR the alert webhook may reach, e.g. 10.20.0.0/16 for an internal monitor (repeatable)")
	fs.StringVar(&a.syslog, "alert-syslog", "", "send alerts to syslog: local (the local daemon), or udp://HOST:PORT or tcp://HOST:PORT of a syslog server (RFC 5424)")
	fs.IntVar(&a.thresholds.RefusedLogins, "alert-refused-logins", alert.DefaultThresholds.RefusedLogins, "alert when this many operator logins or requests are refused within a minute (0: never)")
	fs.IntVar(&a.thresholds.ACMEUnauthorized, "alert-acme-unauthorized", alert.DefaultThresholds.ACMEUnauthorized, "alert when this many ACME requests are refused as unauthorized within a minute (0: never)")
	fs.DurationVar(&a.anchorEvery, "audit-anchor-every", 10*time.Minute, "how often the audit log's head is appended to the anchor file (and sent to the alert hook), besides at start and stop")
	fs.StringVar(&a.anchorsFile, "audit-anchors", "", "anchor file of the audit log's head (default: DATA/"+auditAnchorsFile+"); copy it, or the alerts of kind audit.anchor, off the host")
	return a
}

func (a *alertFlags) validate() error {
	for _, s := range a.allowNets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--alert-allow-network %q is not a CIDR such as 10.20.0.0/16", s)
		}
		a.nets = append(a.nets, p.Masked())
	}
	switch {
	case a.thresholds.RefusedLogins < 0 || a.thresholds.ACMEUnauthorized < 0:
		return fmt.Errorf("--alert-refused-logins and --alert-acme-unauthorized are counts: give 0 (never) or more")
	case a.anchorEvery < time.Second:
		return fmt.Errorf("--audit-anchor-every %s: give a duration of a second or more, such as 10m", a.anchorEvery)
	case a.webhookSecret != "" && a.webhook == "":
		return fmt.Errorf("--alert-webhook-secret-file without --alert-webhook: give the URL the alerts go to")
	}
	return nil
}

// start makes the alert hook and its watcher; both nil (raising nothing) when no
// sink is configured. The webhook's URL and secret and the syslog target are
// checked here: a wrong one stops the start.
func (a *alertFlags) start(log *slog.Logger) (*alert.Hook, *alert.Watcher, error) {
	var sinks []alert.Sink
	host, _ := os.Hostname()
	if a.webhook != "" {
		s, err := alert.Webhook(a.webhook, a.webhookSecret, a.nets)
		if err != nil {
			return nil, nil, err
		}
		sinks = append(sinks, s)
	}
	if a.syslog != "" {
		s, err := alert.Syslog(a.syslog, host)
		if err != nil {
			return nil, nil, err
		}
		sinks = append(sinks, s)
	}
	h := alert.New(host, sinks, log.With("component", "alert"), nil)
	if h == nil {
		return nil, nil, nil
	}
	return h, h.Watch(a.thresholds), nil
}

// anchorsPath is the anchor file serve appends to.
func (a *alertFlags) anchorsPath(data string) string {
	if a.anchorsFile != "" {
		return a.anchorsFile
	}
	return filepath.Join(data, auditAnchorsFile)
}

// anchoring appends the audit log's head to the anchor file (0600) and sends it
// to the alert hook: now, every anchorEvery while ctx lasts, and once more when
// the returned function is called (at stop, after the stop's audit event). A head
// already anchored by this process is not written again.
func anchoring(ctx context.Context, st audit.HeadStore, path string, every time.Duration, hook *alert.Hook, log *slog.Logger) (stop func()) {
	var last audit.Anchor
	anchor := func() {
		a, ok, err := audit.Head(context.WithoutCancel(ctx), st, time.Now())
		if err != nil {
			log.Error("the audit log's head was not anchored", "err", err)
			return
		}
		if !ok || (a.Seq == last.Seq && a.Hash == last.Hash) {
			return
		}
		if err := audit.AppendAnchor(path, a); err != nil {
			log.Error("the audit log's head was not anchored", "file", path, "err", err)
			return
		}
		last = a
		hook.Raise(alert.Alert{Kind: alert.KindAnchor, Severity: alert.Info, Summary: fmt.Sprintf("audit log head: event %d", a.Seq),
			Fields: map[string]string{"seq": fmt.Sprint(a.Seq), "hash": a.Hash, "mac": a.MAC, "at": a.At.Format(time.RFC3339)}})
	}
	anchor()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				anchor()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		anchor()
	}
}

// alertsClose is how long a stopping serve waits for queued alerts (the stop
// alert among them) to be delivered.
const alertsClose = 10 * time.Second

// registerAlert is the register refresh's OnFailure: it tells the watcher whether
// the copy every replica serves from (its last load, read with last) is now
// stale, by the rule lookups answer by (thl.Stored.Stale).
func registerAlert(ctx context.Context, last func(context.Context) (store.RegisterLoad, error), stale func(time.Time) bool, w *alert.Watcher) func(error) {
	return func(err error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
		defer cancel()
		l, lerr := last(rctx)
		if lerr != nil {
			l = store.RegisterLoad{}
		}
		w.RegisterFailed(err, l.LoadedAt, stale(l.LoadedAt))
	}
}
