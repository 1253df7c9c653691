package console

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// newFixtureCA is newFixture with the server's facts for the health page.
func newFixtureCA(t *testing.T, ca admin.CA) *admintest.Fixture {
	return admintest.New(t, admin.Config{}, func(svc *admin.Service) http.Handler {
		con := New(svc, nil)
		con.CA = ca
		return web.Handler(http.NotFoundHandler(), con.Handler(), nil)
	})
}

// text is a page's text without its tags, spaces folded, for reading it as a
// person does.
func text(page string) string {
	page = regexp.MustCompile(`</?(span|a|strong|code)\b[^>]*>`).ReplaceAllString(page, "")
	return html.UnescapeString(strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, " ")), " "))
}

// TestHealthPage: the first page shows, for each issuer, the CRL number, when it
// was published and its next update, flagged when it is due within 2 hours or
// past; the OCSP responder certificate's validity, flagged when it ended; the
// register's age against the allowed staleness; the keys; the database; the
// certificates issued per day and those expiring, as SVG without script or style
// attributes; and the pending EAB requests.
func TestHealthPage(t *testing.T) {
	var f *admintest.Fixture
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) // the fixture's clock
	f = newFixtureCA(t, admin.CA{
		Issuers: []admin.IssuerFacts{
			{Name: "production", Key: "file key", OCSPNotBefore: now.AddDate(0, -1, 0), OCSPNotAfter: now.AddDate(1, 0, 0)},
			{Name: "test", Key: "file key", OCSPNotBefore: now.AddDate(-1, 0, 0), OCSPNotAfter: now.Add(-time.Hour)},
		},
		RegisterMaxStale: 72 * time.Hour,
	})
	if !f.Clock.Now().Equal(now) {
		t.Fatalf("the fixture's clock is %s; the test assumes %s", f.Clock.Now(), now)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.St.PublishCRL(f.Ctx, store.CRLState{Issuer: "production", Number: 7, ThisUpdate: now.Add(-10 * time.Minute), NextUpdate: now.Add(8 * time.Hour),
		DER: []byte("crl"), Entries: 3, PublishedBy: "replica-1"}))
	must(f.St.PublishCRL(f.Ctx, store.CRLState{Issuer: "test", Number: 12, ThisUpdate: now.Add(-7 * time.Hour), NextUpdate: now.Add(time.Hour), DER: []byte("crl")}))
	// The database knows both first generations (active) and a second production
	// generation this server did not load.
	for i, g := range []store.IssuerGeneration{{Name: "production", Hierarchy: "production", Generation: 1}, {Name: "test", Hierarchy: "test", Generation: 1},
		{Name: "production-2", Hierarchy: "production", Generation: 2}} {
		g.Subject, g.CertSHA256, g.NotBefore, g.NotAfter = "CN="+g.Name, fmt.Sprintf("%064x", i+1), now.AddDate(-1, 0, 0), now.AddDate(5, 0, 0)
		if _, err := f.Svc.RegisterIssuer(f.Ctx, g, admin.SystemActor); err != nil {
			t.Fatal(err)
		}
	}
	f.Certificate("01aa", "www.apteekki.example")
	f.Certificate("01bb", "api.apteekki.example")
	id := f.Request("rita")

	b := newBrowser(f, f.Srv.Client())
	b.login("aino") // every role sees it; the auditor too
	resp, page := b.get("/console/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health page: %d\n%s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'; style-src 'self'; img-src 'self'") {
		t.Errorf("the health page changed the Content-Security-Policy: %q", csp)
	}
	if strings.Contains(strings.ToLower(page), "<script") || strings.Contains(page, "style=") || inlineHandler.MatchString(page) {
		t.Errorf("the health page has script or inline style")
	}
	words := text(page)
	for _, want := range []string{
		"production active file key 7 2026-03-01T08:50:00Z by replica-1 2026-03-01T17:00:00Z (in 8h0m0s) 3",
		"test active file key 12 2026-03-01T02:00:00Z 2026-03-01T10:00:00Z (in 1h0m0s) DUE 0",
		"production-2 standby not loaded by this server never published none",
		"Issuer production-2 has never published a CRL.",
		"The CRL of issuer test reaches its next update within 2h0m0s",
		"The OCSP responder certificate of issuer test ended 2026-03-01T08:00:00Z",
		"THL's register never loaded; refused when older than 72h0m0s",
		"THL's register was never loaded",
		"file keys in the data directory (development; no HSM)",
		"sqlite, reachable",
		"Certificates issued per day, last 30 days: 2",
		"Unrevoked certificates expiring per day, next 30 days: 0",
		"Pending EAB requests (1)",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("the health page does not say %q:\n%s", want, words)
		}
	}
	if !strings.Contains(page, `<text class="count" x="`) || !strings.Contains(page, `data-day="2026-03-01">2</text>`) {
		t.Errorf("the issuance chart has no bar of 2 on 2026-03-01:\n%s", page)
	}
	if n := strings.Count(page, `<rect class="bar"`); n != 2*admin.HealthDays {
		t.Errorf("the charts have %d bars, want %d", n, 2*admin.HealthDays)
	}
	if !strings.Contains(page, `href="/console/requests/`+id+`"`) {
		t.Errorf("the pending request %s is not linked", id)
	}
	if !strings.Contains(page, `class="crl-next-update flag"`) || !strings.Contains(page, `class="ocsp flag"`) {
		t.Errorf("the due CRL and the ended OCSP certificate are not flagged")
	}

	// Later: the register is loaded, the production CRL is past its next
	// update, and the certificates expire within 30 days.
	f.Clock.Add(365*24*time.Hour - 10*24*time.Hour)
	must(f.St.RecordRegisterLoad(f.Ctx, store.RegisterLoad{Source: "register.json", LoadedAt: f.Clock.Now().Add(-100 * time.Hour), Records: 2}))
	b = newBrowser(f, f.Srv.Client())
	b.login("aino") // the session ended meanwhile
	_, page = b.get("/console/")
	words = text(page)
	for _, want := range []string{
		"The CRL of issuer production is past its next update",
		"PAST",
		"THL's register copy is 100h0m0s old, more than the 72h0m0s allowed",
		"Certificates issued per day, last 30 days: 0",
		"Unrevoked certificates expiring per day, next 30 days: 2",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("later, the health page does not say %q:\n%s", want, words)
		}
	}
	// A revoked certificate does not expire as far as the page goes.
	if _, err := f.Svc.RevokeCertificate(f.Ctx, f.Op("alice"), "01aa", admin.RevokeInput{Reason: "superseded", RequestedBy: "Maija", IdentifiedBy: "phone", Door: admin.DoorAPI}); err != nil {
		t.Fatal(err)
	}
	if _, page = b.get("/console/"); !strings.Contains(text(page), "next 30 days: 1") {
		t.Errorf("after a revocation the page still counts it as expiring:\n%s", text(page))
	}
}

