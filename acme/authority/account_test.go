package authority

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/store"
)

func TestCheckContacts(t *testing.T) {
	eleven := make([]string, 11)
	ten := make([]string, 10)
	for i := range eleven {
		eleven[i] = fmt.Sprintf("mailto:admin%d@example.fi", i)
	}
	copy(ten, eleven)

	tests := []struct {
		name     string
		contacts []string
		want     acme.ErrorKind // "" means accepted as given
	}{
		{"no contacts are accepted", nil, ""},
		{"one mailto address is accepted", []string{"mailto:admin@example.fi"}, ""},
		{"a subdomain and plus address is accepted", []string{"mailto:it+acme@posti.example.fi"}, ""},
		{"ten contacts are accepted", ten, ""},
		{"tel: is an unsupported contact", []string{"tel:+358401234567"}, acme.UnsupportedContact},
		{"https: is an unsupported contact", []string{"https://example.fi/contact"}, acme.UnsupportedContact},
		{"a bare address without mailto: is unsupported", []string{"admin@example.fi"}, acme.UnsupportedContact},
		{"an unsupported contact after a good one refuses the list", []string{"mailto:admin@example.fi", "tel:+358401234567"}, acme.UnsupportedContact},
		{"several addresses in one mailto are invalid", []string{"mailto:a@example.fi,b@example.fi"}, acme.InvalidContact},
		{"several addresses separated by ; are invalid", []string{"mailto:a@example.fi;b@example.fi"}, acme.InvalidContact},
		{"hfields are invalid", []string{"mailto:admin@example.fi?subject=certs"}, acme.InvalidContact},
		{"percent-encoding is invalid", []string{"mailto:admin%40example.fi"}, acme.InvalidContact},
		{"an address without a domain is invalid", []string{"mailto:admin"}, acme.InvalidContact},
		{"an address with an empty domain is invalid", []string{"mailto:admin@"}, acme.InvalidContact},
		{"a single-label domain is invalid", []string{"mailto:admin@localhost"}, acme.InvalidContact},
		{"a domain with a trailing dot is invalid", []string{"mailto:admin@example.fi."}, acme.InvalidContact},
		{"a domain with an empty label is invalid", []string{"mailto:admin@example..fi"}, acme.InvalidContact},
		{"a display name is invalid", []string{"mailto:Admin <admin@example.fi>"}, acme.InvalidContact},
		{"an address in angle brackets is invalid", []string{"mailto:<admin@example.fi>"}, acme.InvalidContact},
		{"an empty mailto is invalid", []string{"mailto:"}, acme.InvalidContact},
		{"more than ten contacts are invalid", eleven, acme.InvalidContact},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkContacts(tt.contacts)
			wantKind(t, err, tt.want)
			if tt.want == "" && !slices.Equal(got, tt.contacts) {
				t.Errorf("contacts %q, want %q", got, tt.contacts)
			}
		})
	}
}

func TestCheckContactsSchemeIsCaseInsensitive(t *testing.T) {
	got, err := checkContacts([]string{"MAILTO:admin@example.fi", "Mailto:it@example.fi"})
	if err != nil {
		t.Fatalf("an upper-case mailto scheme is refused: %v", err)
	}
	if want := []string{"mailto:admin@example.fi", "mailto:it@example.fi"}; !slices.Equal(got, want) {
		t.Errorf("contacts stored as %q, want %q", got, want)
	}
}

func TestNewAccountRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	revokedKID, revokedMAC := f.newEAB(testOrgOID, nil, store.EABRevoked)
	boundKID, boundMAC := f.newEAB(testOrgOID, nil, store.EABApproved)
	first := newKey(t)
	if _, _, err := f.a.NewAccount(f.ctx, newAccountRequest(t, first, boundKID, boundMAC), jwstest.JWK(first), newAccountURL); err != nil {
		t.Fatalf("first NewAccount: %v", err)
	}
	goodKID, goodMAC := f.newEAB(testOrgOID, nil, store.EABApproved)

	tests := []struct {
		name string
		req  func(key *jwsKey) acme.NewAccountRequest
		want acme.ErrorKind
	}{
		{"no EAB needs one", func(k *jwsKey) acme.NewAccountRequest {
			return acme.NewAccountRequest{TermsOfServiceAgreed: true}
		}, acme.ExternalAccountRequired},
		{"a null EAB needs one", func(k *jwsKey) acme.NewAccountRequest {
			return acme.NewAccountRequest{ExternalAccountBinding: json.RawMessage("null")}
		}, acme.ExternalAccountRequired},
		{"onlyReturnExisting for an unknown key", func(k *jwsKey) acme.NewAccountRequest {
			r := k.req(t, goodKID, goodMAC)
			r.OnlyReturnExisting = true
			return r
		}, acme.AccountDoesNotExist},
		{"an unknown kid is unauthorized", func(k *jwsKey) acme.NewAccountRequest {
			return k.req(t, "no-such-kid", goodMAC)
		}, acme.Unauthorized},
		{"a MAC with the wrong key is unauthorized", func(k *jwsKey) acme.NewAccountRequest {
			return k.req(t, goodKID, revokedMAC)
		}, acme.Unauthorized},
		{"an EAB key in state revoked is unauthorized", func(k *jwsKey) acme.NewAccountRequest {
			return k.req(t, revokedKID, revokedMAC)
		}, acme.Unauthorized},
		{"an EAB key already bound to another account is unauthorized", func(k *jwsKey) acme.NewAccountRequest {
			return k.req(t, boundKID, boundMAC)
		}, acme.Unauthorized},
		{"a tel: contact is unsupported", func(k *jwsKey) acme.NewAccountRequest {
			r := k.req(t, goodKID, goodMAC)
			r.Contact = []string{"tel:+358401234567"}
			return r
		}, acme.UnsupportedContact},
		{"an EAB bound to another url is malformed", func(k *jwsKey) acme.NewAccountRequest {
			eab, err := jwstest.EAB(k.key, goodKID, goodMAC, "https://acme.test/other", "")
			if err != nil {
				t.Fatal(err)
			}
			return acme.NewAccountRequest{ExternalAccountBinding: eab}
		}, acme.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &jwsKey{key: newKey(t)}
			_, _, err := f.a.NewAccount(f.ctx, tt.req(k), jwstest.JWK(k.key), newAccountURL)
			wantKind(t, err, tt.want)
			tp, _ := jws.Thumbprint(jwstest.JWK(k.key))
			if _, err := f.st.GetAccountByThumbprint(f.ctx, tp); !isStoreNotFound(err) {
				t.Errorf("an account exists for the refused key (lookup: %v)", err)
			}
		})
	}
	// None of the refusals used up the good key.
	if ek, err := f.st.GetEAB(f.ctx, goodKID); err != nil || ek.Status != store.EABApproved {
		t.Errorf("good EAB key after the refusals: %+v, %v; want approved", ek, err)
	}
}

// jwsKey is an account key under test.
type jwsKey struct{ key *ecdsa.PrivateKey }

func (k *jwsKey) req(t *testing.T, kid string, mac []byte) acme.NewAccountRequest {
	return newAccountRequest(t, k.key, kid, mac)
}

func TestNewAccountBelongsToEABOrganisation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.addOrg(otherOrgOID, "Terveyskeskus", "Terveyskeskus Oy", "terveys.example")
	kid, mac := f.newEAB(otherOrgOID, nil, store.EABApproved)
	key := newKey(t)

	acct, created, err := f.a.NewAccount(f.ctx, newAccountRequest(t, key, kid, mac), jwstest.JWK(key), newAccountURL)
	if err != nil || !created {
		t.Fatalf("NewAccount: created %v, %v", created, err)
	}
	if acct.OrgOID != otherOrgOID || acct.EABKID != kid || acct.Status != string(acme.StatusValid) {
		t.Errorf("account org %q eab %q status %q, want %q %q valid", acct.OrgOID, acct.EABKID, acct.Status, otherOrgOID, kid)
	}
	stored, err := f.st.GetAccount(f.ctx, acct.ID)
	if err != nil || stored.OrgOID != otherOrgOID {
		t.Fatalf("stored account %+v, %v; want org %s", stored, err, otherOrgOID)
	}
	ek, err := f.st.GetEAB(f.ctx, kid)
	if err != nil || ek.Status != store.EABBound || ek.AccountID != acct.ID {
		t.Errorf("EAB after binding: %+v, %v; want bound to %s", ek, err, acct.ID)
	}

	// The same key again returns the same account, without a new EAB.
	again, created, err := f.a.NewAccount(f.ctx, acme.NewAccountRequest{OnlyReturnExisting: true}, jwstest.JWK(key), newAccountURL)
	if err != nil || created || again.ID != acct.ID {
		t.Errorf("NewAccount with the same key: %v created %v, %v; want account %s, not created", again, created, err, acct.ID)
	}
}

func TestNewAccountEABBindsOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	kid, mac := f.newEAB(testOrgOID, nil, store.EABApproved)
	const n = 8
	type result struct {
		acct    *store.Account
		created bool
		err     error
	}
	results := make([]result, n)
	reqs := make([]acme.NewAccountRequest, n)
	keys := make([]*jwsKey, n)
	for i := range n {
		keys[i] = &jwsKey{key: newKey(t)}
		reqs[i] = keys[i].req(t, kid, mac)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a, c, err := f.a.NewAccount(f.ctx, reqs[i], jwstest.JWK(keys[i].key), newAccountURL)
			results[i] = result{a, c, err}
		})
	}
	close(start)
	wg.Wait()

	var winner *store.Account
	for i, r := range results {
		switch {
		case r.err == nil && r.created:
			if winner != nil {
				t.Errorf("two accounts created with one EAB key: %s and %s", winner.ID, r.acct.ID)
			}
			winner = r.acct
		case acme.IsKind(r.err, acme.Unauthorized):
		default:
			t.Errorf("request %d: created %v, %v; want created or unauthorized", i, r.created, r.err)
		}
	}
	if winner == nil {
		t.Fatal("no account was created")
	}
	found := 0
	for _, k := range keys {
		tp, _ := jws.Thumbprint(jwstest.JWK(k.key))
		if _, err := f.st.GetAccountByThumbprint(f.ctx, tp); err == nil {
			found++
		}
	}
	if found != 1 {
		t.Errorf("%d accounts stored for the 8 keys, want 1", found)
	}
	if ek, err := f.st.GetEAB(f.ctx, kid); err != nil || ek.AccountID != winner.ID || ek.Status != store.EABBound {
		t.Errorf("EAB key %+v, %v; want bound to the one account %s", ek, err, winner.ID)
	}
}

// TestAccountKeyFollowsTheJWK: a parsed key is reused only for the same JWK bytes, so
// an account whose key changed is verified with its new key from the next request.
func TestAccountKeyFollowsTheJWK(t *testing.T) {
	jwkOf := func(k *ecdsa.PrivateKey) []byte {
		b, err := json.Marshal(jwstest.JWK(k))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oldKey, newKey := newTestKey(t), newTestKey(t)
	acct := &store.Account{ID: "acct-1", JWK: jwkOf(oldKey)}
	first, err := AccountKey(acct)
	if err != nil {
		t.Fatal(err)
	}
	again, err := AccountKey(&store.Account{ID: "acct-1", JWK: jwkOf(oldKey)})
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Error("the same JWK was parsed again instead of reused")
	}
	acct.JWK = jwkOf(newKey) // the key changed
	changed, err := AccountKey(acct)
	if err != nil {
		t.Fatal(err)
	}
	if !newKey.PublicKey.Equal(changed.Key) || oldKey.PublicKey.Equal(changed.Key) {
		t.Errorf("after the key change AccountKey answered %v, not the new key", changed.Key)
	}
	if _, err := AccountKey(&store.Account{ID: "acct-2", JWK: []byte(`{"kty":"EC"}`)}); err == nil {
		t.Error("a JWK that is no key was accepted")
	}

	small := keyCache{max: 2}
	k1, k2, k3 := []byte("1"), []byte("2"), []byte("3")
	small.put(k1, first)
	small.put(k2, changed)
	small.put(k3, first) // full: starts again with this one only
	if small.get(k1) != nil || small.get(k2) != nil || small.get(k3) != first || len(small.keys) != 1 {
		t.Errorf("a full cache kept %d keys", len(small.keys))
	}
}

func newTestKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
