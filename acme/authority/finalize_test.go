package authority

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/keys"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/policy/validity"
	"github.com/varmenne/varmenne/store"
)

func TestParseCSR(t *testing.T) {
	key := newKey(t)
	// A DER whose length is not a multiple of 3 has padding in standard base64.
	var der []byte
	for range 50 {
		der = makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}})
		if len(der)%3 != 0 {
			break
		}
	}
	if len(der)%3 == 0 {
		t.Fatal("could not make a CSR that needs padding")
	}
	good := base64.RawURLEncoding.EncodeToString(der)
	tampered := slices.Clone(der)
	tampered[len(tampered)-3] ^= 0xff // inside the signature

	tests := []struct {
		name string
		csr  string
		want acme.ErrorKind
	}{
		{"unpadded base64url DER is accepted", good, ""},
		{"padded base64url is malformed", base64.URLEncoding.EncodeToString(der), acme.Malformed},
		{"the standard base64 alphabet is malformed", base64.StdEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}), acme.Malformed},
		{"characters outside base64url are malformed", good[:10] + "!" + good[11:], acme.Malformed},
		{"a line break is malformed", good[:10] + "\n" + good[10:], acme.Malformed},
		{"an empty csr is malformed", "", acme.Malformed},
		{"garbage DER is badCSR", base64.RawURLEncoding.EncodeToString([]byte("this is not a certificate request")), acme.BadCSR},
		{"a truncated CSR is badCSR", base64.RawURLEncoding.EncodeToString(der[:len(der)/2]), acme.BadCSR},
		{"a CSR whose signature does not verify is badCSR", base64.RawURLEncoding.EncodeToString(tampered), acme.BadCSR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := parseCSR(tt.csr)
			wantKind(t, err, tt.want)
			if tt.want == "" && !slices.Equal(csr.DNSNames, []string{"www.example.fi"}) {
				t.Errorf("parsed names %q", csr.DNSNames)
			}
		})
	}
}

func TestFinalizeConcurrentRequestsIssueOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	o := f.readyOrder(acct, "www.example.fi")

	const n = 8
	csrs := make([][]byte, n)
	hashes := make([]string, n)
	for i := range n {
		key := newKey(t) // a key each, so that only the order's state can stop them
		csrs[i] = makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}})
		hashes[i] = keyHash(t, key.Public())
	}
	errs := make([]error, n)
	orders := make([]*store.Order, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			orders[i], errs[i] = f.finalize(acct, o.ID, csrs[i])
		})
	}
	close(start)
	wg.Wait()

	var winners int
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			if orders[i].Status != string(acme.StatusValid) {
				t.Errorf("finalize %d succeeded with order status %q", i, orders[i].Status)
			}
		case acme.IsKind(err, acme.OrderNotReady):
		default:
			t.Errorf("finalize %d: %v; want success or orderNotReady", i, err)
		}
	}
	if winners != 1 {
		t.Errorf("%d finalize requests succeeded, want 1", winners)
	}
	if got := f.rec.n.Load(); got != 1 {
		t.Errorf("%d issuance intents recorded, want 1", got)
	}
	certified := 0
	for _, h := range hashes {
		if ok, err := f.st.KeyCertified(f.ctx, h); err != nil {
			t.Fatal(err)
		} else if ok {
			certified++
		}
	}
	if certified != 1 {
		t.Errorf("%d of the keys were certified, want 1", certified)
	}
	final, err := f.a.Order(f.ctx, acct, o.ID)
	if err != nil || final.Status != string(acme.StatusValid) || final.CertSerial == "" {
		t.Errorf("order %+v, %v; want valid with a certificate", final, err)
	}
}

func TestFinalizeRefusesKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	_, _, certifiedKey := f.issue(acct, "old.example.fi")
	blockedKey := newKey(t)
	if err := f.st.BlockKey(f.ctx, store.BlockedKey{KeyHash: keyHash(t, blockedKey.Public()), Reason: "keyCompromise", Source: "test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		key  *ecdsa.PrivateKey
	}{
		{"a key already certified is badCSR", certifiedKey},
		{"a blocked key is badCSR", blockedKey},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := []string{"a.example.fi", "b.example.fi"}[i]
			o := f.readyOrder(acct, name)
			before := f.rec.n.Load()
			_, err := f.finalize(acct, o.ID, makeCSR(t, tt.key, &x509.CertificateRequest{DNSNames: []string{name}}))
			wantKind(t, err, acme.BadCSR)
			if f.rec.n.Load() != before {
				t.Error("an issuance intent was recorded for a refused key")
			}
			// A refused CSR does not use up the order: a good key still finalizes it.
			if cur, _ := f.a.Order(f.ctx, acct, o.ID); cur.Status != string(acme.StatusReady) {
				t.Errorf("order %q after the refusal, want still ready", cur.Status)
			}
			if _, err := f.finalize(acct, o.ID, makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{name}})); err != nil {
				t.Errorf("finalize with a fresh key after the refusal: %v", err)
			}
		})
	}
}

func TestFinalizeSubjectComesFromTheOrganisation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	names := []string{"www.example.fi", "api.example.fi"}
	o := f.readyOrder(acct, names...)
	key := newKey(t)
	csr := makeCSR(t, key, &x509.CertificateRequest{
		Subject: pkix.Name{
			CommonName:         "api.example.fi", // the second name, not the first
			Country:            []string{"SE"},
			Organization:       []string{"Evil Corp"},
			OrganizationalUnit: []string{"Phishing"},
			Locality:           []string{"Stockholm"},
			SerialNumber:       "12345",
		},
		DNSNames: []string{"api.example.fi", "www.example.fi"},
	})
	o, err := f.finalize(acct, o.ID, csr)
	if err != nil {
		t.Fatalf("Finalize: %v", err)
	}
	rec, err := f.st.GetCertificate(f.ctx, o.CertSerial)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		t.Fatal(err)
	}
	s := cert.Subject
	checks := []struct {
		name      string
		got, want []string
	}{
		{"C is FI", s.Country, []string{"FI"}},
		{"O is the organisation's name", s.Organization, []string{testOrgName}},
		{"OU is the organisation's long name", s.OrganizationalUnit, []string{testOrgLong}},
		{"CN is the order's first name", []string{s.CommonName}, []string{"www.example.fi"}},
		{"no locality from the CSR", s.Locality, nil},
		{"no serial number from the CSR", []string{s.SerialNumber}, []string{""}},
		{"SANs are the order's names", cert.DNSNames, names},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !slices.Equal(c.got, c.want) {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
	if len(s.Names) != 4 {
		t.Errorf("subject has %d attributes (%s), want C, O, OU and CN", len(s.Names), s)
	}
	if rec.OrgOID != testOrgOID || rec.AccountID != acct.ID || rec.OrderID != o.ID || rec.KeyHash != keyHash(t, key.Public()) {
		t.Errorf("certificate record %+v does not name the organisation, account, order and key", rec)
	}
}

func TestFinalizeRefusesOrdersNotReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	pending := f.order(acct, "a.example.fi")
	_, _, _ = f.issue(acct, "b.example.fi")
	valid, _ := f.a.Orders(f.ctx, acct)
	csr := makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{"a.example.fi"}})

	tests := []struct {
		name string
		id   string
	}{
		{"a pending order is not ready", pending.ID},
		{"a valid order is not finalized again", valid[len(valid)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.finalize(acct, tt.id, csr)
			wantKind(t, err, acme.OrderNotReady)
		})
	}
	if n := f.rec.n.Load(); n != 1 {
		t.Errorf("%d intents recorded, want only the one of b.example.fi", n)
	}
}

