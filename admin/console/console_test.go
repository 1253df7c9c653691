package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/store"
)

// newFixture is the console alone on the admin listener's handler, over the
// fixture's service.
func newFixture(t *testing.T, cfg admin.Config) *admintest.Fixture {
	return admintest.New(t, cfg, func(svc *admin.Service) http.Handler {
		return web.Handler(http.NotFoundHandler(), New(svc, nil).Handler(), nil)
	})
}

// browser is a cookie-keeping client of the fixture's console that does not
// follow redirects, so a test sees each answer.
type browser struct {
	t *testing.T
	f *admintest.Fixture
	c *http.Client
}

func newBrowser(f *admintest.Fixture, client *http.Client) *browser {
	jar, _ := cookiejar.New(nil)
	c := *client
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: f.T, f: f, c: &c}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.f.Srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.f.Srv.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var inlineHandler = regexp.MustCompile(`\son[a-z]+=`)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", page)
	}
	return m[1]
}

func (b *browser) login(name string) string {
	b.t.Helper()
	_, page := b.get("/console/login")
	resp, body := b.post("/console/login", url.Values{"csrf": {csrfOf(b.t, page)}, "token": {b.f.Tokens[name]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		b.t.Fatalf("login as %s: %d %s", name, resp.StatusCode, body)
	}
	_, page = b.get("/console/")
	return csrfOf(b.t, page)
}

// TestEveryFormCarriesCSRF: each POST form of the console templates sends the
// csrf field.
func TestEveryFormCarriesCSRF(t *testing.T) {
	files, _ := fs.Glob(consoleFiles, "templates/*.html")
	forms := regexp.MustCompile(`(?s)<form method="post".*?</form>`)
	n := 0
	for _, name := range files {
		b, _ := consoleFiles.ReadFile(name)
		for _, form := range forms.FindAllString(string(b), -1) {
			n++
			if !strings.Contains(form, `name="csrf"`) {
				t.Errorf("%s: a form without the csrf field:\n%s", name, form)
			}
		}
		if strings.Contains(strings.ToLower(string(b)), "<script") || strings.Contains(string(b), "style=") || inlineHandler.MatchString(string(b)) {
			t.Errorf("%s has inline script or style, which the Content-Security-Policy forbids", name)
		}
	}
	if n < 10 {
		t.Fatalf("found %d POST forms; the pattern no longer matches the templates", n)
	}
}

func TestConsoleCSRFAndSessions(t *testing.T) {
	f := newFixture(t, admin.Config{})
	anon := newBrowser(f, f.Srv.Client())
	resp, _ := anon.get("/console/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("unauthenticated console: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if resp, _ := anon.post("/console/login", url.Values{"token": {f.Tokens["rita"]}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without the login CSRF token: %d, want 403", resp.StatusCode)
	}

	rita := newBrowser(f, f.Srv.Client())
	csrf := rita.login("rita")
	form := url.Values{"organisation": {admintest.OrgOID}, "person": {"Maija"}, "identified_by": {"suomi.fi"}, "technical_contact": {"it@vendor.example"}}
	before := f.LastSeq()
	// A token one character off: never the token itself (an "x" in front of a
	// token that starts with "x" would be).
	wrong := "x" + csrf[1:]
	if csrf[0] == 'x' {
		wrong = "y" + csrf[1:]
	}
	for _, bad := range []string{"", wrong} {
		form.Set("csrf", bad)
		if resp, body := rita.post("/console/requests", form); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "CSRF") {
			t.Fatalf("request with csrf %q: %d %s, want 403", bad, resp.StatusCode, body)
		}
	}
	if list, _ := f.St.ListEABRequests(f.Ctx, "", ""); len(list) != 0 {
		t.Fatalf("a form without its CSRF token made a request: %+v", list)
	}
	if !admintest.HasEvent(f.Events(before), "rita", "access.denied", "refused: CSRF", "/console/requests") {
		t.Errorf("CSRF refusal not audited:%s", admintest.Describe(f.Events(before)))
	}
	form.Set("csrf", csrf)
	resp, body := rita.post("/console/requests", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/requests/") {
		t.Fatalf("request with its CSRF token: %d %s", resp.StatusCode, body)
	}
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/console/requests/")

	// A registrar's session cannot approve, whatever the form says.
	if resp, _ := rita.post("/console/requests/"+id+"/approve", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("registrar approving in the console: %d, want 403", resp.StatusCode)
	}
	// Another session's token is not this session's.
	anna := newBrowser(f, f.Srv.Client())
	annaCSRF := anna.login("alice")
	if resp, _ := anna.post("/console/requests/"+id+"/approve", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("approval with another session's CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, body := anna.post("/console/requests/"+id+"/approve", url.Values{"csrf": {annaCSRF}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approval: %d %s", resp.StatusCode, body)
	}

	// Logging out ends the session on the server, not only in the browser.
	stolen := rita.c.Jar.Cookies(mustURL(t, f.Srv.URL))
	if resp, _ := rita.post("/console/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	replay := newBrowser(f, f.Srv.Client())
	replay.c.Jar.SetCookies(mustURL(t, f.Srv.URL), stolen)
	if resp, _ := replay.get("/console/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the session cookie still works after logout: %d", resp.StatusCode)
	}
}

func TestConsoleWithClientCertificate(t *testing.T) {
	f := newFixture(t, admin.Config{})
	id := f.Request("rita")
	carl := newBrowser(f, f.CertClient)
	resp, page := carl.get("/console/")
	if resp.StatusCode != 200 || !strings.Contains(page, "carl (administrator)") || !strings.Contains(page, id) {
		t.Fatalf("console by client certificate: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := carl.post("/console/requests/"+id+"/approve", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a certificate-authenticated form without CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, body := carl.post("/console/requests/"+id+"/approve", url.Values{"csrf": {csrfOf(t, page)}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approval by client certificate: %d %s", resp.StatusCode, body)
	}
	r, err := f.St.GetEABRequest(f.Ctx, id)
	if err != nil || r.DecidedBy != "carl" {
		t.Fatalf("request after carl's approval: %+v %v", r, err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestConsoleShowsTheRegisterAge: the organisations page says how old the store's
// copy of THL's register is, the one figure every replica judges issuance by, or
// that it was never loaded.
func TestConsoleShowsTheRegisterAge(t *testing.T) {
	f := newFixture(t, admin.Config{})
	b := newBrowser(f, f.Srv.Client())
	b.login("aino")
	if _, page := b.get("/console/organisations"); !strings.Contains(page, "register has never been loaded into this CA") {
		t.Fatalf("before any load the page does not say so:\n%s", page)
	}
	loaded := f.Clock.Now().Add(-90 * time.Minute)
	if err := f.St.RecordRegisterLoad(f.Ctx, store.RegisterLoad{Source: "https://koodistopalvelu.example/register", LoadedAt: loaded, Records: 4321}); err != nil {
		t.Fatal(err)
	}
	_, page := b.get("/console/organisations")
	for _, want := range []string{`<span id="register-age">1h30m0s</span> ago`, "4321 records", "from https://koodistopalvelu.example/register", loaded.UTC().Format("2006-01-02 15:04:05")} {
		if !strings.Contains(page, want) {
			t.Errorf("the organisations page lacks %q:\n%s", want, page)
		}
	}
}
