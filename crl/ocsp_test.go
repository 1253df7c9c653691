package crl

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/varmenne/varmenne/revocation"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/varmenne/varmenne/store"
)

// countingStatus counts the store lookups, to see what the cache saves.
type countingStatus struct {
	StatusReader
	n atomic.Int64
}

func (c *countingStatus) SerialStatus(ctx context.Context, serial string) (*store.SerialStatus, error) {
	c.n.Add(1)
	return c.StatusReader.SerialStatus(ctx, serial)
}

type ocspFixture struct {
	t      *testing.T
	db     *db
	clock  *clock
	prod   Issuer
	test   Issuer
	status *countingStatus
	o      *OCSP
}

func newOCSPFixture(t *testing.T, cfg OCSPConfig) *ocspFixture {
	f := &ocspFixture{t: t, db: newDB(t), clock: newClock(), prod: newIssuer(t, "production", nil), test: newIssuer(t, "test", nil)}
	f.status = &countingStatus{StatusReader: f.db}
	cfg.Now = f.clock.Now
	o, err := NewOCSP(cfg, f.status, []Issuer{f.prod, f.test})
	if err != nil {
		t.Fatal(err)
	}
	f.o = o
	return f
}

func request(t testing.TB, issuer Issuer, serial string, h crypto.Hash) []byte {
	t.Helper()
	req, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: new(big.Int).SetBytes(mustHex(t, serial))}, issuer.Cert,
		&ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// ask sends a request about serial (of issuer `about`) to the responder of `to`.
func (f *ocspFixture) ask(to string, about Issuer, serial string, h crypto.Hash) (*Response, *ocsp.Response, error) {
	f.t.Helper()
	r, err := f.o.Respond(context.Background(), to, request(f.t, about, serial, h))
	if err != nil {
		f.t.Fatalf("Respond: %v", err)
	}
	parsed, perr := ocsp.ParseResponse(r.DER, about.Cert)
	return r, parsed, perr
}

func TestOCSPAnswers(t *testing.T) {
	f := newOCSPFixture(t, OCSPConfig{})
	f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
	f.db.issue("0b", "production", t0.AddDate(1, 0, 0))
	f.db.revoke("0b", t0.Add(-time.Minute), revocation.KeyCompromise.Code, time.Time{})
	f.db.issue("0d", "production", t0.AddDate(1, 0, 0))
	f.db.revoke("0d", t0.Add(-time.Minute), revocation.Unspecified.Code, time.Time{})
	f.db.intent("0c", "production", nil)
	f.db.issue("1a", "test", t0.AddDate(1, 0, 0))

	cases := []struct {
		name       string
		to         string
		about      Issuer
		serial     string
		hash       crypto.Hash
		wantStatus int
		wantReason int
		wantErr    error // an OCSP error response
	}{
		{name: "an issued certificate is good", to: "production", about: f.prod, serial: "0a", hash: crypto.SHA1, wantStatus: ocsp.Good},
		{name: "a CertID with SHA-256 works too", to: "production", about: f.prod, serial: "0a", hash: crypto.SHA256, wantStatus: ocsp.Good},
		{name: "a revoked one is revoked, with its reason", to: "production", about: f.prod, serial: "0b", hash: crypto.SHA1,
			wantStatus: ocsp.Revoked, wantReason: revocation.KeyCompromise.Code},
		{name: "revoked with reason unspecified", to: "production", about: f.prod, serial: "0d", hash: crypto.SHA1,
			wantStatus: ocsp.Revoked, wantReason: revocation.Unspecified.Code},
		{name: "a serial never issued is unauthorized, unsigned", to: "production", about: f.prod, serial: "0e", hash: crypto.SHA1,
			wantErr: ocsp.ResponseError{Status: ocsp.Unauthorized}},
		{name: "an intent without a stored certificate is unknown", to: "production", about: f.prod, serial: "0c", hash: crypto.SHA1,
			wantStatus: ocsp.Unknown},
		{name: "the other issuer's serial under this issuer's name is unauthorized", to: "production", about: f.prod, serial: "1a",
			hash: crypto.SHA1, wantErr: ocsp.ResponseError{Status: ocsp.Unauthorized}},
		{name: "the test issuer answers for its own", to: "test", about: f.test, serial: "1a", hash: crypto.SHA1, wantStatus: ocsp.Good},
		{name: "a request about another issuer is unauthorized", to: "production", about: f.test, serial: "1a", hash: crypto.SHA1,
			wantErr: ocsp.ResponseError{Status: ocsp.Unauthorized}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, got, err := f.ask(tc.to, tc.about, tc.serial, tc.hash)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want the error response %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("response does not verify: %v", err)
			}
			is := f.prod
			if tc.to == "test" {
				is = f.test
			}
			checks := []struct {
				what string
				ok   bool
			}{
				{"status", got.Status == tc.wantStatus && r.Status == tc.wantStatus},
				{"serial", got.SerialNumber.Cmp(new(big.Int).SetBytes(mustHex(t, tc.serial))) == 0},
				{"signed by the delegated responder", got.Certificate != nil && got.Certificate.Equal(is.OCSP.Cert)},
				{"CertID hash", got.IssuerHash == tc.hash},
				{"thisUpdate", got.ThisUpdate.Equal(t0)},
				{"nextUpdate 8 h later", got.NextUpdate.Equal(t0.Add(MaxValidity))},
			}
			if tc.wantStatus == ocsp.Revoked {
				checks = append(checks, struct {
					what string
					ok   bool
				}{"revocation time and reason", got.RevokedAt.Equal(t0.Add(-time.Minute)) && got.RevocationReason == tc.wantReason})
			}
			for _, c := range checks {
				if !c.ok {
					t.Errorf("%s is wrong: %+v", c.what, got)
				}
			}
		})
	}

	t.Run("malformed requests get the malformedRequest answer", func(t *testing.T) {
		for _, body := range [][]byte{nil, []byte("not DER"), {0x30, 0x00}} {
			r, err := f.o.Respond(context.Background(), "production", body)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ocsp.ParseResponse(r.DER, nil); !errors.Is(err, ocsp.ResponseError{Status: ocsp.Malformed}) {
				t.Errorf("%x: got %v, want malformedRequest", body, err)
			}
		}
	})
	t.Run("an issuer without a responder is not served", func(t *testing.T) {
		_, err := f.o.Respond(context.Background(), "staging", request(t, f.prod, "0a", crypto.SHA1))
		if !errors.Is(err, ErrUnknownIssuer) {
			t.Errorf("got %v, want ErrUnknownIssuer", err)
		}
	})
}

