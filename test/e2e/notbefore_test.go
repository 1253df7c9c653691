package e2e

import (
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// TestOrderNotBeforeNotAfter asks for a certificate that starts later, through
// golang.org/x/crypto/acme's WithOrderNotBefore and WithOrderNotAfter: the order
// echoes the times and the certificate carries them; a start beyond the profile's
// max_start_delay (30 days for sote-server), a start in the past and a period beyond
// the maximum validity are refused with malformed and a detail saying what fits.
func TestOrderNotBeforeNotAfter(t *testing.T) {
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.13131313.10.0", "Myöhemmin Oy", "myohemmin.example")
	c := in.client(kid, mac)
	r := in.responder()
	ctx := ctxT(t)
	const name = "www.myohemmin.example"
	in.pointAt(name)
	now := time.Now().UTC().Truncate(time.Second)

	t.Run("a later start and an earlier end are honoured", func(t *testing.T) {
		nb := now.Add(48 * time.Hour)
		na := nb.Add(90 * 24 * time.Hour)
		order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name), acme.WithOrderNotBefore(nb), acme.WithOrderNotAfter(na))
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		if !order.NotBefore.Equal(nb) || !order.NotAfter.Equal(na) {
			t.Errorf("order notBefore %v notAfter %v, want %v and %v", order.NotBefore, order.NotAfter, nb, na)
		}
		for _, u := range order.AuthzURLs {
			az, err := c.GetAuthorization(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range az.Challenges {
				if ch.Type != "http-01" {
					continue
				}
				ka, _ := c.HTTP01ChallengeResponse(ch.Token)
				r.Set(ch.Token, ka)
				if _, err := c.Accept(ctx, ch); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.WaitAuthorization(ctx, u); err != nil {
				t.Fatalf("authorization: %v", err)
			}
		}
		if _, err := c.WaitOrder(ctx, order.URI); err != nil {
			t.Fatal(err)
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, newKey(t))
		if err != nil {
			t.Fatal(err)
		}
		chain, _, err := c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
		if err != nil {
			t.Fatalf("finalize: %v", err)
		}
		leaf := mustParse(t, chain[0])
		if !leaf.NotBefore.Equal(nb) || !leaf.NotAfter.Equal(na) {
			t.Errorf("certificate valid %v to %v, want %v to %v", leaf.NotBefore, leaf.NotAfter, nb, na)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: in.rootPool(), Intermediates: pool(mustParse(t, chain[1])), CurrentTime: nb.Add(time.Hour), DNSName: name}); err != nil {
			t.Errorf("the certificate does not verify once it has started: %v", err)
		}
	})

	for _, tt := range []struct {
		name   string
		opts   []acme.OrderOption
		detail string
	}{
		{"a start beyond the 30-day start delay is refused", []acme.OrderOption{acme.WithOrderNotBefore(now.Add(31 * 24 * time.Hour))}, "more than 30 days ahead"},
		{"a start in the past is refused", []acme.OrderOption{acme.WithOrderNotBefore(now.Add(-time.Hour))}, "in the past"},
		{"a later start with a full year is refused", []acme.OrderOption{acme.WithOrderNotBefore(now.Add(24 * time.Hour)), acme.WithOrderNotAfter(now.Add(366 * 24 * time.Hour))}, "gives a validity over the maximum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name), tt.opts...)
			if !isProblem(err, "malformed") || !strings.Contains(err.Error(), tt.detail) {
				t.Fatalf("newOrder: %v, want malformed saying %q", err, tt.detail)
			}
		})
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