// TestHealthPageHSMEvents: with keys in an HSM the page names the token and the
// last login, re-login and self-test the audit log holds, and flags a failed one.
func TestHealthPageHSMEvents(t *testing.T) {
	f := newFixtureCA(t, admin.CA{HSM: &admin.HSMFacts{Module: "/usr/lib/softhsm/libsofthsm2.so", Token: "varmenne", Sessions: 4}})
	rec := audit.Recorder{Log: f.Log, Actor: "varmenne serve"}
	if err := rec.Audit(f.Ctx, audit.HSMLogin{Token: "varmenne", Serial: "s1"}, audit.OK); err != nil {
		t.Fatal(err)
	}
	if err := rec.Audit(f.Ctx, audit.HSMRelogin{Token: "varmenne"}, audit.Failed+": CKR_PIN_INCORRECT"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(f, f.Srv.Client())
	b.login("rita")
	_, page := b.get("/console/")
	words := text(page)
	for _, want := range []string{
		"in the HSM token varmenne (/usr/lib/softhsm/libsofthsm2.so), 4 sessions kept open",
		"Last hsm.login", "Last hsm.relogin",
		"The last hsm.relogin of the HSM",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("the health page does not say %q:\n%s", want, words)
		}
	}
}

// TestAuditPageFilters: the auditor's audit page narrows by actor, action,
// organisation and time, pages on the sequence number keeping the filters, and
// answers a bad filter with what to fix.
func TestAuditPageFilters(t *testing.T) {
	f := newFixture(t, admin.Config{})
	b := newBrowser(f, f.Srv.Client())
	f.Request("rita") // rita eab.request org=OrgOID
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.Clock.Add(time.Hour) // 10:00; the fixture's own events are at 09:00
	must(f.Svc.Suspend(f.Ctx, f.Op("alice"), admintest.OrgOther, "unpaid"))
	f.Clock.Add(2 * time.Hour)
	must(f.Svc.Resume(f.Ctx, f.Op("alice"), admintest.OrgOther))
	b.login("aino")
	rows := func(path string) []string {
		t.Helper()
		resp, page := b.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d\n%s", path, resp.StatusCode, page)
		}
		var out []string
		for _, m := range regexp.MustCompile(`<td class="actor">([^<]*)</td><td class="action">([^<]*)</td>`).FindAllStringSubmatch(page, -1) {
			out = append(out, m[1]+" "+m[2])
		}
		return out
	}
	all := rows("/console/audit")
	if len(all) < 4 {
		t.Fatalf("the unfiltered page shows %v", all)
	}
	for _, tt := range []struct {
		name, query string
		want        []string
	}{
		{"actor", "actor=alice&since=2026-03-01T10:00", []string{"alice organisation.suspend", "alice organisation.resume"}},
		{"actor and action", "actor=alice&action=organisation.resume", []string{"alice organisation.resume"}},
		{"organisation", "organisation=" + admintest.OrgOther, []string{"alice organisation.suspend", "alice organisation.resume"}},
		{"organisation of the request", "organisation=" + admintest.OrgOID + "&action=eab.request", []string{"rita eab.request"}},
		{"time: from", "actor=alice&since=2026-03-01T11:00", []string{"alice organisation.resume"}},
		{"time: until", "actor=alice&since=2026-03-01+09:30&until=2026-03-01T13:00:00%2B02:00", []string{"alice organisation.suspend"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := rows("/console/audit?" + tt.query); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("%s: %v, want %v", tt.query, got, tt.want)
			}
		})
	}

	// Pages of one event, the filter kept in the link.
	if got := rows("/console/audit?actor=alice&since=2026-03-01T10:00&limit=1"); strings.Join(got, "|") != "alice organisation.suspend" {
		t.Fatalf("the first page of one event shows %v", got)
	}
	_, page := b.get("/console/audit?actor=alice&since=2026-03-01T10:00&limit=1")
	next := regexp.MustCompile(`href="([^"]*)" id="next-page"`).FindStringSubmatch(page)
	if next == nil {
		t.Fatalf("a full page of one event has no next link:\n%s", page)
	}
	link, _ := url.Parse(strings.ReplaceAll(next[1], "&amp;", "&"))
	if link.Query().Get("actor") != "alice" || link.Query().Get("limit") != "1" || link.Query().Get("after") == "" {
		t.Fatalf("the next link %q lost the filter or the keyset", next[1])
	}
	var pages []string
	for path := link.String(); path != ""; {
		got := rows(path)
		pages = append(pages, got...)
		_, page := b.get(path)
		m := regexp.MustCompile(`href="([^"]*)" id="next-page"`).FindStringSubmatch(page)
		path = ""
		if m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		if len(pages) > 10 {
			t.Fatal("the pages do not end")
		}
	}
	if strings.Join(pages, "|") != "alice organisation.resume" {
		t.Errorf("the pages after the first show %v", pages)
	}

	// Bad filters are answered with what to fix; a page never holds more than
	// the bound.
	for query, want := range map[string]string{
		"organisation=apteekki":             "is not an OID",
		"since=yesterday":                   "is not a time such as",
		"since=2026-03-02&until=2026-03-01": "the start must be before the end",
		"limit=100000":                      "give 1 to 1000",
		"after=-1":                          "give the sequence number",
	} {
		resp, page := b.get("/console/audit?" + query)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, want) {
			t.Errorf("%s: %d, want 400 saying %q\n%s", query, resp.StatusCode, want, text(page))
		}
	}
	// Not an auditor: refused.
	rita := newBrowser(f, f.Srv.Client())
	rita.login("rita")
	if resp, _ := rita.get("/console/audit?actor=alice"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a registrar reading the audit page: %d, want 403", resp.StatusCode)
	}
}

