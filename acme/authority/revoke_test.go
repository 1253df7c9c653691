package authority

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

func revokeRequest(der []byte, reason *int) acme.RevokeRequest {
	return acme.RevokeRequest{Certificate: base64.RawURLEncoding.EncodeToString(der), Reason: reason}
}

func TestRevokeReasons(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()

	t.Run("refused reasons", func(t *testing.T) {
		rec, _, _ := f.issue(acct, "refused.example.fi")
		for _, reason := range []int{2, 6, 7, 8, 10, -1, 11} {
			t.Run(fmt.Sprintf("reason %d is badRevocationReason", reason), func(t *testing.T) {
				err := f.a.Revoke(f.ctx, RevokeCaller{Account: acct}, revokeRequest(rec.DER, &reason))
				wantKind(t, err, acme.BadRevocationReason)
				if _, err := f.st.GetRevocation(f.ctx, rec.Serial); !isStoreNotFound(err) {
					t.Errorf("a revocation was recorded for a refused reason (lookup: %v)", err)
				}
			})
		}
	})

	for _, reason := range []int{0, 1, 3, 4, 5, 9} {
		t.Run(fmt.Sprintf("reason %d is accepted", reason), func(t *testing.T) {
			rec, cert, _ := f.issue(acct, fmt.Sprintf("r%d.example.fi", reason))
			if err := f.a.Revoke(f.ctx, RevokeCaller{Account: acct}, revokeRequest(rec.DER, &reason)); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			r, err := f.st.GetRevocation(f.ctx, rec.Serial)
			if err != nil {
				t.Fatalf("GetRevocation: %v", err)
			}
			if r.Reason != reason {
				t.Errorf("recorded reason %d, want %d", r.Reason, reason)
			}
			blocked, err := f.st.KeyBlocked(f.ctx, keyHash(t, cert.PublicKey))
			if err != nil {
				t.Fatal(err)
			}
			if want := reason == revocation.KeyCompromise.Code; blocked != want {
				t.Errorf("key blocked %v after reason %d, want %v", blocked, reason, want)
			}
		})
	}

	t.Run("no reason is recorded as unspecified", func(t *testing.T) {
		rec, _, _ := f.issue(acct, "noreason.example.fi")
		if err := f.a.Revoke(f.ctx, RevokeCaller{Account: acct}, revokeRequest(rec.DER, nil)); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if r, err := f.st.GetRevocation(f.ctx, rec.Serial); err != nil || r.Reason != 0 {
			t.Errorf("revocation %+v, %v; want reason 0", r, err)
		}
	})
}

func TestRevokeRights(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.addOrg(otherOrgOID, "Terveyskeskus", "Terveyskeskus Oy", "terveys.example")
	owner := f.account()
	sameOrg := f.account()
	otherOrg, _ := f.accountFor(otherOrgOID)

	tests := []struct {
		name string
		who  func(certKey *ecdsa.PrivateKey) RevokeCaller
		want acme.ErrorKind
	}{
		{"the account that ordered it may revoke", func(*ecdsa.PrivateKey) RevokeCaller { return RevokeCaller{Account: owner} }, ""},
		{"another account of the same organisation may revoke", func(*ecdsa.PrivateKey) RevokeCaller { return RevokeCaller{Account: sameOrg} }, ""},
		{"an account of another organisation is unauthorized", func(*ecdsa.PrivateKey) RevokeCaller { return RevokeCaller{Account: otherOrg} }, acme.Unauthorized},
		{"the holder of the certificate's key may revoke", func(k *ecdsa.PrivateKey) RevokeCaller { return RevokeCaller{Key: jwstest.JWK(k)} }, ""},
		{"the holder of another key is unauthorized", func(*ecdsa.PrivateKey) RevokeCaller { return RevokeCaller{Key: jwstest.JWK(newKey(t))} }, acme.Unauthorized},
		{"nobody is unauthorized", func(*ecdsa.PrivateKey) RevokeCaller { return RevokeCaller{} }, acme.Unauthorized},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _, key := f.issue(owner, fmt.Sprintf("n%d.example.fi", i))
			err := f.a.Revoke(f.ctx, tt.who(key), revokeRequest(rec.DER, nil))
			wantKind(t, err, tt.want)
			_, rerr := f.st.GetRevocation(f.ctx, rec.Serial)
			if revoked := rerr == nil; revoked != (tt.want == "") {
				t.Errorf("certificate revoked: %v (%v)", revoked, rerr)
			}
		})
	}
}

func TestRevokeRecordsAndBlocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	rec, cert, key := f.issue(acct, "www.example.fi")
	reason := revocation.KeyCompromise.Code
	received := time.Now().Add(-3 * time.Second).UTC().Truncate(time.Microsecond)
	if err := f.a.Revoke(f.ctx, RevokeCaller{Account: acct, ReceivedAt: received}, revokeRequest(rec.DER, &reason)); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	t.Run("the record says who asked, how they were identified, who revoked, when it was received and by whom", func(t *testing.T) {
		r, err := f.st.GetRevocation(f.ctx, rec.Serial)
		if err != nil {
			t.Fatal(err)
		}
		if r.RequestedBy == "" || r.IdentifiedBy == "" || r.PerformedBy == "" || r.RevokedAt.IsZero() {
			t.Errorf("revocation record %+v lacks who or when", r)
		}
		if !r.RequestedAt.Equal(received) || r.ReceivedBy != "ACME revokeCert by acme" {
			t.Errorf("revocation record %+v: want requested at %s (when the server received it), received by ACME revokeCert by acme", r, received)
		}
	})
	t.Run("the key is blocked", func(t *testing.T) {
		if blocked, err := f.st.KeyBlocked(f.ctx, keyHash(t, cert.PublicKey)); err != nil || !blocked {
			t.Errorf("KeyBlocked %v, %v; want true", blocked, err)
		}
	})
	t.Run("revoking again is alreadyRevoked", func(t *testing.T) {
		wantKind(t, f.a.Revoke(f.ctx, RevokeCaller{Account: acct}, revokeRequest(rec.DER, nil)), acme.AlreadyRevoked)
	})
	t.Run("a CSR with the compromised key is badCSR", func(t *testing.T) {
		o := f.readyOrder(acct, "api.example.fi")
		_, err := f.finalize(acct, o.ID, makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"api.example.fi"}}))
		wantKind(t, err, acme.BadCSR)
	})
	t.Run("an account with the compromised key is badPublicKey", func(t *testing.T) {
		kid, mac := f.newEAB(testOrgOID, nil, store.EABApproved)
		_, _, err := f.a.NewAccount(f.ctx, newAccountRequest(t, key, kid, mac), jwstest.JWK(key), newAccountURL)
		wantKind(t, err, acme.BadPublicKey)
	})
}

func TestRevokeUnknownCertificates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	rec, _, _ := f.issue(acct, "www.example.fi")

	// A certificate from another CA with the serial of ours.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := new(big.Int).SetString(rec.Serial, 16)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "www.example.fi"}, DNSNames: []string{"www.example.fi"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	foreign, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    acme.RevokeRequest
		status int
	}{
		{"a certificate with our serial from another CA is not found", revokeRequest(foreign, nil), 404},
		{"a certificate that is not base64url is malformed", acme.RevokeRequest{Certificate: base64.StdEncoding.EncodeToString(rec.DER) + "="}, 400},
		{"a missing certificate is malformed", acme.RevokeRequest{}, 400},
		{"a certificate that does not parse is malformed", revokeRequest([]byte("not a certificate"), nil), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := wantKind(t, f.a.Revoke(f.ctx, RevokeCaller{Account: acct}, tt.req), acme.Malformed)
			if ae.HTTPStatus() != tt.status {
				t.Errorf("status %d, want %d", ae.HTTPStatus(), tt.status)
			}
		})
	}
	if _, err := f.st.GetRevocation(f.ctx, rec.Serial); !isStoreNotFound(err) {
		t.Errorf("our certificate was revoked by a foreign one (lookup: %v)", err)
	}
}
