package server_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

func revokePayload(t *testing.T, der []byte, reason *int) []byte {
	t.Helper()
	return mustJSON(t, acme.RevokeRequest{Certificate: b64(der), Reason: reason})
}

func reason(r int) *int { return &r }

// TestRevoke covers revokeCert (ROBUSTNESS 79-82).
func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.register(t, orgA)
	colleague := e.register(t, orgA)
	stranger := e.register(t, orgB)
	c1 := e.issue(t, owner, "www."+domainA)
	c2 := e.issue(t, owner, "api."+domainA)
	url := e.dir.RevokeCert

	foreignKey := ecKey(t)
	foreign, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: c1.cert.SerialNumber, // the same serial, another issuer
		Subject:      pkix.Name{CommonName: "www." + domainA},
		DNSNames:     []string{"www." + domainA},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}, &x509.Certificate{Subject: pkix.Name{CommonName: "someone else's CA"}}, foreignKey.Public(), foreignKey)
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(0x5eed),
		Subject:      pkix.Name{CommonName: "www." + domainA},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}, &x509.Certificate{Subject: pkix.Name{CommonName: "someone else's CA"}}, foreignKey.Public(), foreignKey)
	if err != nil {
		t.Fatal(err)
	}

	refusals := []struct {
		name    string
		who     *account
		payload []byte
		kind    acme.ErrorKind
		status  int
	}{
		{"reason 6 (certificateHold) → badRevocationReason", owner, revokePayload(t, c1.cert.Raw, reason(6)), acme.BadRevocationReason, 400},
		{"reason 8 (removeFromCRL) → badRevocationReason", owner, revokePayload(t, c1.cert.Raw, reason(8)), acme.BadRevocationReason, 400},
		{"reason 2 (cACompromise) → badRevocationReason", owner, revokePayload(t, c1.cert.Raw, reason(2)), acme.BadRevocationReason, 400},
		{"reason 7 (unassigned) → badRevocationReason", owner, revokePayload(t, c1.cert.Raw, reason(7)), acme.BadRevocationReason, 400},
		{"reason 10 (aACompromise) → badRevocationReason", owner, revokePayload(t, c1.cert.Raw, reason(10)), acme.BadRevocationReason, 400},
		{"reason 11 (unknown) → badRevocationReason", owner, revokePayload(t, c1.cert.Raw, reason(11)), acme.BadRevocationReason, 400},
		{"reason -1 → badRevocationReason", owner, revokePayload(t, c1.cert.Raw, reason(-1)), acme.BadRevocationReason, 400},
		{"reason as a string → malformed", owner, []byte(`{"certificate":"` + b64(c1.cert.Raw) + `","reason":"keyCompromise"}`), acme.Malformed, 400},
		{"no certificate → malformed", owner, []byte(`{"reason":1}`), acme.Malformed, 400},
		{"certificate not base64url → malformed", owner, []byte(`{"certificate":"` + strings.Repeat("+/", 8) + `=="}`), acme.Malformed, 400},
		{"certificate in PEM → malformed", owner, []byte(`{"certificate":"-----BEGIN CERTIFICATE-----"}`), acme.Malformed, 400},
		{"certificate not DER → malformed", owner, revokePayload(t, []byte("not a certificate"), nil), acme.Malformed, 400},
		{"a certificate of another CA with a serial of ours → 404", owner, revokePayload(t, foreign, nil), acme.Malformed, http.StatusNotFound},
		{"a certificate this CA never issued → 404", owner, revokePayload(t, unknown, nil), acme.Malformed, http.StatusNotFound},
		{"revoke by an account of another organisation → unauthorized 403", stranger, revokePayload(t, c1.cert.Raw, nil), acme.Unauthorized, http.StatusForbidden},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.as(t, tc.who, url, tc.payload), tc.kind, tc.status)
		})
	}
	jwkRefusals := []struct {
		name string
		body func(t *testing.T) []byte
	}{
		{"revoke signed with an unrelated jwk → unauthorized 403", func(t *testing.T) []byte {
			return e.sign(t, ecKey(t), "", url, revokePayload(t, c1.cert.Raw, nil))
		}},
		{"revoke signed with another certificate's key → unauthorized 403", func(t *testing.T) []byte {
			return e.sign(t, c2.key, "", url, revokePayload(t, c1.cert.Raw, nil))
		}},
		{"revoke signed with the owner's account key as jwk → unauthorized 403", func(t *testing.T) []byte {
			return e.sign(t, owner.key, "", url, revokePayload(t, c1.cert.Raw, nil))
		}},
	}
	for _, tc := range jwkRefusals {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.postJWS(t, url, tc.body(t)), acme.Unauthorized, http.StatusForbidden)
		})
	}

	t.Run("revoke by a second account of the same organisation → ok", func(t *testing.T) {
		wantStatus(t, e.as(t, colleague, url, revokePayload(t, c1.cert.Raw, reason(4))), http.StatusOK)
	})
	t.Run("revoke twice → alreadyRevoked", func(t *testing.T) {
		wantProblem(t, e.as(t, owner, url, revokePayload(t, c1.cert.Raw, nil)), acme.AlreadyRevoked, http.StatusBadRequest)
		wantProblem(t, e.postJWS(t, url, e.sign(t, c1.key, "", url, revokePayload(t, c1.cert.Raw, nil))), acme.AlreadyRevoked, http.StatusBadRequest)
	})
	t.Run("revoke signed with the certificate's key (jwk) → ok", func(t *testing.T) {
		wantStatus(t, e.postJWS(t, url, e.sign(t, c2.key, "", url, revokePayload(t, c2.cert.Raw, nil))), http.StatusOK)
		wantProblem(t, e.as(t, owner, url, revokePayload(t, c2.cert.Raw, reason(1))), acme.AlreadyRevoked, http.StatusBadRequest)
	})

	t.Run("keyCompromise blocks the key for CSRs and accounts", func(t *testing.T) {
		c3 := e.issue(t, owner, "kc."+domainA)
		wantStatus(t, e.as(t, owner, url, revokePayload(t, c3.cert.Raw, reason(1))), http.StatusOK)

		o := e.readyOrder(t, owner, "new."+domainA)
		p := wantProblem(t, e.as(t, owner, o.obj.Finalize, finalizePayload(t, csrFor(t, c3.key, "new."+domainA))), acme.BadCSR, http.StatusBadRequest)
		if !strings.Contains(p.Detail, "compromised") {
			t.Errorf("a blocked key is refused as %q; want the detail to say it was reported compromised", p.Detail)
		}
		p = wantProblem(t, e.post(t, c3.key, "", e.dir.NewAccount, newAccountPayload(t, e.eab(t, orgA, c3.key))), acme.BadPublicKey, http.StatusBadRequest)
		if !strings.Contains(p.Detail, "compromised") {
			t.Errorf("a blocked account key is refused as %q", p.Detail)
		}
		inner := signProtected(t, c3.key, map[string]any{"alg": "ES256", "jwk": jwkMap(t, c3.key), "url": e.dir.KeyChange},
			mustJSON(t, map[string]any{"account": colleague.kid, "oldKey": jwstest.JWK(colleague.key)}))
		wantProblem(t, e.as(t, colleague, e.dir.KeyChange, inner), acme.BadPublicKey, http.StatusBadRequest)
	})
}
