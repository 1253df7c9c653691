package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/test/webdriver"
)

// consoleTest is a browser on the web console of a running server.
type consoleTest struct {
	t      *testing.T
	ctx    context.Context
	b      *webdriver.Browser
	base   string // https://ADDR of the admin listener
	shots  string // where screenshots of failures go
	steps  int
	tokens map[string]string
}

// fail takes a screenshot and logs the page, then stops the test.
func (c *consoleTest) fail(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	shot := filepath.Join(c.shots, fmt.Sprintf("step-%02d.png", c.steps))
	if os.Getenv("VARMENNE_SCREENSHOTS") != "" {
		shot = filepath.Join(os.Getenv("VARMENNE_SCREENSHOTS"), filepath.Base(shot))
	}
	if err := c.b.Screenshot(c.ctx, shot); err == nil {
		msg += "\nscreenshot: " + shot
	}
	if u, err := c.b.URL(c.ctx); err == nil {
		msg += "\npage: " + u
	}
	if src, err := c.b.Source(c.ctx); err == nil {
		msg += "\n" + src
	}
	c.t.Fatal(msg)
}

func (c *consoleTest) open(path string) {
	c.t.Helper()
	c.steps++
	if err := c.b.Go(c.ctx, c.base+path); err != nil {
		c.fail("open %s: %v", path, err)
	}
}

func (c *consoleTest) find(css string) *webdriver.Element {
	c.t.Helper()
	e, err := c.b.Find(c.ctx, css)
	if err != nil {
		c.fail("find %s: %v", css, err)
	}
	return e
}

func (c *consoleTest) count(css string) int {
	c.t.Helper()
	es, err := c.b.FindAll(c.ctx, css)
	if err != nil {
		c.fail("find %s: %v", css, err)
	}
	return len(es)
}

func (c *consoleTest) text(css string) string {
	c.t.Helper()
	s, err := c.find(css).Text(c.ctx)
	if err != nil {
		c.fail("text of %s: %v", css, err)
	}
	return s
}

func (c *consoleTest) typeInto(css, text string) {
	c.t.Helper()
	if err := c.find(css).Type(c.ctx, text); err != nil {
		c.fail("type into %s: %v", css, err)
	}
}

func (c *consoleTest) click(css string) {
	c.t.Helper()
	c.steps++
	if err := c.find(css).ClickAndWait(c.ctx); err != nil {
		c.fail("click %s: %v", css, err)
	}
}

func (c *consoleTest) url() string {
	u, err := c.b.URL(c.ctx)
	if err != nil {
		c.fail("url: %v", err)
	}
	return u
}

// login logs in with the operator's token and checks the console greets them.
func (c *consoleTest) login(name string) {
	c.t.Helper()
	c.open("/console/login")
	c.typeInto("#token", c.tokens[name])
	c.click("#login-submit")
	if got := c.text("#whoami"); !strings.HasPrefix(got, name+" (") {
		c.fail("after logging in as %s the console greets %q", name, got)
	}
}

func (c *consoleTest) logout() {
	c.t.Helper()
	c.click("#logout")
	if c.count("#token") != 1 {
		c.fail("logging out did not lead to the login page")
	}
}

