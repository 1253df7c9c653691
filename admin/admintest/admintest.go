// Package admintest is the fixture the tests of the operator service and its
// front ends share: the real SQLite store and audit log in a temporary directory,
// a clock tests move by hand, two organisations, operators of each role and,
// when a handler is given, a TLS server that asks for operator client
// certificates. Only tests import it.
package admintest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/operatorca"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// The organisations of every fixture: OrgOID administers apteekki.example,
// OrgOther terveys.example.
const (
	OrgOID   = "1.2.246.10.12345678.10.0"
	OrgOther = "1.2.246.10.87654321.10.0"
)

// EABSecret seals the EAB keys of every fixture's store.
var EABSecret, _ = store.GenerateEABSecret()

// Clock is a fake clock tests move by hand.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Fixture is the operator service over the real SQLite store and audit log and,
// with a handler, that handler on a TLS server that asks for operator client
// certificates.
type Fixture struct {
	T     *testing.T
	Ctx   context.Context
	St    *store.SQL
	Path  string // the SQLite file of St
	Log   *audit.Log
	Clock *Clock
	Cfg   admin.Config // what Svc was made with
	Svc   *admin.Service
	Srv   *httptest.Server // nil without a handler
	CA    *operatorca.CA
	// Tokens of the token operators: alice and bob (administrators), rita and
	// eservice (registrars), aino (auditor).
	Tokens map[string]string
	// CertClient authenticates as carl (administrator) with his client
	// certificate, CertPair.
	CertClient *http.Client
	CertPair   tls.Certificate

	handler func(*admin.Service) http.Handler
}

// New makes the fixture: the service with cfg (the fixture's clock; Profiles nil
// means sote-server and sote-server-test) and, when handler is not nil,
// handler(service) on a TLS server.
func New(t *testing.T, cfg admin.Config, handler func(svc *admin.Service) http.Handler) *Fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "varmenne.db"), EABSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &Fixture{T: t, Ctx: ctx, St: st, Path: filepath.Join(dir, "varmenne.db"), Clock: &Clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}, Tokens: map[string]string{}, handler: handler}
	f.Log = audit.New(st, f.Clock.Now)
	cfg.Now = f.Clock.Now
	if cfg.Profiles == nil {
		cfg.Profiles = []string{"sote-server", "sote-server-test"}
	}
	f.Cfg = cfg
	f.Svc = admin.New(cfg, st, f.Log, nil)
	// Both organisations are listed as active by a register import, as production
	// (the fixture's mode unless cfg.Development) requires of every organisation.
	var listed []store.RegisterImport
	for _, o := range []store.Organisation{
		{OID: OrgOID, Name: "Apteekki Oy", LongName: "Helsingin apteekki", Domains: []string{"apteekki.example"}, CreatedAt: f.Clock.Now()},
		{OID: OrgOther, Name: "Terveys Oy", LongName: "Terveys", Domains: []string{"terveys.example"}, CreatedAt: f.Clock.Now()},
	} {
		if err := st.AddOrganisation(ctx, o); err != nil {
			t.Fatal(err)
		}
		listed = append(listed, store.RegisterImport{OID: o.OID, Name: o.Name, LongName: o.LongName, Register: store.OrganisationRegister{Status: "active"}})
	}
	if _, err := st.ImportRegister(ctx, listed, f.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if f.CA, _, err = operatorca.Ensure(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	// The operators are added as a new CA's would be: by the administrator the
	// first start made.
	boot, err := f.Svc.Bootstrap(ctx)
	if err != nil || boot == nil {
		t.Fatalf("Bootstrap = %v, %v", boot, err)
	}
	setup := &boot.Operator
	// add adds an operator as the first administrator; in production, once there
	// are two administrators, another one approves (dual control).
	add := func(in admin.OperatorInput) *admin.NewOperator {
		op, err := f.Svc.AddOperator(ctx, setup, f.CA, in)
		if err != nil {
			t.Fatal(err)
		}
		if op.Pending != nil {
			approver := "alice"
			if in.Name == "alice" {
				approver = "bob"
			}
			if op, err = f.Svc.ApproveOperatorChange(ctx, f.Op(approver), f.CA, op.Pending.ID); err != nil {
				t.Fatal(err)
			}
		}
		return op
	}
	// Administrators first, in order, so that approvers exist.
	for _, name := range []string{"alice", "bob"} {
		f.Tokens[name] = add(admin.OperatorInput{Name: name, Role: "administrator", Token: true}).Token
	}
	for name, role := range map[string]string{"rita": "registrar", "eservice": "registrar", "aino": "auditor"} {
		f.Tokens[name] = add(admin.OperatorInput{Name: name, Role: role, Token: true}).Token
	}
	carl := add(admin.OperatorInput{Name: "carl", Role: "administrator"})
	if f.CertPair, err = tls.X509KeyPair(carl.CertPEM, carl.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if handler != nil {
		f.serve()
	}
	return f
}

// serve starts f.handler(f.Svc) on a TLS server that verifies the client
// certificates of the operator CA, when one is given.
func (f *Fixture) serve() {
	f.Srv = httptest.NewUnstartedServer(f.handler(f.Svc))
	pool := x509.NewCertPool()
	pool.AddCert(f.CA.Cert)
	f.Srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	f.Srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes tests make on purpose
	f.Srv.StartTLS()
	f.T.Cleanup(f.Srv.Close)
	f.CertClient = f.ClientWithCert(f.CertPair)
}

// Replica is a second server with its own Service on the fixture's store:
// another "varmenne serve" on the same database, or the same one after a
// restart.
func (f *Fixture) Replica() *Fixture {
	f.T.Helper()
	g := *f
	g.Svc = admin.New(f.Cfg, f.St, f.Log, nil)
	g.serve()
	return &g
}

// ClientWithCert is a client of the server that presents c.
func (f *Fixture) ClientWithCert(c tls.Certificate) *http.Client {
	tr := f.Srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{c}
	return &http.Client{Transport: tr}
}

// Response is an API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the answer into v.
func (r Response) JSON(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("answer %d %s is not JSON: %v", r.Status, r.Body, err)
	}
}

// ProblemType is the problem document's type without the prefix; "" when the
// answer is not a problem document.
func (r Response) ProblemType() string {
	var p struct{ Type string }
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") || json.Unmarshal(r.Body, &p) != nil {
		return ""
	}
	return strings.TrimPrefix(p.Type, web.ProblemPrefix)
}