// TestOrganisationPageRevokes: an administrator revokes a certificate from its
// organisation's page through the one revocation operation: the record names
// who asked and how they were identified and the console as its door, the audit
// log has the revocation, and the page shows it. A registrar has no form, and a
// cross-site form is refused whatever its token.
func TestOrganisationPageRevokes(t *testing.T) {
	f := newFixture(t, admin.Config{})
	const serial = "0a0b0c"
	f.Certificate(serial, "www.apteekki.example")
	orgPage := "/console/organisations/" + admintest.OrgOID

	rita := newBrowser(f, f.Srv.Client())
	rita.login("rita")
	if _, page := rita.get(orgPage); strings.Contains(page, `class="revoke"`) || strings.Contains(page, `id="revoke-all"`) {
		t.Errorf("a registrar is offered to revoke")
	}

	alice := newBrowser(f, f.Srv.Client())
	alice.login("alice")
	_, page := alice.get(orgPage)
	action := "/console/organisations/" + admintest.OrgOID + "/certificates/" + serial + "/revoke"
	if !strings.Contains(page, `action="`+action+`"`) {
		t.Fatalf("the organisation page has no revoke form for %s:\n%s", serial, page)
	}
	csrf := csrfOf(t, page)
	form := url.Values{"csrf": {csrf}, "reason": {"keyCompromise"}, "requested_by": {"Maija Meikäläinen, Apteekki Oy"},
		"identified_by": {"suomi.fi strong identification"}, "invalidity_date": {"2026-03-01T11:00:00+02:00"}, "note": {"ticket 7"}}

	snap, before := admintest.Snapshot(t, f.Path), f.LastSeq()
	if resp, _ := alice.postWith(action, form, map[string]string{"Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site revoke form: %d, want 403", resp.StatusCode)
	}
	noCSRF := url.Values{}
	for k, v := range form {
		if k != "csrf" {
			noCSRF[k] = v
		}
	}
	if resp, _ := alice.post(action, noCSRF); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a revoke form without its CSRF token: %d, want 403", resp.StatusCode)
	}
	if admintest.Snapshot(t, f.Path) != snap {
		t.Fatal("a refused revoke form changed the database")
	}
	resp, body := alice.post(action, form)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), orgPage) {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	rev, err := f.St.GetRevocation(f.Ctx, serial)
	if err != nil {
		t.Fatal(err)
	}
	if rev.RequestedBy != "Maija Meikäläinen, Apteekki Oy" || rev.IdentifiedBy != "suomi.fi strong identification" || rev.PerformedBy != "alice" ||
		rev.Reason != 1 || rev.Note != "ticket 7" || !strings.Contains(rev.ReceivedBy, "console") || !rev.InvalidityDate.Equal(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("the revocation record: %+v", rev)
	}
	if !admintest.HasEvent(f.Events(before), "alice", string(audit.ActRevoke), audit.OK, "serial="+serial) {
		t.Errorf("the revocation is not in the audit log:%s", admintest.Describe(f.Events(before)))
	}
	_, page = alice.get(orgPage)
	words := text(page)
	if !strings.Contains(words, "revoked 2026-03-01T09:00:00Z (keyCompromise), requested by Maija Meikäläinen, Apteekki Oy, identified by suomi.fi strong identification") {
		t.Errorf("the organisation page does not show the revocation and its requester:\n%s", words)
	}
	// Twice: the revocation operation refuses, the page says so.
	if resp, body := alice.post(action, form); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "already") {
		t.Errorf("revoking again: %d %s, want 409", resp.StatusCode, text(body))
	}
	// Without the requester: refused with what is missing.
	f.Certificate("0a0b0d", "api.apteekki.example")
	form.Del("requested_by")
	if resp, body := alice.post("/console/organisations/"+admintest.OrgOID+"/certificates/0a0b0d/revoke", form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "requested_by is required") {
		t.Errorf("a revocation without its requester: %d %s, want 400", resp.StatusCode, text(body))
	}
}

