package console

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/store"
)

// cookies are the browser's cookies of its server.
func (b *browser) cookies() []*http.Cookie { return b.c.Jar.Cookies(mustURL(b.t, b.f.Srv.URL)) }

// browserWith is a fresh browser of g holding cookies.
func browserWith(g *admintest.Fixture, cookies []*http.Cookie) *browser {
	b := newBrowser(g, g.Srv.Client())
	b.c.Jar.SetCookies(mustURL(g.T, g.Srv.URL), cookies)
	return b
}

func sessionValue(t *testing.T, cookies []*http.Cookie) string {
	t.Helper()
	for _, c := range cookies {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	t.Fatalf("no session cookie among %v", cookies)
	return ""
}

// getAfter moves the fixture's clock on by d, then gets path.
func (b *browser) getAfter(d time.Duration, path string) *http.Response {
	b.t.Helper()
	b.f.Clock.Add(d)
	resp, _ := b.get(path)
	return resp
}

// loggedOut: the console sends the browser to the login page.
func loggedOut(resp *http.Response) bool {
	return resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/console/login"
}

func TestConsoleSessionOnEveryReplica(t *testing.T) {
	f := newFixture(t, admin.Config{})
	g := f.Replica()

	rita := newBrowser(f, f.Srv.Client())
	csrf := rita.login("rita")
	// The session cookie and CSRF token of f's login work on g.
	onG := browserWith(g, rita.cookies())
	resp, page := onG.get("/console/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "rita (registrar)") {
		t.Fatalf("f's session on replica g: %d\n%s", resp.StatusCode, page)
	}
	if got := csrfOf(t, page); got != csrf {
		t.Errorf("replica g derives the CSRF token %q, f %q", got, csrf)
	}
	form := url.Values{"csrf": {csrf}, "organisation": {admintest.OrgOID}, "person": {"Maija"}, "identified_by": {"suomi.fi"}, "technical_contact": {"it@vendor.example"}}
	if resp, body := onG.post("/console/requests", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("form on replica g with f's CSRF token: %d %s", resp.StatusCode, body)
	}
	if list, _ := f.St.ListEABRequests(f.Ctx, "", ""); len(list) != 1 || list[0].RequestedBy != "rita" {
		t.Fatalf("requests after the form on g: %+v", list)
	}

	// The store keeps the cookie's hash, never the cookie.
	value := sessionValue(t, rita.cookies())
	sum := sha256.Sum256([]byte(value))
	if sess, err := f.St.TouchConsoleSession(f.Ctx, hex.EncodeToString(sum[:]), f.Clock.Now()); err != nil || sess.Operator != "rita" || sess.Method != "token" {
		t.Fatalf("the session by the cookie's hash: %+v %v", sess, err)
	}
	if _, err := f.St.TouchConsoleSession(f.Ctx, value, f.Clock.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session keyed by the cookie's value: %v, want ErrNotFound", err)
	}

	// Logging out on g ends the session on f too.
	if resp, _ := onG.post("/console/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout on g: %d", resp.StatusCode)
	}
	for name, srv := range map[string]*admintest.Fixture{"f": f, "g": g} {
		if resp, _ := browserWith(srv, rita.cookies()).get("/console/"); !loggedOut(resp) {
			t.Errorf("the session still works on %s after logout on g: %d", name, resp.StatusCode)
		}
	}
}

func TestConsoleSessionRefusesTamperedCookies(t *testing.T) {
	f := newFixture(t, admin.Config{})
	alice := newBrowser(f, f.Srv.Client())
	alice.login("alice")
	value := sessionValue(t, alice.cookies())
	sum := sha256.Sum256([]byte(value))
	flipped := []byte(value)
	if flipped[5] == 'A' {
		flipped[5] = 'B'
	} else {
		flipped[5] = 'A'
	}
	for what, v := range map[string]string{
		"one character changed":       string(flipped),
		"truncated":                   value[:len(value)-1],
		"extended":                    value + "A",
		"the hash the database holds": hex.EncodeToString(sum[:]),
		"the hash in upper case":      strings.ToUpper(hex.EncodeToString(sum[:])),
		"empty":                       "",
	} {
		b := browserWith(f, []*http.Cookie{{Name: sessionCookie, Value: v, Path: "/"}})
		if resp, _ := b.get("/console/"); !loggedOut(resp) {
			t.Errorf("session cookie %s: %d, want the login page", what, resp.StatusCode)
		}
	}
	// The genuine cookie still works: the refusals ended nothing.
	if resp, _ := alice.get("/console/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("genuine cookie after the tampered ones: %d", resp.StatusCode)
	}
}