// TestFinalizeOutlivesTheRequest: once the order is processing, a client that goes
// away must not leave it invalid and its key held by a dangling issuance intent.
func TestFinalizeOutlivesTheRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	o := f.readyOrder(acct, "www.example.fi")
	key := newKey(t)
	csr := "{\"csr\":\"" + base64.RawURLEncoding.EncodeToString(makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}})) + "\"}"

	ctx, cancel := context.WithCancel(f.ctx)
	f.rec.afterRecord = cancel // the client disconnects between the intent and the signature
	_, _ = f.a.Finalize(ctx, acct, o.ID, []byte(csr))
	f.rec.afterRecord = nil

	cur, err := f.a.Order(f.ctx, acct, o.ID)
	if err != nil || cur.Status != string(acme.StatusValid) || cur.CertSerial == "" {
		t.Fatalf("order %+v, %v after the client went away; want valid with a certificate", cur, err)
	}
	if ok, _ := f.st.KeyCertified(f.ctx, keyHash(t, key.Public())); !ok {
		t.Error("the key is not recorded as certified")
	}
}

func TestFinalizeCSRWithCommonNameOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	o := f.readyOrder(acct, "www.example.fi")
	o, err := f.finalize(acct, o.ID, makeCSR(t, newKey(t), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "WWW.example.fi"}}))
	if err != nil {
		t.Fatalf("Finalize with a CN-only CSR: %v", err)
	}
	rec, err := f.st.GetCertificate(f.ctx, o.CertSerial)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "www.example.fi" || !slices.Equal(cert.DNSNames, []string{"www.example.fi"}) {
		t.Errorf("certificate CN %q SANs %q, want the order's name in both", cert.Subject.CommonName, cert.DNSNames)
	}
}

// allowAll is a profile policy that allows everything: what a configuration without
// any plugin would amount to.
type allowAll struct{}

func (allowAll) CheckOrder(context.Context, *policy.Request) error { return nil }
func (allowAll) CheckCSR(context.Context, *policy.Request) error   { return nil }

