package admin_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// lookupCounter is the store with a count of the operator look-ups that checking
// a credential makes, so a test sees whether a credential was checked at all.
type lookupCounter struct {
	*store.SQL
	lookups    atomic.Int64
	countsDown bool
}

func (c *lookupCounter) GetOperator(ctx context.Context, name string) (*store.Operator, error) {
	c.lookups.Add(1)
	return c.SQL.GetOperator(ctx, name)
}

func (c *lookupCounter) GetOperatorByCert(ctx context.Context, fingerprint string) (*store.Operator, error) {
	c.lookups.Add(1)
	return c.SQL.GetOperatorByCert(ctx, fingerprint)
}

func (c *lookupCounter) RateLimitCount(ctx context.Context, name, subject string, max int, window time.Duration, now time.Time) (store.RateLimitUse, error) {
	if c.countsDown {
		return store.RateLimitUse{}, errors.New("database unavailable")
	}
	return c.SQL.RateLimitCount(ctx, name, subject, max, window, now)
}

func kindOf(err error) admin.Kind {
	var e *admin.Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return -1
}

// loginEvents are the refused logins and the summaries among events.
func loginEvents(events []store.AuditEvent) (refused, summaries []store.AuditEvent) {
	for _, e := range events {
		switch e.Action {
		case string(audit.ActOperatorLogin):
			if strings.HasPrefix(e.Outcome, "refused") {
				refused = append(refused, e)
			}
		case string(audit.ActLoginsThrottled):
			summaries = append(summaries, e)
		}
	}
	return refused, summaries
}

// TestLoginLimitPerSource: 200 wrong tokens from one source. The first
// PerSource (10) are checked, refused and recorded one by one; the other 190,
// and then a correct token from the same source, are refused RateLimited without
// a look-up. Once the window ended, one summary records their exact count: the
// attack leaves PerSource + 1 = 11 events in the audit log, not 201.
func TestLoginLimitPerSource(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	st := &lookupCounter{SQL: f.St}
	svc := admin.New(f.Cfg, st, f.Log, nil)
	limits := admin.DefaultLoginLimits
	const source, attempts = "192.0.2.7", 200
	windowStart := f.Clock.Now().Truncate(limits.Window)
	before := f.LastSeq()
	for i := range attempts {
		f.Clock.Add(time.Second) // 200 s: all in one 15-minute window
		_, err := svc.Authenticate(f.Ctx, admin.Credential{Token: fmt.Sprintf("op%d.wrong", i), Source: source})
		want := admin.Unauthenticated
		if i >= limits.PerSource {
			want = admin.RateLimited
		}
		if kindOf(err) != want {
			t.Fatalf("attempt %d: %v, want %v", i+1, err, want)
		}
		var e *admin.Error
		if errors.As(err, &e) && want == admin.RateLimited && (e.RetryAfter <= 0 || e.RetryAfter > limits.Window ||
			!strings.Contains(e.Detail, "from "+source) || !strings.Contains(e.Detail, "not checked")) {
			t.Fatalf("attempt %d: %+v, want a retry within the window and a detail naming the source", i+1, e)
		}
	}
	if n := st.lookups.Load(); n != int64(limits.PerSource) {
		t.Fatalf("%d credentials were looked up, want %d: the throttled attempts must not be checked", n, limits.PerSource)
	}
	// A correct token from the throttled source is refused too, unchecked: were it
	// checked, the limit would tell a right guess from a wrong one.
	if _, err := svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"], Source: source}); kindOf(err) != admin.RateLimited {
		t.Fatalf("rita's correct token from the throttled source: %v, want RateLimited", err)
	}
	if n := st.lookups.Load(); n != int64(limits.PerSource) {
		t.Fatalf("the correct token was looked up")
	}
	// Other sources, and client certificates from this one, are not held back.
	if _, err := svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"], Source: "192.0.2.8"}); err != nil {
		t.Fatalf("rita from another source: %v", err)
	}
	cert, _ := x509.ParseCertificate(f.CertPair.Certificate[0])
	if who, err := svc.Authenticate(f.Ctx, admin.Credential{Cert: cert, Source: source}); err != nil || who.Name != "carl" {
		t.Fatalf("carl's client certificate from the throttled source: %v", err)
	}

	events := f.Events(before)
	refused, summaries := loginEvents(events)
	if len(refused) != limits.PerSource || len(summaries) != 0 {
		t.Fatalf("during the window: %d refused logins and %d summaries, want %d and 0:%s", len(refused), len(summaries), limits.PerSource, admintest.Describe(events))
	}
	for _, e := range refused {
		if !strings.Contains(e.Object, "source="+source) {
			t.Errorf("refused login without its source: %+v", e)
		}
	}
	// Not before the window ended (and a minute more, for stragglers).
	if n, err := svc.SummariseLogins(f.Ctx); err != nil || n != 0 {
		t.Fatalf("SummariseLogins in the window: %d, %v", n, err)
	}
	f.Clock.Add(windowStart.Add(limits.Window + time.Minute).Sub(f.Clock.Now()))
	if n, err := svc.SummariseLogins(f.Ctx); err != nil || n != 1 {
		t.Fatalf("SummariseLogins after the window: %d, %v; want 1", n, err)
	}
	if n, err := svc.SummariseLogins(f.Ctx); err != nil || n != 0 {
		t.Fatalf("SummariseLogins again: %d, %v; want 0", n, err)
	}
	events = f.Events(before)
	refused, summaries = loginEvents(events)
	want := fmt.Sprintf("source=%s since=%s until=%s attempts=%d", source, windowStart.Format(time.RFC3339),
		windowStart.Add(limits.Window).Format(time.RFC3339), attempts-limits.PerSource+1)
	if len(summaries) != 1 || summaries[0].Object != want || summaries[0].Actor != "unknown" || !strings.HasPrefix(summaries[0].Outcome, "refused") {
		t.Fatalf("summaries:%s\nwant one with %s", admintest.Describe(summaries), want)
	}
	if got, bound := len(refused)+len(summaries), limits.PerSource+1; got != bound {
		t.Fatalf("the attack left %d audit events, want exactly %d", got, bound)
	}
	if len(events) != limits.PerSource+1 {
		t.Fatalf("%d audit events in all, want %d:%s", len(events), limits.PerSource+1, admintest.Describe(events))
	}
	// The next window starts from zero.
	if _, err := svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"], Source: source}); err != nil {
		t.Fatalf("rita from the source in the next window: %v", err)
	}
	if _, err := f.Log.Verify(f.Ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLoginLimitIPv6: the addresses of one IPv6 /64 are one source.
func TestLoginLimitIPv6(t *testing.T) {
	f := admintest.New(t, admin.Config{Logins: admin.LoginLimits{PerSource: 3}}, nil)
	for i := range 3 {
		src := fmt.Sprintf("2001:db8:1:2::%x", i+1)
		if _, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: fmt.Sprintf("x%d.y", i), Source: src}); kindOf(err) != admin.Unauthenticated {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"], Source: "2001:db8:1:2:ffff::1"}); kindOf(err) != admin.RateLimited {
		t.Fatalf("another address of the /64: %v, want RateLimited", err)
	}
	if _, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"], Source: "2001:db8:1:3::1"}); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	if !admintest.HasEvent(f.Events(0), "unknown", string(audit.ActOperatorLogin), "refused", "source=2001:db8:1:2::/64") {
		t.Errorf("the refused logins do not name the /64:%s", admintest.Describe(f.Events(0)))
	}
}

