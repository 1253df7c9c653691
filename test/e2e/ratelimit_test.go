package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// noRetry makes the client answer a 429 at once instead of waiting out Retry-After
// (x/crypto/acme retries 429 by default).
func noRetry(c *acme.Client) {
	c.RetryBackoff = func(int, *http.Request, *http.Response) time.Duration { return 0 }
}

// wantRateLimited checks err is a 429 rateLimited problem naming limit and count,
// with a Retry-After of 1 to window seconds.
func wantRateLimited(t *testing.T, err error, limit, count string, window time.Duration) {
	t.Helper()
	var ae *acme.Error
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want a rateLimited problem", err)
	}
	if ae.StatusCode != http.StatusTooManyRequests || ae.ProblemType != "urn:ietf:params:acme:error:rateLimited" {
		t.Fatalf("got %d %s (%s), want 429 rateLimited", ae.StatusCode, ae.ProblemType, ae.Detail)
	}
	for _, want := range []string{limit, count, "resets at"} {
		if !strings.Contains(ae.Detail, want) {
			t.Errorf("detail %q does not say %q", ae.Detail, want)
		}
	}
	ra, err := strconv.Atoi(ae.Header.Get("Retry-After"))
	if err != nil || ra < 1 || time.Duration(ra)*time.Second > window {
		t.Errorf("Retry-After %q, want whole seconds from 1 to %v", ae.Header.Get("Retry-After"), window)
	}
}

// TestRateLimits: limits set by serve flags refuse with 429 rateLimited and
// Retry-After, through a real client.
func TestRateLimits(t *testing.T) {
	in := startWith(t, "", "--limit-new-orders-per-account", "2", "--limit-new-accounts-per-organisation", "2",
		"--limit-certificates-per-organisation", "1")
	kid, mac := in.org("1.2.246.10.66666666.10.0", "Kiireinen Oy", "kiire.example")
	c := in.client(kid, mac)
	noRetry(c)
	r := in.responder()
	ctx := ctxT(t)

	t.Run("new orders per account", func(t *testing.T) {
		for i := range 2 {
			name := fmt.Sprintf("o%d.kiire.example", i)
			in.pointAt(name)
			if _, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name)); err != nil {
				t.Fatalf("order %d: %v", i+1, err)
			}
		}
		_, err := c.AuthorizeOrder(ctx, acme.DomainIDs("o2.kiire.example"))
		wantRateLimited(t, err, "new-orders-per-account", "2 of at most 2 this hour", time.Hour)
	})
	t.Run("certificates per organisation", func(t *testing.T) {
		kid, mac := in.eab("1.2.246.10.66666666.10.0")
		c := in.client(kid, mac) // a second account of the organisation
		noRetry(c)
		in.obtain(c, r, newKey(t), "c1.kiire.example")
		in.pointAt("c2.kiire.example")
		finalize, err := readyOrder(ctx, c, r, "c2.kiire.example")
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"c2.kiire.example"}}, newKey(t))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.CreateOrderCert(ctx, finalize, csr, true)
		wantRateLimited(t, err, "certificates-per-organisation", "1 of at most 1 this week", 7*24*time.Hour)
	})
	t.Run("new accounts per organisation", func(t *testing.T) {
		// Two accounts exist already; a third EAB key is refused until tomorrow.
		kid, mac := in.eab("1.2.246.10.66666666.10.0")
		macKey, err := base64.RawURLEncoding.DecodeString(mac)
		if err != nil {
			t.Fatal(err)
		}
		c := &acme.Client{Key: newKey(t), DirectoryURL: in.Directory, HTTPClient: in.httpClient()}
		noRetry(c)
		_, err = c.Register(ctx, &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: kid, Key: macKey}}, acme.AcceptTOS)
		wantRateLimited(t, err, "new-accounts-per-organisation", "2 of at most 2 today", 24*time.Hour)
	})
}

// TestRateLimitSharedByReplicas: two replicas on one PostgreSQL database count one
// limit together. Of concurrent new orders of one account, sent to both replicas,
// exactly the limit succeed and the rest get 429 with Retry-After.
func TestRateLimitSharedByReplicas(t *testing.T) {
	const limit, orders = 3, 10
	rs := startReplicas(t, binary, 2, "--limit-new-orders-per-account", strconv.Itoa(limit))
	keys := rs.org("1.2.246.10.77777777.10.0", "jaettu.example", 1)
	c := rs.client(keys[0])
	noRetry(c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := rs.rr.counts()
	var mu sync.Mutex
	var created int
	var refused []error
	var wg sync.WaitGroup
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("r%d.jaettu.example", i)
			rs.dns.SetA(name, "127.0.0.1")
			_, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				created++
			} else {
				refused = append(refused, err)
			}
		}()
	}
	wg.Wait()
	if created != limit || len(refused) != orders-limit {
		t.Errorf("%d orders created and %d refused, want %d and %d", created, len(refused), limit, orders-limit)
	}
	for _, err := range refused {
		wantRateLimited(t, err, "new-orders-per-account", fmt.Sprintf("%d of at most %d this hour", limit, limit), time.Hour)
	}
	after := rs.rr.counts()
	for _, r := range rs.replicas {
		if after[r.addr] == before[r.addr] {
			t.Errorf("replica %s got none of the orders", r.addr)
		}
	}
	if n := rs.count(t, "SELECT COUNT(*) FROM orders"); n != limit {
		t.Errorf("%d orders stored, want %d", n, limit)
	}
}
