package crl

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
	"github.com/varmenne/varmenne/test/logbuf"
)

// t0 is the fake clock's start: whole seconds, as CRL times are.
var t0 = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

// clock is a fake clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newIssuer makes a self-signed issuing CA with key (a P-256 key when nil) and
// an OCSP responder it signed.
func newIssuer(t testing.TB, name string, key crypto.Signer) Issuer {
	t.Helper()
	if key == nil {
		key = newKey(t)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "varmenne test " + name + " issuer", Country: []string{"FI"}},
		NotBefore:             t0.AddDate(-1, 0, 0),
		NotAfter:              t0.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return withResponder(t, name, cert, key)
}

// withResponder is the issuer cert with key and an OCSP responder it signed.
func withResponder(t testing.TB, name string, cert *x509.Certificate, key crypto.Signer) Issuer {
	t.Helper()
	rkey := newKey(t)
	rtmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(2),
		Subject:         pkix.Name{CommonName: "varmenne test " + name + " OCSP responder"},
		NotBefore:       t0.AddDate(-1, 0, 0),
		NotAfter:        t0.AddDate(1, 0, 0),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier(oidOCSPNoCheck), Value: asn1.NullBytes}},
	}
	rder, err := x509.CreateCertificate(rand.Reader, rtmpl, cert, rkey.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	rcert, err := x509.ParseCertificate(rder)
	if err != nil {
		t.Fatal(err)
	}
	return Issuer{Name: name, Cert: cert, Key: key, CRLURL: "http://crl.example/crl/" + name + ".crl",
		OCSP: &Responder{Cert: rcert, Key: rkey}}
}

// db is a real SQLite store with one organisation and account, so that tests
// issue and revoke through the store's own methods.
type db struct {
	t   testing.TB
	ctx context.Context
	*store.SQL
	n int
}

const testOrg = "1.2.246.10.1234567.10.0"

func newDB(t testing.TB) *db {
	t.Helper()
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "varmenne.db"), eabSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d := &db{t: t, ctx: ctx, SQL: s}
	d.must(s.AddOrganisation(ctx, store.Organisation{OID: testOrg, Name: "Apteekki", LongName: "Apteekki", CreatedAt: t0}))
	d.must(s.CreateEAB(ctx, store.EABKey{KID: "kid", OrgOID: testOrg, HMACKey: []byte("k"), Status: store.EABApproved, CreatedAt: t0}))
	d.must(s.CreateAccount(ctx, store.Account{ID: "acct", Thumbprint: "thumb", JWK: []byte(`{}`), OrgOID: testOrg,
		Status: "valid", CreatedAt: t0}, "kid"))
	return d
}

func (d *db) must(err error) {
	d.t.Helper()
	if err != nil {
		d.t.Fatal(err)
	}
}

// intent records a pending issuance intent of serial (hex) on a new processing order.
func (d *db) intent(serial, issuer string, tbs []byte) string {
	d.t.Helper()
	d.n++
	id := "o" + serial
	az := store.Authorization{ID: "az" + serial, AccountID: "acct", Name: "a.example.fi", Status: "valid",
		Expires: t0.AddDate(0, 0, 7), CreatedAt: t0,
		Challenges: []store.Challenge{{ID: "ch" + serial, AuthzID: "az" + serial, Type: "http-01", Token: "tok" + serial, Status: "valid", Validated: t0}}}
	d.must(d.CreateOrder(d.ctx, store.Order{ID: id, AccountID: "acct", OrgOID: testOrg, Status: "ready",
		Expires: t0.AddDate(0, 0, 7), Names: []string{"a.example.fi"}, Profile: "sote-server", AuthzIDs: []string{az.ID}, CreatedAt: t0},
		[]store.Authorization{az}))
	d.must(d.BeginFinalize(d.ctx, id))
	d.must(d.RecordIntent(d.ctx, store.IssuanceIntent{Serial: serial, OrderID: id, Issuer: issuer, Names: []string{"a.example.fi"},
		KeyHash: strings.Repeat("0", 64-len(serial)) + serial, LintTBS: tbs, CreatedAt: t0}))
	return id
}

// issue stores a certificate of issuer with serial (hex) valid until notAfter.
func (d *db) issue(serial, issuer string, notAfter time.Time) {
	d.t.Helper()
	order := d.intent(serial, issuer, nil)
	d.must(d.FinishIssuance(d.ctx, store.Certificate{Serial: serial, Issuer: issuer, DER: []byte("der"), Names: []string{"a.example.fi"},
		KeyHash: strings.Repeat("0", 64-len(serial)) + serial, NotBefore: notAfter.AddDate(-1, 0, 0), NotAfter: notAfter,
		OrgOID: testOrg, AccountID: "acct", OrderID: order, Profile: "sote-server", CreatedAt: t0}))
}

func (d *db) revoke(serial string, at time.Time, reason int, invalidity time.Time) {
	d.t.Helper()
	d.must(d.Revoke(d.ctx, store.Revocation{Serial: serial, RevokedAt: at, Reason: reason, InvalidityDate: invalidity,
		RequestedBy: "test", IdentifiedBy: "test", PerformedBy: "test"}, nil))
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, nil)), b
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logBuffer collects JSON log lines.
type logBuffer = logbuf.Buffer

// eabSecret seals the EAB keys of the stores the tests open.
var eabSecret, _ = store.GenerateEABSecret()