// TestFinalizeChecksNoProfileCanDrop: RFC 8555's checks at finalize (the CSR's names
// are the order's) and the key checks every certificate needs (quality, not reported
// compromised) hold for a profile whose chain has neither the names nor the keys
// plugin, and for one whose policy allows everything.
func TestFinalizeChecksNoProfileCanDrop(t *testing.T) {
	t.Parallel()
	validityOnly, err := policy.NewChain([]policy.Spec{{Name: validity.PluginName}}, policy.Env{
		Profile: policy.ProfileInfo{Name: "sote-server", Kind: policy.KindServer, MaxValidity: 365 * 24 * time.Hour, Backdate: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if got := validityOnly.Plugins(); slices.Contains(got, names.PluginName) || slices.Contains(got, keys.PluginName) {
		t.Fatalf("the chain runs %v; the test needs one without names and keys", got)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blocked := newKey(t)

	const name = "www.example.fi"
	csrFor := func(key crypto.Signer, names ...string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return makeCSR(t, key, &x509.CertificateRequest{DNSNames: names}) }
	}
	tests := []struct {
		name   string
		csr    func(t *testing.T) []byte
		detail string
	}{
		{"a CSR for another name", csrFor(newKey(t), "api.example.fi"), "the order does not contain"},
		{"a CSR with a name more than the order", csrFor(newKey(t), name, "api.example.fi"), "the order does not contain"},
		{"a CSR without the order's name", func(t *testing.T) []byte {
			return makeCSR(t, newKey(t), &x509.CertificateRequest{Subject: pkix.Name{CommonName: "api.example.fi"}})
		}, "common name"},
		{"a CSR with the order's name twice", csrFor(newKey(t), name, "WWW.example.fi"), "twice"},
		{"a P-224 key", csrFor(p224, name), "P-224"},
		{"an RSA-1024 key", csrFor(rsa1024, name), "1024 bits is too small"},
		{"an Ed25519 key", csrFor(ed, name), "Ed25519"},
		{"a key reported compromised", csrFor(blocked, name), "reported compromised"},
	}
	for _, pol := range []struct {
		name string
		pol  Policy
	}{
		{"a chain of validity only", validityOnly},
		{"a policy that allows everything", allowAll{}},
	} {
		t.Run(pol.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			a, err := NewWithProfiles(Config{Revoker: testRevoker(f.st), Audit: testAuditor(f.st)}, f.st, f.val, []Profile{{Name: "sote-server", Description: "no names, no keys", CA: f.ca, Policy: pol.pol}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Close)
			f.a = a
			if err := f.st.BlockKey(f.ctx, store.BlockedKey{KeyHash: keyHash(t, blocked.Public()), Reason: "keyCompromise", Source: "test", CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			acct := f.account()
			o := f.readyOrder(acct, name)
			for _, tt := range tests {
				t.Run(tt.name+" is badCSR", func(t *testing.T) {
					_, err := f.finalize(acct, o.ID, tt.csr(t))
					if ae := wantKind(t, err, acme.BadCSR); ae != nil && !strings.Contains(ae.Detail, tt.detail) {
						t.Errorf("detail %q does not say %q", ae.Detail, tt.detail)
					}
					if cur, _ := f.a.Order(f.ctx, acct, o.ID); cur.Status != string(acme.StatusReady) {
						t.Errorf("order %q after the refusal, want still ready", cur.Status)
					}
				})
			}
			if n := f.rec.n.Load(); n != 0 {
				t.Errorf("%d issuance intents recorded for refused CSRs, want 0", n)
			}
			// The profile issues what passes.
			if _, err := f.finalize(acct, o.ID, makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{name}})); err != nil {
				t.Errorf("finalize with a good CSR: %v", err)
			}
		})
	}
}

// TestAccountKeysAreNotCertified: RFC 8555 11.1 — the account's own key, and any
// other account's key, is refused as a certificate key (badCSR), and the order
// stays ready for a CSR with a key of its own.
func TestAccountKeysAreNotCertified(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct, acctKey := f.accountFor(testOrgOID)
	_, otherKey := f.accountFor(testOrgOID)
	o := f.readyOrder(acct, "www.example.fi")
	for name, key := range map[string]*ecdsa.PrivateKey{"its own account key": acctKey, "another account's key": otherKey} {
		_, err := f.finalize(acct, o.ID, makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}}))
		wantKind(t, err, acme.BadCSR)
		if !strings.Contains(err.Error(), "account's key") {
			t.Errorf("%s: %v, want a refusal saying it is an account's key", name, err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.finalize(acct, o.ID, makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}})); err != nil {
		t.Fatalf("a key of its own after the refusals: %v", err)
	}
}

// TestFinalizeSignedButNotStored: a certificate is normally stored in the
// transaction of its certificate.sign.end event; when storing it is refused (here the
// order left processing while the key signed), the signature is still recorded with
// its event, the intent keeps the certificate for the reconciler, nothing is
// stored and the client gets serverInternal.
func TestFinalizeSignedButNotStored(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	o := f.readyOrder(acct, "www.example.fi")
	f.rec.afterRecord = func() { // between sign.begin and the signature
		if err := f.st.FailOrder(f.ctx, o.ID, []byte(`{"type":"urn:ietf:params:acme:error:serverInternal"}`)); err != nil {
			t.Error(err)
		}
	}
	_, err := f.finalize(acct, o.ID, makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}}))
	f.rec.afterRecord = nil
	wantKind(t, err, acme.ServerInternal)
	list, err := f.st.IntentsWithoutCertificate(f.ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("intents without a certificate: %v, %v; want the one signed", list, err)
	}
	if in := list[0]; in.Status != store.IntentPending || in.KeyUse != store.KeySigned || len(in.DER) == 0 {
		t.Errorf("intent %s key %s (%d bytes kept), want pending, signed, with the certificate", in.Status, in.KeyUse, len(in.DER))
	}
	events, err := f.st.AuditEvents(f.ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ends int
	for _, e := range events {
		if e.Action == "certificate.sign.end" {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("%d certificate.sign.end events, want 1", ends)
	}
}
