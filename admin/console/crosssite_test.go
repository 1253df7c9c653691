package console

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
)

// postWith sends form to path with extra headers, as a browser would for a page
// of the origin the headers name.
func (b *browser) postWith(path string, form url.Values, headers map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.f.Srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestConsoleRefusesCrossSiteForms: a form another site makes the browser send
// is refused even with a valid CSRF token and session, or with the operator's
// client certificate, before anything is authenticated: nothing changes and
// nothing is recorded. The console's own forms still work.
func TestConsoleRefusesCrossSiteForms(t *testing.T) {
	f := newFixture(t, admin.Config{})
	alice := newBrowser(f, f.Srv.Client())
	aliceCSRF := alice.login("alice")
	carl := newBrowser(f, f.CertClient)
	_, page := carl.get("/console/")
	carlCSRF := csrfOf(t, page)
	crossSite := map[string]map[string]string{
		"Origin of another site":    {"Origin": "https://evil.example"},
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
		"Sec-Fetch-Site same-site":  {"Sec-Fetch-Site": "same-site", "Origin": "https://127.0.0.1:14000"},
		"both":                      {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
	}
	for name, headers := range crossSite {
		for who, b := range map[string]*browser{"alice (session)": alice, "carl (client certificate)": carl} {
			t.Run(name+" "+who, func(t *testing.T) {
				csrf := aliceCSRF
				if b == carl {
					csrf = carlCSRF
				}
				id := f.Request("rita")
				snap, before := admintest.Snapshot(t, f.Path), f.LastSeq()
				resp, body := b.postWith("/console/requests/"+id+"/approve", url.Values{"csrf": {csrf}}, headers)
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "accepts requests only from its own pages") {
					t.Fatalf("%d %s, want 403 naming the cross-site request", resp.StatusCode, body)
				}
				if admintest.Snapshot(t, f.Path) != snap || len(f.Events(before)) != 0 {
					t.Errorf("a cross-site form changed the database or the audit log:%s", admintest.Describe(f.Events(before)))
				}
			})
		}
	}
	t.Run("a cross-site login form", func(t *testing.T) {
		anon := newBrowser(f, f.Srv.Client())
		_, page := anon.get("/console/login")
		snap, before := admintest.Snapshot(t, f.Path), f.LastSeq()
		resp, _ := anon.postWith("/console/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {f.Tokens["rita"]}}, map[string]string{"Origin": "https://evil.example"})
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Fatalf("login from another site: %d, cookies %v; want 403 and no session", resp.StatusCode, resp.Cookies())
		}
		if admintest.Snapshot(t, f.Path) != snap || len(f.Events(before)) != 0 {
			t.Errorf("a cross-site login changed the database or the audit log:%s", admintest.Describe(f.Events(before)))
		}
	})
	t.Run("the console's own forms", func(t *testing.T) {
		own := map[string]string{"Origin": f.Srv.URL, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
		for who, b := range map[string]*browser{"alice": alice, "carl": carl} {
			csrf := aliceCSRF
			if b == carl {
				csrf = carlCSRF
			}
			id := f.Request("rita")
			if resp, body := b.postWith("/console/requests/"+id+"/approve", url.Values{"csrf": {csrf}}, own); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("%s approving from the console's own page: %d %s", who, resp.StatusCode, body)
			}
		}
	})
	t.Run("a link from another site opens a page", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.Srv.URL+"/console/", nil)
		for k, v := range map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"} {
			req.Header.Set(k, v)
		}
		resp, err := carl.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a link from another site: %d", resp.StatusCode)
		}
		req.Header.Set("Sec-Fetch-Dest", "iframe")
		if resp, err = carl.c.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a frame of another site: %d, want 403", resp.StatusCode)
		}
	})
}

// TestConsoleCookiesAreStrict: every cookie the console sets (the login CSRF
// cookie, the session, the CSRF cookie of a client certificate, and their
// deletions) is __Host-, Secure, HttpOnly, Path=/ and SameSite=Strict.
func TestConsoleCookiesAreStrict(t *testing.T) {
	f := newFixture(t, admin.Config{})
	var set []*http.Cookie
	var raw []string
	keep := func(resp *http.Response) {
		set = append(set, resp.Cookies()...)
		raw = append(raw, resp.Header.Values("Set-Cookie")...)
	}
	rita := newBrowser(f, f.Srv.Client())
	resp, page := rita.get("/console/login")
	keep(resp)
	resp, _ = rita.post("/console/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {f.Tokens["rita"]}})
	keep(resp)
	resp, page = rita.get("/console/")
	resp2, _ := rita.post("/console/logout", url.Values{"csrf": {csrfOf(t, page)}})
	keep(resp2)
	resp, _ = newBrowser(f, f.CertClient).get("/console/")
	keep(resp)
	names := map[string]bool{}
	for _, c := range set {
		names[c.Name] = true
		if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("cookie %s: %+v, want __Host-, Secure, HttpOnly, Path=/, no Domain, SameSite=Strict", c.Name, c)
		}
	}
	for _, h := range raw {
		if !strings.Contains(h, "SameSite=Strict") {
			t.Errorf("Set-Cookie without SameSite=Strict: %s", h)
		}
	}
	for _, want := range []string{sessionCookie, loginCookie, certCSRFCookie} {
		if !names[want] {
			t.Errorf("no %s cookie was set; seen %v", want, names)
		}
	}
	if len(raw) < 5 {
		t.Errorf("%d Set-Cookie headers, want the login cookie, the session, their deletions and the certificate's CSRF cookie", len(raw))
	}
}

// TestConsoleLoginLimit: after the limit of refused logins from a browser's
// address, the login form refuses even the right token with 429 and
// Retry-After, and starts no session, on another replica too.
func TestConsoleLoginLimit(t *testing.T) {
	f := newFixture(t, admin.Config{Logins: admin.LoginLimits{PerSource: 3}})
	g := f.Replica()
	b := newBrowser(f, f.Srv.Client())
	_, page := b.get("/console/login")
	csrf := csrfOf(t, page)
	for i := range 3 {
		if resp, _ := b.post("/console/login", url.Values{"csrf": {csrf}, "token": {"rita.wrong"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d", i, resp.StatusCode)
		}
	}
	onG := browserWith(g, b.cookies())
	resp, body := onG.post("/console/login", url.Values{"csrf": {csrf}, "token": {f.Tokens["alice"]}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many refused logins") {
		t.Fatalf("the right token after 3 refusals, on g: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			t.Fatalf("a throttled login started a session")
		}
	}
}
