package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin/operatorca"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

const (
	orgOID   = "1.2.246.10.12345678.10.0"
	orgOther = "1.2.246.10.87654321.10.0"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is the admin API over the real SQLite store and audit log, on a TLS
// server that asks for operator client certificates.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	st    *store.SQL
	log   *audit.Log
	clock *clock
	svc   *Service
	srv   *httptest.Server
	ca    *operatorca.CA
	// tokens of the token operators: alice and bob (administrators), rita and
	// eservice (registrars), aino (auditor).
	tokens map[string]string
	// certClient authenticates as carl (administrator) with his client certificate.
	certClient *http.Client
	certPair   tls.Certificate
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "varmenne.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, ctx: ctx, st: st, clock: &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}, tokens: map[string]string{}}
	f.log = audit.New(st, f.clock.Now)
	cfg.Now = f.clock.Now
	if cfg.Profiles == nil {
		cfg.Profiles = []string{"sote-server", "sote-server-test"}
	}
	f.svc = New(cfg, st, f.log, nil)
	for _, o := range []store.Organisation{
		{OID: orgOID, Name: "Apteekki Oy", LongName: "Helsingin apteekki", Domains: []string{"apteekki.example"}, CreatedAt: f.clock.Now()},
		{OID: orgOther, Name: "Terveys Oy", LongName: "Terveys", Domains: []string{"terveys.example"}, CreatedAt: f.clock.Now()},
	} {
		if err := st.AddOrganisation(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if f.ca, _, err = operatorca.Ensure(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	for name, role := range map[string]string{"alice": "administrator", "bob": "administrator", "rita": "registrar", "eservice": "registrar", "aino": "auditor"} {
		op, err := AddOperator(ctx, st, f.log, f.ca, "setup", name, role, true, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[name] = op.Token
	}
	carl, err := AddOperator(ctx, st, f.log, f.ca, "setup", "carl", "administrator", false, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if f.certPair, err = tls.X509KeyPair(carl.CertPEM, carl.KeyPEM); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(NewServer(f.svc, nil).Handler())
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Cert)
	f.srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes tests make on purpose
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.certClient = f.clientWithCert(f.certPair)
	return f
}

func (f *fixture) clientWithCert(c tls.Certificate) *http.Client {
	tr := f.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{c}
	return &http.Client{Transport: tr}
}

// response is an API answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d %s is not JSON: %v", r.status, r.body, err)
	}
}

// problemType is the problem document's type without the prefix; "" when the
// answer is not a problem document.
func (r response) problemType() string {
	var p struct{ Type string }
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") || json.Unmarshal(r.body, &p) != nil {
		return ""
	}
	return strings.TrimPrefix(p.Type, ProblemPrefix)
}

// do sends a request as operator who ("" none; "carl" uses his certificate) with
// body as JSON when it is not nil.
func (f *fixture) do(who, method, path string, body any) response {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := f.srv.Client()
	switch who {
	case "":
	case "carl":
		client = f.certClient
	default:
		req.Header.Set("Authorization", "Bearer "+f.tokens[who])
	}
	resp, err := client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (f *fixture) op(name string) *store.Operator {
	f.t.Helper()
	o, err := f.st.GetOperator(f.ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

func requestInput() EABRequestInput {
	return EABRequestInput{Organisation: orgOID, Person: "Maija Meikäläinen", IdentifiedBy: "suomi.fi strong identification",
		TechnicalContact: "it@vendor.example", Domains: []string{"www.apteekki.example"}, Profiles: []string{"sote-server"}}
}

// request makes an EAB request as who through the service.
func (f *fixture) request(who string) string {
	f.t.Helper()
	r, err := f.svc.RequestEAB(f.ctx, f.op(who), requestInput())
	if err != nil {
		f.t.Fatal(err)
	}
	return r.ID
}

// approved makes a request as requester, approved by approver; it returns the
// request id and the kid.
func (f *fixture) approved(requester, approver string) (string, string) {
	f.t.Helper()
	id := f.request(requester)
	k, err := f.svc.Approve(f.ctx, f.op(approver), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return id, k.KID
}

// certificate stores an issued certificate of orgOID with serial (hex) for name.
func (f *fixture) certificate(serial, name string) {
	f.t.Helper()
	kid := "kid-" + serial
	now := f.clock.Now()
	must := func(err error) {
		f.t.Helper()
		if err != nil {
			f.t.Fatal(err)
		}
	}
	must(f.st.CreateEAB(f.ctx, store.EABKey{KID: kid, OrgOID: orgOID, HMACKey: []byte("k"), Status: store.EABApproved, CreatedAt: now}))
	acct := "acct-" + serial
	must(f.st.CreateAccount(f.ctx, store.Account{ID: acct, Thumbprint: "tp-" + serial, JWK: []byte(`{}`), OrgOID: orgOID, Status: "valid", CreatedAt: now}, kid))
	az := store.Authorization{ID: "az-" + serial, AccountID: acct, Name: name, Status: "valid", Expires: now.Add(time.Hour), CreatedAt: now,
		Challenges: []store.Challenge{{ID: "ch-" + serial, AuthzID: "az-" + serial, Type: "http-01", Token: "t-" + serial, Status: "valid", Validated: now}}}
	o := store.Order{ID: "o-" + serial, AccountID: acct, OrgOID: orgOID, Status: "ready", Expires: now.Add(time.Hour), Names: []string{name},
		Profile: "sote-server", AuthzIDs: []string{az.ID}, CreatedAt: now}
	must(f.st.CreateOrder(f.ctx, o, []store.Authorization{az}))
	must(f.st.BeginFinalize(f.ctx, o.ID))
	must(f.st.RecordIntent(f.ctx, store.IssuanceIntent{Serial: serial, OrderID: o.ID, Issuer: "production", Names: []string{name}, KeyHash: "ee" + serial, CreatedAt: now}))
	must(f.st.FinishIssuance(f.ctx, store.Certificate{Serial: serial, Issuer: "production", DER: []byte("der"), Names: []string{name}, KeyHash: "ee" + serial,
		NotBefore: now, NotAfter: now.AddDate(1, 0, 0), OrgOID: orgOID, AccountID: acct, OrderID: o.ID, Profile: "sote-server", CreatedAt: now}))
}

// events are the audit log's events after seq after, as "actor action outcome".
func (f *fixture) events(after int64) []store.AuditEvent {
	f.t.Helper()
	ev, err := f.st.AuditEvents(f.ctx, after, 10000)
	if err != nil {
		f.t.Fatal(err)
	}
	return ev
}

func (f *fixture) lastSeq() int64 {
	ev := f.events(0)
	if len(ev) == 0 {
		return 0
	}
	return ev[len(ev)-1].Seq
}

func hasEvent(events []store.AuditEvent, actor, action, outcomePrefix, objectPart string) bool {
	for _, e := range events {
		if e.Actor == actor && e.Action == action && strings.HasPrefix(e.Outcome, outcomePrefix) && strings.Contains(e.Object, objectPart) {
			return true
		}
	}
	return false
}

func describe(events []store.AuditEvent) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n  %d %s %s %q %s", e.Seq, e.Actor, e.Action, e.Object, e.Outcome)
	}
	return b.String()
}