func TestConsoleSessionIdleAndLifetime(t *testing.T) {
	f := newFixture(t, admin.Config{SessionIdle: 30 * time.Minute, SessionLifetime: 2 * time.Hour})
	g := f.Replica()

	// Idle: each request on either replica moves the deadline; 30 quiet minutes end it.
	rita := newBrowser(f, f.Srv.Client())
	rita.login("rita")
	onG := browserWith(g, rita.cookies())
	for i, b := range []*browser{rita, onG, rita} {
		if resp := b.getAfter(29*time.Minute, "/console/"); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d, 29 minutes after the last: %d", i, resp.StatusCode)
		}
	}
	if resp := onG.getAfter(30*time.Minute, "/console/"); !loggedOut(resp) {
		t.Fatalf("after 30 idle minutes: %d, want the login page", resp.StatusCode)
	}
	if resp, _ := rita.get("/console/"); !loggedOut(resp) {
		t.Fatalf("after 30 idle minutes, on f: %d, want the login page", resp.StatusCode)
	}

	// Lifetime: busy every 20 minutes, the session still ends 2 hours after the login.
	aino := newBrowser(f, f.Srv.Client())
	aino.login("aino")
	for elapsed := 20 * time.Minute; elapsed < 2*time.Hour; elapsed += 20 * time.Minute {
		if resp := aino.getAfter(20*time.Minute, "/console/audit"); resp.StatusCode != http.StatusOK {
			t.Fatalf("busy session %s after the login: %d", elapsed, resp.StatusCode)
		}
	}
	if resp := aino.getAfter(20*time.Minute, "/console/audit"); !loggedOut(resp) {
		t.Fatalf("2 hours after the login: %d, want the login page", resp.StatusCode)
	}

	// The sweep deletes both rows; a live session stays.
	alice := newBrowser(f, f.Srv.Client())
	alice.login("alice")
	if n, err := g.Svc.SweepSessions(f.Ctx); err != nil || n != 2 {
		t.Fatalf("sweep: %d deleted, %v; want rita's and aino's", n, err)
	}
	if n, err := g.Svc.SweepSessions(f.Ctx); err != nil || n != 0 {
		t.Fatalf("second sweep: %d deleted, %v; want none", n, err)
	}
	if resp, _ := alice.get("/console/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice after the sweep: %d", resp.StatusCode)
	}
}

// TestConsoleCertificateCSRFOnEveryReplica: the CSRF token of a page one replica
// showed to a client certificate is accepted by another, and only with the
// browser's CSRF cookie.
func TestConsoleCertificateCSRFOnEveryReplica(t *testing.T) {
	f := newFixture(t, admin.Config{})
	g := f.Replica()
	id := f.Request("rita")
	carl := newBrowser(f, f.CertClient)
	resp, page := carl.get("/console/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("console by client certificate: %d", resp.StatusCode)
	}
	csrf := csrfOf(t, page)
	onG := newBrowser(g, g.ClientWithCert(f.CertPair))
	if resp, _ := onG.post("/console/requests/"+id+"/approve", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the token without the browser's CSRF cookie: %d, want 403", resp.StatusCode)
	}
	onG.c.Jar.SetCookies(mustURL(t, g.Srv.URL), carl.cookies())
	if resp, body := onG.post("/console/requests/"+id+"/approve", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approval on g with the token f showed: %d %s", resp.StatusCode, body)
	}
	if r, err := f.St.GetEABRequest(f.Ctx, id); err != nil || r.DecidedBy != "carl" {
		t.Fatalf("request after carl's approval on g: %+v %v", r, err)
	}
}
