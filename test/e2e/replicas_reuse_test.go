package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"slices"
	"testing"
	"time"

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