// Do sends a request as operator who ("" none; "carl" uses his certificate) with
// body as JSON when it is not nil. A request other than GET and HEAD is sent as
// application/json also without a body, as the API requires of state changes.
func (f *Fixture) Do(who, method, path string, body any) Response {
	f.T.Helper()
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.T.Fatal(err)
		}
		raw = b
	}
	header := http.Header{}
	if body != nil || (method != http.MethodGet && method != http.MethodHead) {
		header.Set("Content-Type", "application/json")
	}
	return f.DoRaw(who, method, path, header, raw)
}

// DoRaw sends a request as operator who (as Do) with exactly header and body
// (nil: none).
func (f *Fixture) DoRaw(who, method, path string, header http.Header, body []byte) Response {
	f.T.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, f.Srv.URL+path, rd)
	if err != nil {
		f.T.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := f.Srv.Client()
	switch who {
	case "":
	case "carl":
		client = f.CertClient
	default:
		req.Header.Set("Authorization", "Bearer "+f.Tokens[who])
	}
	resp, err := client.Do(req)
	if err != nil {
		f.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Op is the operator called name.
func (f *Fixture) Op(name string) *store.Operator {
	f.T.Helper()
	o, err := f.St.GetOperator(f.Ctx, name)
	if err != nil {
		f.T.Fatal(err)
	}
	return o
}

// RequestInput is a valid EAB request for OrgOID.
func RequestInput() admin.EABRequestInput {
	return admin.EABRequestInput{Organisation: OrgOID, Person: "Maija Meikäläinen", IdentifiedBy: "suomi.fi strong identification",
		TechnicalContact: "it@vendor.example", Domains: []string{"www.apteekki.example"}, Profiles: []string{"sote-server"}}
}

// Request makes an EAB request as who through the service and returns its id.
func (f *Fixture) Request(who string) string {
	f.T.Helper()
	r, err := f.Svc.RequestEAB(f.Ctx, f.Op(who), RequestInput())
	if err != nil {
		f.T.Fatal(err)
	}
	return r.ID
}

// Approved makes a request as requester, approved by approver; it returns the
// request id and the kid.
func (f *Fixture) Approved(requester, approver string) (string, string) {
	f.T.Helper()
	id := f.Request(requester)
	k, err := f.Svc.Approve(f.Ctx, f.Op(approver), id)
	if err != nil {
		f.T.Fatal(err)
	}
	return id, k.KID
}

// Certificate stores an issued certificate of OrgOID with serial (hex) for name.
func (f *Fixture) Certificate(serial, name string) {
	f.T.Helper()
	kid := "kid-" + serial
	now := f.Clock.Now()
	must := func(err error) {
		f.T.Helper()
		if err != nil {
			f.T.Fatal(err)
		}
	}
	must(f.St.CreateEAB(f.Ctx, store.EABKey{KID: kid, OrgOID: OrgOID, HMACKey: []byte("k"), Status: store.EABApproved, CreatedAt: now}))
	acct := "acct-" + serial
	must(f.St.CreateAccount(f.Ctx, store.Account{ID: acct, Thumbprint: "tp-" + serial, JWK: []byte(`{}`), OrgOID: OrgOID, Status: "valid", CreatedAt: now}, kid))
	az := store.Authorization{ID: "az-" + serial, AccountID: acct, Name: name, Status: "valid", Expires: now.Add(time.Hour), CreatedAt: now,
		Challenges: []store.Challenge{{ID: "ch-" + serial, AuthzID: "az-" + serial, Type: "http-01", Token: "t-" + serial, Status: "valid", Validated: now}}}
	o := store.Order{ID: "o-" + serial, AccountID: acct, OrgOID: OrgOID, Status: "ready", Expires: now.Add(time.Hour), Names: []string{name},
		Profile: "sote-server", AuthzIDs: []string{az.ID}, CreatedAt: now}
	must(f.St.CreateOrder(f.Ctx, o, []store.Authorization{az}))
	must(f.St.BeginFinalize(f.Ctx, o.ID))
	must(f.St.RecordIntent(f.Ctx, store.IssuanceIntent{Serial: serial, OrderID: o.ID, Issuer: "production", Names: []string{name}, KeyHash: "ee" + serial, CreatedAt: now}))
	must(f.St.FinishIssuance(f.Ctx, store.Certificate{Serial: serial, Issuer: "production", DER: []byte("der"), Names: []string{name}, KeyHash: "ee" + serial,
		NotBefore: now, NotAfter: now.AddDate(1, 0, 0), OrgOID: OrgOID, AccountID: acct, OrderID: o.ID, Profile: "sote-server", CreatedAt: now}))
}

// Events are the audit log's events after seq after.
func (f *Fixture) Events(after int64) []store.AuditEvent {
	f.T.Helper()
	ev, err := f.St.AuditEvents(f.Ctx, after, 10000)
	if err != nil {
		f.T.Fatal(err)
	}
	return ev
}

// LastSeq is the sequence number of the audit log's last event.
func (f *Fixture) LastSeq() int64 {
	ev := f.Events(0)
	if len(ev) == 0 {
		return 0
	}
	return ev[len(ev)-1].Seq
}

// HasEvent says whether events hold one by actor with action, an outcome that
// starts with outcomePrefix and an object that contains objectPart.
func HasEvent(events []store.AuditEvent, actor, action, outcomePrefix, objectPart string) bool {
	for _, e := range events {
		if e.Actor == actor && e.Action == action && strings.HasPrefix(e.Outcome, outcomePrefix) && strings.Contains(e.Object, objectPart) {
			return true
		}
	}
	return false
}

// Describe lists events, one a line, for a failure message.
func Describe(events []store.AuditEvent) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n  %d %s %s %q %s", e.Seq, e.Actor, e.Action, e.Object, e.Outcome)
	}
	return b.String()
}

// Snapshot is every row of every table but the audit log, as text: two equal
// snapshots mean nothing changed.
func Snapshot(t testing.TB, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := column(db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'audit_log' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprint(vals...))
		}
		rows.Close()
		sort.Strings(lines)
		fmt.Fprintf(&b, "%s: %s\n", table, strings.Join(lines, " | "))
	}
	return b.String()
}

func column(db *sql.DB, q string) ([]string, error) {
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// AuditDown makes every write to the audit log in the SQLite file at path fail,
// as a full disk or a lost grant would, until the function it returns is called.
func AuditDown(t testing.TB, path string) (restore func()) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := db.Exec(`DROP TRIGGER audit_down`); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
}
