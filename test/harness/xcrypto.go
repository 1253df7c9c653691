package harness

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"

	"golang.org/x/crypto/acme"
)

// Present publishes what the server fetches to validate challenge ch for name.
type Present func(ch *acme.Challenge, name string) error

// HTTP01 answers http-01 challenges through r.
func HTTP01(c *acme.Client, r *Responder) Present {
	return func(ch *acme.Challenge, _ string) error {
		ka, err := c.HTTP01ChallengeResponse(ch.Token)
		if err == nil {
			r.Set(ch.Token, ka)
		}
		return err
	}
}

// DNS01 answers dns-01 challenges with a TXT record in the instance's DNS server.
func (in *Instance) DNS01(c *acme.Client) Present {
	return func(ch *acme.Challenge, name string) error {
		rec, err := c.DNS01ChallengeRecord(ch.Token)
		if err == nil {
			in.DNS.SetTXT("_acme-challenge."+name, rec)
		}
		return err
	}
}

// Obtain runs one golang.org/x/crypto/acme order for names to its certificate,
// proving each name with the challenge of challengeType that present publishes, and
// returns the chain (DER, leaf first) and the certificate URL. Every name is pointed
// at loopback first.
func (in *Instance) Obtain(c *acme.Client, challengeType string, present Present, certKey crypto.Signer, names ...string) ([][]byte, string) {
	t := in.T
	t.Helper()
	ctx := Ctx(t)
	for _, n := range names {
		in.PointAt(n)
	}
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(names...))
	if err != nil {
		t.Fatalf("newOrder: %v", err)
	}
	for _, u := range order.AuthzURLs {
		az, err := c.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var chal *acme.Challenge
		for _, ch := range az.Challenges {
			if ch.Type == challengeType {
				chal = ch
			}
		}
		if chal == nil {
			t.Fatalf("authorization for %s offers no %s", az.Identifier.Value, challengeType)
		}
		if err := present(chal, az.Identifier.Value); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Accept(ctx, chal); err != nil {
			t.Fatalf("accept challenge: %v", err)
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			t.Fatalf("authorization of %s: %v", az.Identifier.Value, err)
		}
	}
	if _, err := c.WaitOrder(ctx, order.URI); err != nil {
		t.Fatalf("order not ready: %v", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: names[0], Organization: []string{"asked for, never copied"}},
		DNSNames: names,
	}, certKey)
	if err != nil {
		t.Fatal(err)
	}
	der, certURL, err := c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		t.Fatalf("finalize: %v", err)
	}
	return der, certURL
}