// TestOrganisationPageShowsPersistentRecords: the organisation page lists the names
// a persistent DNS record (dns-persist-01) authorises one of its accounts for, with
// the record and until when; a name proven by http-01 is not among them.
func TestOrganisationPageShowsPersistentRecords(t *testing.T) {
	f := newFixture(t, admin.Config{})
	f.Certificate("0d0e0f", "www.apteekki.example") // an account, and an authorization proven by http-01
	now := f.Clock.Now()
	record := `_validation-persist.kassa.apteekki.example TXT "ca.example; accounturi=https://ca.example/acme/account/acct-0d0e0f"`
	az := store.Authorization{ID: "az-persist", AccountID: "acct-0d0e0f", Name: "kassa.apteekki.example", Status: "pending",
		Expires: now.Add(time.Hour), CreatedAt: now,
		Challenges: []store.Challenge{{ID: "ch-persist", AuthzID: "az-persist", Type: "dns-persist-01", Token: "t-persist", Status: "pending"}}}
	o := store.Order{ID: "o-persist", AccountID: "acct-0d0e0f", OrgOID: admintest.OrgOID, Status: "pending", Expires: now.Add(time.Hour),
		Names: []string{az.Name}, Profile: "sote-server", AuthzIDs: []string{az.ID}, CreatedAt: now}
	if err := f.St.CreateOrder(f.Ctx, o, []store.Authorization{az}); err != nil {
		t.Fatal(err)
	}
	if err := f.St.StartChallenge(f.Ctx, "ch-persist"); err != nil {
		t.Fatal(err)
	}
	if err := f.Log.DoRows(f.Ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done("acme", audit.PersistentRecordValidated{Authz: "az-persist", Challenge: "ch-persist", Account: "acct-0d0e0f",
			Org: admintest.OrgOID, Name: az.Name, Record: record, Validated: now})}, tx.FinishChallengeWithEvidence("ch-persist", now, record)
	}); err != nil {
		t.Fatal(err)
	}
	until := now.Add(7 * 24 * time.Hour)
	if err := f.St.SetValidAuthorizationExpiry(f.Ctx, "az-persist", until); err != nil {
		t.Fatal(err)
	}

	rita := newBrowser(f, f.Srv.Client())
	rita.login("rita")
	_, page := rita.get("/console/organisations/" + admintest.OrgOID)
	start := strings.Index(page, `id="persistent"`)
	if start < 0 {
		t.Fatalf("the organisation page has no table of names authorised by a persistent record:\n%s", page)
	}
	table, _, _ := strings.Cut(page[start:], "</table>")
	for _, want := range []string{`<td class="name">kassa.apteekki.example</td>`, "acct-0d0e0f", html.EscapeString(record),
		`<td class="until">` + until.UTC().Format(time.RFC3339) + `</td>`} {
		if !strings.Contains(table, want) {
			t.Errorf("the persistent-record table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "www.apteekki.example") {
		t.Errorf("a name proven by http-01 is listed as authorised by a persistent record:\n%s", table)
	}
}