// TestConsoleFromRequestToCertificate drives headless Chromium through the
// operator side: a registrar logs in and requests an EAB key, a different
// administrator approves it, the registrar sees the HMAC key once, an ACME client
// binds it and gets a certificate, the administrator suspends the organisation
// and its next order is refused, and the auditor's audit page shows every step.
func TestConsoleFromRequestToCertificate(t *testing.T) {
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := startWith(t, "", "--admin-listen", adminAddr)
	const oid = "1.2.246.10.33333333.10.0"
	if out, err := in.cli("org", "add", "--oid", oid, "--name", "Konsoliapteekki Oy", "--domain", "konsoli.example"); err != nil {
		t.Fatalf("org add: %v: %s", err, out)
	}
	tokens := map[string]string{}
	tokenRE := regexp.MustCompile(`token: (\S+)`)
	for _, op := range []struct{ name, role string }{{"rita", "registrar"}, {"anna", "administrator"}, {"aino", "auditor"}} {
		out, err := in.cli("operator", "add", op.name, "--role", op.role, "--token")
		m := tokenRE.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("operator add %s: %v: %s", op.name, err, out)
		}
		tokens[op.name] = m[1]
	}
	ctx := ctxT(t)
	b, err := webdriver.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	shots := t.TempDir()
	c := &consoleTest{t: t, ctx: ctx, b: b, base: "https://" + adminAddr, shots: shots, tokens: tokens}

	// Unauthenticated, the console sends the browser to the login page; a wrong
	// token is refused there.
	c.open("/console/")
	if !strings.HasSuffix(c.url(), "/console/login") {
		c.fail("an unauthenticated visit did not lead to the login page")
	}
	c.typeInto("#token", "rita.wrong")
	c.click("#login-submit")
	if !strings.Contains(c.text("#notice"), "not an operator's token") {
		c.fail("a wrong token was not refused")
	}

	// The registrar requests an EAB key.
	c.login("rita")
	c.typeInto("#organisation", oid)
	c.typeInto("#person", "Maija Meikäläinen")
	c.typeInto("#identified_by", "suomi.fi strong identification")
	c.typeInto("#technical_contact", "it@vendor.example")
	c.typeInto("#domains", "konsoli.example")
	c.typeInto("#profiles", "sote-server")
	c.click("#request-submit")
	m := regexp.MustCompile(`/console/requests/([A-Za-z0-9_-]+)$`).FindStringSubmatch(c.url())
	if m == nil || c.text("#status") != "requested" {
		c.fail("the request was not created")
	}
	id := m[1]
	if c.count("#approve") != 0 {
		c.fail("a registrar is offered to approve")
	}
	c.logout()

	// A different administrator approves it, with the page a server before a
	// restart showed: the session and its CSRF token survive the restart.
	c.login("anna")
	c.open("/console/")
	in.restart()
	c.click(`[id="approve-` + id + `"]`)
	if c.text("#status") != "approved" || !strings.HasPrefix(c.text("#decided-by"), "anna") {
		c.fail("the approval did not show")
	}
	if c.count("#show-key") != 0 {
		c.fail("the approver is offered the HMAC key")
	}
	c.logout()

	// The requester sees the key once.
	c.login("rita")
	c.open("/console/requests/" + id)
	c.click("#show-key")
	kid, hmacKey, fingerprint := c.text("#kid"), strings.TrimSpace(c.text("#hmac-key")), c.text("#fingerprint")
	if kid == "" || len(hmacKey) != 43 || !strings.HasPrefix(fingerprint, "sha256:") {
		c.fail("handover shows kid %q, key of %d characters, fingerprint %q", kid, len(hmacKey), fingerprint)
	}
	c.open("/console/requests/" + id)
	if c.count("#show-key") != 0 || c.text("#fingerprint") != fingerprint || c.count("#handed-over") != 1 {
		c.fail("after the handover the key is offered again, or its fingerprint differs")
	}
	if src, _ := b.Source(ctx); strings.Contains(src, hmacKey) {
		c.fail("the HMAC key is on the page after its handover")
	}
	c.logout()

	// An ACME client binds the key and gets a certificate of the organisation.
	acct := in.client(kid, hmacKey)
	r := in.responder()
	chain, _ := in.obtain(acct, r, newKey(t), "www.konsoli.example")
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != "Konsoliapteekki Oy" {
		t.Fatalf("certificate subject %v, want the organisation's name", leaf.Subject)
	}

	// The administrator suspends the organisation; its next order is refused.
	c.login("anna")
	c.open("/console/organisations/" + oid)
	if c.count("#accounts tr") != 2 || c.count("#org-certificates tr") != 2 {
		c.fail("the organisation page does not list the account and the certificate")
	}
	c.typeInto(`#suspend input[name="reason"]`, "contract ended")
	c.click(`#suspend button`)
	if !strings.Contains(c.text("#suspension"), "contract ended") {
		c.fail("the suspension did not show")
	}
	c.open("/console/certificates?serial=" + leaf.SerialNumber.String())
	if got := c.text("#certificates td.serial"); got != fmt.Sprintf("%036x", leaf.SerialNumber) {
		c.fail("search by the decimal serial found %q", got)
	}
	c.logout()
	in.pointAt("api.konsoli.example")
	_, err = acct.AuthorizeOrder(ctx, acme.DomainIDs("api.konsoli.example"))
	if !isProblem(err, "unauthorized") || !strings.Contains(err.Error(), "suspended") {
		t.Fatalf("newOrder of a suspended organisation: %v, want unauthorized saying it is suspended", err)
	}

	// The auditor's audit page shows each step, in order.
	c.login("aino")
	c.open("/console/audit")
	var got []string
	actors, _ := b.FindAll(ctx, "tr.event td.actor")
	actions, _ := b.FindAll(ctx, "tr.event td.action")
	objects, _ := b.FindAll(ctx, "tr.event td.object")
	if len(actors) == 0 || len(actors) != len(actions) || len(actions) != len(objects) {
		c.fail("the audit page has %d actors, %d actions, %d objects", len(actors), len(actions), len(objects))
	}
	for i := range actions {
		who, _ := actors[i].Text(ctx)
		what, _ := actions[i].Text(ctx)
		obj, _ := objects[i].Text(ctx)
		if strings.Contains(obj, hmacKey) || strings.Contains(obj, tokens["rita"]) {
			c.fail("audit event %d shows a secret", i+1)
		}
		got = append(got, who+" "+what)
	}
	want := []string{
		"unknown operator.login", // the wrong token
		"rita operator.login", "rita eab.request",
		"anna operator.login", "anna eab.approve",
		"rita operator.login", "rita eab.handover",
		"varmenne serve account.create", "varmenne serve order.create",
		"varmenne serve certificate.sign.begin", "varmenne serve certificate.sign.end",
		"anna operator.login", "anna organisation.suspend",
		"aino operator.login",
	}
	if missing, ok := firstMissingInOrder(got, want); !ok {
		c.fail("the audit page lacks %q (in order) among:\n%s", missing, strings.Join(got, "\n"))
	}
	if out, err := in.cli("audit", "verify"); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %v: %s", err, out)
	}
	if entries, _ := os.ReadDir(shots); len(entries) != 0 {
		t.Logf("screenshots in %s", shots)
	}
}