// TestLoginLimitPerCredentialOnEveryReplica: wrong tokens of one operator from
// many sources, half to each of two servers on one database, hold back that
// operator's tokens on both, from any source, until the window ends; others'
// credentials work. Two replicas summarising at once write each summary once.
func TestLoginLimitPerCredentialOnEveryReplica(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	replicas := []*admin.Service{f.Svc, admin.New(f.Cfg, f.St, f.Log, nil)}
	limits := admin.DefaultLoginLimits
	for i := range limits.PerCredential {
		src := fmt.Sprintf("198.51.100.%d", i+1)
		if _, err := replicas[i%2].Authenticate(f.Ctx, admin.Credential{Token: fmt.Sprintf("rita.guess%d", i), Source: src}); kindOf(err) != admin.Unauthenticated {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	for i, svc := range replicas {
		_, err := svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"], Source: "203.0.113.1"})
		var e *admin.Error
		if !errors.As(err, &e) || e.Kind != admin.RateLimited || !strings.Contains(e.Detail, "for this credential") {
			t.Fatalf("rita's correct token on replica %d from a fresh source: %v, want RateLimited for the credential", i, err)
		}
		if who, err := svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["bob"], Source: "203.0.113.1"}); err != nil || who.Name != "bob" {
			t.Fatalf("bob on replica %d: %v", i, err)
		}
	}
	// The CLI's token file (no source) is held back by the credential's limit too.
	if _, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"]}); kindOf(err) != admin.RateLimited {
		t.Fatalf("rita's token from the CLI: %v, want RateLimited", err)
	}
	f.Clock.Add(limits.Window + time.Minute)
	var wg sync.WaitGroup
	counts := make([]int, len(replicas))
	for i, svc := range replicas {
		wg.Go(func() {
			n, err := svc.SummariseLogins(f.Ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	_, summaries := loginEvents(f.Events(0))
	// Two sources had attempts refused unchecked: 203.0.113.1 (2) and the CLI (1).
	if counts[0]+counts[1] != 2 || len(summaries) != 2 ||
		!admintest.HasEvent(summaries, "unknown", string(audit.ActLoginsThrottled), "refused", "source=203.0.113.1 ") ||
		!admintest.HasEvent(summaries, "unknown", string(audit.ActLoginsThrottled), "refused", "source=local ") {
		t.Fatalf("replicas wrote %v summaries:%s", counts, admintest.Describe(summaries))
	}
	for _, s := range summaries {
		if strings.Contains(s.Object, "203.0.113.1") && !strings.HasSuffix(s.Object, "attempts=2") {
			t.Errorf("summary %q, want attempts=2", s.Object)
		}
	}
	if _, err := replicas[1].Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"], Source: "203.0.113.1"}); err != nil {
		t.Fatalf("rita in the next window: %v", err)
	}
}

// TestLoginLimitFailsClosed: when the counts cannot be read, no credential is
// checked and the login is refused.
func TestLoginLimitFailsClosed(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	st := &lookupCounter{SQL: f.St, countsDown: true}
	svc := admin.New(f.Cfg, st, f.Log, nil)
	if _, err := svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"], Source: "192.0.2.1"}); kindOf(err) != admin.Internal || st.lookups.Load() != 0 {
		t.Fatalf("with the counts unreadable: %v after %d look-ups, want Internal before any", err, st.lookups.Load())
	}
}
