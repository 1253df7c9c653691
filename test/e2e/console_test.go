package e2e

import (
	"context"
	"crypto/x509"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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
	c.open("/console/requests")
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
	c.open("/console/requests")
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

// screenshotDir is where the console's screenshots are kept: $VARMENNE_SCREENSHOTS,
// else a new directory under the system's temporary directory that outlives the
// test, so the pages as the browser saw them can be looked at afterwards.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VARMENNE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "varmenne-console-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// keep takes a screenshot of the current page as name and logs where it is.
func (c *consoleTest) keep(name string) {
	c.t.Helper()
	path := filepath.Join(c.shots, name)
	if err := c.b.Screenshot(c.ctx, path); err != nil {
		c.fail("screenshot %s: %v", name, err)
	}
	c.t.Logf("screenshot of %s: %s", c.url(), path)
}

// TestConsoleShowsTheState drives the console's state pages in headless Chromium
// after real issuance and revocation, and checks each figure an operator reads
// against the database: the health page (each issuer's CRL number, publication,
// next update and entries; the register, keys and database; the issuance and
// expiry charts; the pending EAB requests), the organisation page's revoke form
// recording who asked and how they were identified, and the audit page's
// filters and paging. A screenshot of each page is kept.
func TestConsoleShowsTheState(t *testing.T) {
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := startWith(t, "", "--admin-listen", adminAddr)
	const oid = "1.2.246.10.44444444.10.0"
	kid, hmacKey := in.org(oid, "Tilakonsoli Oy", "tila.example")
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
	db, err := sql.Open("sqlite", filepath.Join(in.Data, "varmenne.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	query := func(q string, args ...any) string {
		t.Helper()
		var v string
		if err := db.QueryRow(q, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	}

	// Two certificates of the organisation, through a real ACME client.
	acct := in.client(kid, hmacKey)
	r := in.responder()
	var serials []string
	for _, name := range []string{"www.tila.example", "api.tila.example"} {
		in.pointAt(name)
		chain, _ := in.obtain(acct, r, newKey(t), name)
		serials = append(serials, query(`SELECT serial FROM certificates WHERE der = ?`, chain[0]))
	}

	ctx := ctxT(t)
	b, err := webdriver.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	c := &consoleTest{t: t, ctx: ctx, b: b, base: "https://" + adminAddr, shots: screenshotDir(t), tokens: tokens}

	// A registrar's EAB request waits for a decision.
	c.login("rita")
	c.open("/console/requests")
	c.typeInto("#organisation", oid)
	c.typeInto("#person", "Matti Meikäläinen")
	c.typeInto("#identified_by", "suomi.fi strong identification")
	c.typeInto("#technical_contact", "it@tila.example")
	c.click("#request-submit")
	c.logout()

	// The first page, after the login: the CA's health, figure by figure as the
	// database has them.
	c.login("anna")
	if !strings.HasSuffix(c.url(), "/console/") || c.count("#issuers") != 1 {
		c.fail("the login did not lead to the health page")
	}
	crl := func(issuer string) (number, entries string) {
		return query(`SELECT number FROM crl_state WHERE issuer = ?`, issuer), query(`SELECT entries FROM crl_state WHERE issuer = ?`, issuer)
	}
	// showsCRL loads the health page until it shows what the database holds: the
	// publisher may publish between the read and the page.
	showsCRL := func(issuer string) (number, entries string) {
		c.t.Helper()
		for range 5 {
			number, entries = crl(issuer)
			c.open("/console/")
			if c.text("#issuer-"+issuer+" td.crl-number") == number && c.text("#issuer-"+issuer+" td.crl-entries") == entries {
				return number, entries
			}
		}
		c.fail("the health page shows CRL %s with %s entries of issuer %s; the database has %s with %s",
			c.text("#issuer-"+issuer+" td.crl-number"), c.text("#issuer-"+issuer+" td.crl-entries"), issuer, number, entries)
		return
	}
	before, _ := showsCRL("production")
	showsCRL("test")
	for _, iss := range []string{"production", "test"} {
		if c.count("#issuer-"+iss+" .flag") != 0 {
			c.fail("issuer %s has a flagged figure on a fresh server", iss)
		}
		next := query(`SELECT next_update FROM crl_state WHERE issuer = ?`, iss)
		if !strings.Contains(c.text("#issuer-"+iss+" td.crl-next-update"), microsRFC3339(t, next)) {
			c.fail("issuer %s: next update %q, the database says %s", iss, c.text("#issuer-"+iss+" td.crl-next-update"), microsRFC3339(t, next))
		}
		if !strings.Contains(c.text("#issuer-"+iss+" td.ocsp"), " to ") {
			c.fail("issuer %s: no OCSP responder validity", iss)
		}
	}
	if got := c.text("#health-status"); got != "Every figure below is as it should be." {
		c.fail("a fresh server's health: %q", got)
	}
	if got, want := c.text("#issued-chart .total"), query(`SELECT COUNT(*) FROM certificates`); got != want || want != "2" {
		c.fail("issued in 30 days: the page says %s, the database %s (want 2)", got, want)
	}
	if got := c.text("#issued-chart text.count"); got != "2" {
		c.fail("today's bar of the issuance chart says %q, want 2", got)
	}
	now := time.Now().UTC()
	horizon := now.Truncate(24*time.Hour).AddDate(0, 0, 30)
	if got, want := c.text("#expiring-chart .total"), query(`SELECT COUNT(*) FROM certificates WHERE not_after >= ? AND not_after < ?`,
		now.UnixMicro(), horizon.UnixMicro()); got != want {
		c.fail("expiring in 30 days: the page says %s, the database %s", got, want)
	}
	if got, want := c.text("#pending-count"), query(`SELECT COUNT(*) FROM eab_requests WHERE status = 'requested'`); got != want || want != "1" {
		c.fail("pending EAB requests: the page says %s, the database %s (want 1)", got, want)
	}
	if got := c.text("#database"); got != "sqlite, reachable" {
		c.fail("database: %q", got)
	}
	if got := c.text("#hsm"); !strings.Contains(got, "file keys") {
		c.fail("keys: %q", got)
	}
	c.keep("01-health.png")

	// The organisation page: its accounts, EAB keys and certificates, and a
	// revocation that records who asked and how they were identified.
	c.open("/console/organisations/" + oid)
	if c.count("#accounts tr") != 2 || c.count("#eab-keys tr") != 2 || c.count("#org-certificates tr") != 3 {
		c.fail("the organisation page lists %d accounts, %d EAB keys, %d certificates; want 1, 1, 2",
			c.count("#accounts tr")-1, c.count("#eab-keys tr")-1, c.count("#org-certificates tr")-1)
	}
	row := "#cert-" + serials[0]
	c.typeInto(row+` input[name="requested_by"]`, "Maija Meikäläinen, Tilakonsoli Oy")
	c.typeInto(row+` input[name="identified_by"]`, "suomi.fi strong identification")
	c.typeInto(row+` input[name="note"]`, "ticket 2026-117")
	c.click(row + " .revoke-submit")
	if got := c.text(row + " .requested-by"); got != "Maija Meikäläinen, Tilakonsoli Oy" {
		c.fail("the revoked row shows the requester %q", got)
	}
	if got := c.text(row + " .identified-by"); got != "suomi.fi strong identification" {
		c.fail("the revoked row shows the identification %q", got)
	}
	var requestedBy, identifiedBy, performedBy, receivedBy string
	if err := db.QueryRow(`SELECT requested_by, identified_by, performed_by, received_by FROM revocations WHERE serial = ?`, serials[0]).
		Scan(&requestedBy, &identifiedBy, &performedBy, &receivedBy); err != nil {
		t.Fatalf("the revocation is not in the database: %v", err)
	}
	if requestedBy != "Maija Meikäläinen, Tilakonsoli Oy" || identifiedBy != "suomi.fi strong identification" || performedBy != "anna" || !strings.Contains(receivedBy, "console") {
		t.Fatalf("the revocation record: requested by %q, identified by %q, performed by %q, received by %q", requestedBy, identifiedBy, performedBy, receivedBy)
	}
	if c.count("#cert-"+serials[1]+" form.revoke") != 1 {
		c.fail("the other certificate lost its revoke form")
	}
	c.keep("02-organisation.png")

	// The publisher republishes the production CRL with the revocation; the
	// health page shows the new number and entry, as the database has them.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n, e := crl("production"); n != before && e == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the production CRL was not republished with the revocation (number %s)", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after, entries := showsCRL("production"); after == before || entries != "1" {
		c.fail("after the revocation the health page shows CRL %s with %s entries", after, entries)
	}
	c.keep("03-health-after-revocation.png")
	c.logout()

	// The auditor's audit page: each filter narrows the list, in the query.
	c.login("aino")
	c.open("/console/audit")
	all := c.count("tr.event")
	c.typeInto("#filter-actor", "anna")
	c.click("#filter-submit")
	actors, _ := b.FindAll(ctx, "tr.event td.actor")
	if len(actors) == 0 || len(actors) >= all {
		c.fail("the actor filter shows %d of %d events", len(actors), all)
	}
	for _, a := range actors {
		if who, _ := a.Text(ctx); who != "anna" {
			c.fail("the actor filter anna shows an event of %q", who)
		}
	}
	c.typeInto("#filter-action", "certificate.revoke")
	c.click("#filter-submit")
	if c.count("tr.event") != 1 || !strings.Contains(c.text("tr.event td.object"), "serial="+serials[0]) ||
		!strings.Contains(c.text("tr.event td.object"), `requested_by="Maija Meikäläinen, Tilakonsoli Oy"`) {
		c.fail("anna's revocations: %d events, the first %q", c.count("tr.event"), c.text("tr.event td.object"))
	}
	c.open("/console/audit?organisation=" + oid + "&limit=2")
	objects, _ := b.FindAll(ctx, "tr.event td.object")
	if len(objects) != 2 {
		c.fail("the organisation filter with 2 a page shows %d events", len(objects))
	}
	ofOrg := func(obj string) bool {
		return strings.Contains(obj, "org="+oid) || strings.HasPrefix(obj, "serial="+serials[0]+" ") || strings.HasPrefix(obj, "serial="+serials[1]+" ")
	}
	for _, o := range objects {
		if obj, _ := o.Text(ctx); !ofOrg(obj) {
			c.fail("the organisation filter shows an event of another: %q", obj)
		}
	}
	first := c.text("tr.event td.seq")
	c.click("#next-page")
	if u := c.url(); !strings.Contains(u, "organisation="+oid) || !strings.Contains(u, "after=") {
		c.fail("the next page %s lost the filter or the keyset", u)
	}
	if next := c.text("tr.event td.seq"); atoi(t, next) <= atoi(t, first) {
		c.fail("the next page starts at event %s, not after %s", next, first)
	}
	// The organisation's certificates' events name their serial, not the
	// organisation; the filter finds them too.
	c.open("/console/audit?organisation=" + oid + "&action=certificate.revoke")
	if c.count("tr.event") != 1 || !strings.HasPrefix(c.text("tr.event td.object"), "serial="+serials[0]+" ") {
		c.fail("the organisation's revocations: %d events", c.count("tr.event"))
	}
	c.open("/console/audit?organisation=" + oid)
	if all := c.count("tr.event"); all < 8 {
		c.fail("the organisation's events: %d", all)
	}
	objects, _ = b.FindAll(ctx, "tr.event td.object")
	for _, o := range objects {
		if obj, _ := o.Text(ctx); !ofOrg(obj) {
			c.fail("the organisation filter shows an event of another: %q", obj)
		}
	}
	c.open("/console/audit?actor=anna&since=" + time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04"))
	c.keep("04-audit.png")
	if out, err := in.cli("audit", "verify"); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %v: %s", err, out)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// microsRFC3339 is a stored time (unix microseconds) as the console writes it.
func microsRFC3339(t *testing.T, micros string) string {
	t.Helper()
	v, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.UnixMicro(v).UTC().Format(time.RFC3339)
}

// TestConsoleHealthWithHSM: with the issuer keys in SoftHSM2, the health page
// names the token and its sessions, each issuer key's label in it, and the HSM
// login and self-tests of this start as the audit log has them.
func TestConsoleHealthWithHSM(t *testing.T) {
	h := newHSM(t)
	data := t.TempDir()
	h.ceremony(t, data, "ecdsa-p384")
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := startWith(t, data, h.serve("--admin-listen", adminAddr)...)
	token := strings.TrimSpace(string(mustRead(t, in.SecondAdmin())))

	ctx := ctxT(t)
	b, err := webdriver.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	c := &consoleTest{t: t, ctx: ctx, b: b, base: "https://" + adminAddr, shots: screenshotDir(t), tokens: map[string]string{"second-admin": token}}
	c.login("second-admin")
	if got, want := c.text("#hsm"), "in the HSM token "+h.token.Label+" ("; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "4 sessions kept open") {
		c.fail("keys: %q, want %q… with 4 sessions", got, want)
	}
	for _, iss := range []string{"production", "test"} {
		if got := c.text("#issuer-" + iss + " td.key"); !strings.HasPrefix(got, "HSM token "+h.token.Label+", key label ") {
			c.fail("issuer %s's key: %q", iss, got)
		}
	}
	events, _ := b.FindAll(ctx, "dd.hsm-event")
	var said []string
	for _, e := range events {
		s, _ := e.Text(ctx)
		said = append(said, s)
	}
	if len(said) != 2 || !strings.Contains(said[0], "by varmenne serve: ok (token="+h.token.Label) || !strings.Contains(said[1], "by varmenne serve: ok (token="+h.token.Label) {
		c.fail("the last HSM login and self-test: %q", said)
	}
	if got := c.text("#register"); !strings.Contains(got, "records, from ") || c.count("#register.flag") != 0 {
		c.fail("the register of a production server: %q", got)
	}
	c.keep("05-health-hsm.png")
}
