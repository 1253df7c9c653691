package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/acme"
)

// via is the account of c talking to one replica only, as a client behind a load
// balancer whose next request lands elsewhere.
func (rs *replicaSet) via(c *acme.Client, r *replica) *acme.Client {
	return &acme.Client{Key: c.Key, KID: c.KID, DirectoryURL: c.DirectoryURL, UserAgent: c.UserAgent,
		HTTPClient: &http.Client{Transport: newRoundRobin(rs.lb, []string{r.addr}, rs.roots()), Timeout: 30 * time.Second}}
}

// testAuthzReuseAcrossReplicas proves a name on one replica and orders it again on
// each of the others: the same account gets the same valid authorization back, with
// no new validation, wherever its request lands; another account of the same
// organisation does not.
func testAuthzReuseAcrossReplicas(t *testing.T, rs *replicaSet, keyA, keyB [2]string) {
	const name = "reuse.replicas.example"
	a := rs.client(keyA)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := rs.via(a, rs.replicas[0])
	chain, at, _, err := rs.issue(ctx, first, name, nil)
	if err != nil {
		t.Fatalf("issuing through replica 0: %v", err)
	}
	if len(chain) == 0 || len(at.order.AuthzURLs) != 1 {
		t.Fatalf("first order: chain of %d, %d authorizations", len(chain), len(at.order.AuthzURLs))
	}
	proven := at.order.AuthzURLs[0]
	validations := rs.count(t, "SELECT COUNT(*) FROM challenges WHERE status = 'valid'")

	for i, r := range rs.replicas[1:] {
		o, err := rs.via(a, r).AuthorizeOrder(ctx, acme.DomainIDs(name))
		if err != nil {
			t.Fatalf("newOrder through replica %d: %v", i+1, err)
		}
		if o.Status != acme.StatusReady || !slices.Equal(o.AuthzURLs, []string{proven}) {
			t.Errorf("order through replica %d: status %s, authorizations %v; want ready with the authorization proven through replica 0 (%s)",
				i+1, o.Status, o.AuthzURLs, proven)
		}
		// The reused order finishes on yet another replica, with a new key (a key
		// is certified once).
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if _, err := finalizeOrder(ctx, rs.via(a, rs.replicas[(i+2)%len(rs.replicas)]), o, key, name); err != nil {
			t.Errorf("finalizing the reused order: %v", err)
		}
	}
	if n := rs.count(t, "SELECT COUNT(*) FROM challenges WHERE status = 'valid'"); n != validations {
		t.Errorf("%d challenges validated after the reuse, want the %d before: a reused name is not validated again", n, validations)
	}

	b := rs.via(rs.client(keyB), rs.replicas[1])
	o, err := b.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != acme.StatusPending || slices.Contains(o.AuthzURLs, proven) {
		t.Errorf("another account's order: status %s, authorizations %v; want pending with its own authorization", o.Status, o.AuthzURLs)
	}
}

// testNonceAcrossReplicas takes a nonce from one replica, spends it on a second and
// replays the same request on every replica: the nonce is accepted once anywhere and
// refused (badNonce) everywhere after.
func testNonceAcrossReplicas(t *testing.T, rs *replicaSet) {
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rs.roots()}}}
	resp, err := hc.Head("https://" + rs.replicas[0].addr + "/acme/new-nonce")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	nonce := resp.Header.Get("Replay-Nonce")
	if nonce == "" {
		t.Fatalf("replica 0 gave no nonce (%d)", resp.StatusCode)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	url := "https://" + rs.lb + "/acme/new-account"
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, &jose.SignerOptions{
		EmbedJWK: true, ExtraHeaders: map[jose.HeaderKey]any{"nonce": nonce, "url": url}})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(`{"onlyReturnExisting":true}`))
	if err != nil {
		t.Fatal(err)
	}
	body := jws.FullSerialize()
	send := func(r *replica) string {
		t.Helper()
		resp, err := hc.Post("https://"+r.addr+"/acme/new-account", "application/jose+json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p struct{ Type string }
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatalf("answer %d is not a problem document: %v", resp.StatusCode, err)
		}
		return strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:")
	}
	// The key has no account: a request whose nonce is accepted is answered accountDoesNotExist.
	if got := send(rs.replicas[1]); got != "accountDoesNotExist" {
		t.Fatalf("replica 1 answered the nonce of replica 0 with %q, want it accepted (accountDoesNotExist)", got)
	}
	for i, r := range rs.replicas {
		if got := send(r); got != "badNonce" {
			t.Errorf("the spent nonce replayed on replica %d: %q, want badNonce", i, got)
		}
	}
}