func TestOCSPCache(t *testing.T) {
	f := newOCSPFixture(t, OCSPConfig{Refresh: time.Hour, UnknownRefresh: time.Minute})
	f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
	status := func(serial string) int {
		t.Helper()
		_, got, err := f.ask("production", f.prod, serial, crypto.SHA1)
		if err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	steps := []struct {
		name        string
		do          func()
		serial      string
		wantStatus  int
		wantLookups int64 // store lookups so far
	}{
		{"the first question asks the store", func() {}, "0a", ocsp.Good, 1},
		{"the same question again is answered from the cache", func() { f.clock.Add(time.Minute) }, "0a", ocsp.Good, 1},
		{"a revocation alone does not reach a cached answer", func() { f.db.revoke("0a", f.clock.Now(), revocation.Superseded.Code, time.Time{}) },
			"0a", ocsp.Good, 1},
		{"the poll that sees it drops the cache: revoked at once", func() { f.o.Invalidate("production") }, "0a", ocsp.Revoked, 2},
		{"cached again", func() { f.clock.Add(59 * time.Minute) }, "0a", ocsp.Revoked, 2},
		{"signed anew after an hour, well before nextUpdate", func() { f.clock.Add(time.Minute) }, "0a", ocsp.Revoked, 3},
		{"a pending issuance is unknown", func() { f.db.intent("0c", "production", nil) }, "0c", ocsp.Unknown, 4},
		{"an unknown answer is reused for a minute", func() { f.clock.Add(59 * time.Second) }, "0c", ocsp.Unknown, 4},
		{"and then asked again", func() { f.clock.Add(time.Second) }, "0c", ocsp.Unknown, 5},
		{"a new certificate is known at once: made-up serials were never cached", func() {
			f.db.issue("0b", "production", t0.AddDate(1, 0, 0))
		}, "0b", ocsp.Good, 6},
		{"dropping the other issuer's cache changes nothing here", func() { f.o.Invalidate("test") }, "0b", ocsp.Good, 6},
	}
	for _, s := range steps {
		s.do()
		if got := status(s.serial); got != s.wantStatus {
			t.Fatalf("%s: status %d, want %d", s.name, got, s.wantStatus)
		}
		if n := f.status.n.Load(); n != s.wantLookups {
			t.Fatalf("%s: %d store lookups, want %d", s.name, n, s.wantLookups)
		}
	}
}

func TestOCSPRefusesABadResponder(t *testing.T) {
	prod := newIssuer(t, "production", nil)
	other := newIssuer(t, "other", nil)
	cases := []struct {
		name string
		r    *Responder
	}{
		{"signed by another issuer", other.OCSP},
		{"without id-kp-OCSPSigning", &Responder{Cert: prod.Cert, Key: prod.Key}},
		{"a key that is not the certificate's", &Responder{Cert: prod.OCSP.Cert, Key: other.OCSP.Key}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := prod
			is.OCSP = tc.r
			if _, err := NewOCSP(OCSPConfig{}, nil, []Issuer{is}); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestOCSPUnknownSerialsCostNoSignatureAndEvictNothing: a flood of made-up serials
// gets unsigned unauthorized answers, is never cached, and leaves the cached
// answers for real certificates in place, however small the cache.
func TestOCSPUnknownSerialsCostNoSignatureAndEvictNothing(t *testing.T) {
	f := newOCSPFixture(t, OCSPConfig{MaxCached: 2})
	f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
	if _, got, err := f.ask("production", f.prod, "0a", crypto.SHA1); err != nil || got.Status != ocsp.Good {
		t.Fatalf("the real certificate: %v, %v", got, err)
	}
	for i := range 1000 {
		r, err := f.o.Respond(context.Background(), "production", request(t, f.prod, fmt.Sprintf("%04x", 0x1000+i), crypto.SHA1))
		if err != nil || !bytes.Equal(r.DER, ocsp.UnauthorizedErrorResponse) {
			t.Fatalf("made-up serial %d: %x, %v; want the unsigned unauthorized response", i, r.DER, err)
		}
	}
	lookups := f.status.n.Load()
	if _, got, err := f.ask("production", f.prod, "0a", crypto.SHA1); err != nil || got.Status != ocsp.Good {
		t.Fatalf("the real certificate after the flood: %v, %v", got, err)
	}
	if n := f.status.n.Load(); n != lookups {
		t.Errorf("the real certificate's answer was pushed out of the cache by made-up serials (%d lookups more)", n-lookups)
	}
	if n := len(f.o.issuers["production"].cache); n > 2 {
		t.Errorf("%d answers cached, over the bound of 2", n)
	}
}
