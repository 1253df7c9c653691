package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/acme"
)

// TestIPIdentifiers orders IP identifiers (RFC 8738) beside a DNS name through
// golang.org/x/crypto/acme: http-01 to the address, tls-alpn-01 with the reverse DNS
// name as SNI, no dns-01; the certificate carries iPAddress SANs and the DNS name as
// CN. Addresses only, addresses outside the organisation's networks and non-public
// addresses outside --validation-allow are refused.
func TestIPIdentifiers(t *testing.T) {
	alpnPort := freePort(t)
	in := startWith(t, "", "--tlsalpn01-port", fmt.Sprint(alpnPort))
	const oid = "1.2.246.10.12121212.10.0"
	if out, err := in.cli("org", "add", "--oid", oid, "--name", "Osoite Oy", "--long-name", "Osoitteen apteekki",
		"--domain", "osoite.example", "--network", "127.0.0.0/8", "--network", "10.0.0.0/8"); err != nil {
		t.Fatalf("org add: %v: %s", err, out)
	}
	c := in.client(in.eab(oid))
	r := in.responder()

	// The tls-alpn-01 responder answers on 127.0.0.2 only, for the SNI its
	// certificates were set for.
	var alpnMu sync.Mutex
	alpn := map[string]*tls.Certificate{}
	var alpnSNI []string
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", alpnPort), &tls.Config{
		NextProtos: []string{acme.ALPNProto},
		GetCertificate: func(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			alpnMu.Lock()
			defer alpnMu.Unlock()
			alpnSNI = append(alpnSNI, chi.ServerName)
			if cert, ok := alpn[chi.ServerName]; ok {
				return cert, nil
			}
			return nil, errors.New("no tls-alpn-01 certificate for this SNI")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); conn.(*tls.Conn).Handshake() }()
		}
	}()

	ctx := ctxT(t)
	const name = "www.osoite.example"
	in.pointAt(name)
	ids := append(acme.DomainIDs(name), acme.IPIDs("127.0.0.1", "127.0.0.2")...)

	t.Run("a name and two addresses are certified, the addresses proven by http-01 and tls-alpn-01", func(t *testing.T) {
		order, err := c.AuthorizeOrder(ctx, ids)
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		var got []acme.AuthzID
		for _, id := range order.Identifiers {
			got = append(got, id)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("order identifiers %+v, want %+v", got, ids)
		}
		for _, u := range order.AuthzURLs {
			az, err := c.GetAuthorization(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			byType := map[string]*acme.Challenge{}
			for _, ch := range az.Challenges {
				types = append(types, ch.Type)
				byType[ch.Type] = ch
			}
			var chal *acme.Challenge
			switch az.Identifier {
			case acme.AuthzID{Type: "dns", Value: name}, acme.AuthzID{Type: "ip", Value: "127.0.0.1"}:
				chal = byType["http-01"]
				ka, err := c.HTTP01ChallengeResponse(chal.Token)
				if err != nil {
					t.Fatal(err)
				}
				r.Set(chal.Token, ka)
			case acme.AuthzID{Type: "ip", Value: "127.0.0.2"}:
				chal = byType["tls-alpn-01"]
				cert, err := c.TLSALPN01ChallengeCert(chal.Token, "127.0.0.2")
				if err != nil {
					t.Fatal(err)
				}
				alpnMu.Lock()
				alpn["2.0.0.127.in-addr.arpa"] = &cert
				alpnMu.Unlock()
			default:
				t.Fatalf("authorization for %+v, which the order does not name", az.Identifier)
			}
			if az.Identifier.Type == "ip" && !slices.Equal(types, []string{"http-01", "tls-alpn-01"}) {
				t.Errorf("authorization for %s offers %v, want http-01 and tls-alpn-01 (no dns-01)", az.Identifier.Value, types)
			}
			if _, err := c.Accept(ctx, chal); err != nil {
				t.Fatalf("accept %s for %s: %v", chal.Type, az.Identifier.Value, err)
			}
			if _, err := c.WaitAuthorization(ctx, u); err != nil {
				t.Fatalf("authorization of %s: %v", az.Identifier.Value, err)
			}
			if az.Identifier.Value == "127.0.0.1" {
				host := r.Host(chal.Token)
				if host != fmt.Sprintf("127.0.0.1:%d", in.HTTP01Port) {
					t.Errorf("http-01 for 127.0.0.1 asked with Host %q, want the address", host)
				}
			}
		}
		alpnMu.Lock()
		sni := slices.Clone(alpnSNI)
		alpnMu.Unlock()
		if !slices.Equal(sni, []string{"2.0.0.127.in-addr.arpa"}) {
			t.Errorf("tls-alpn-01 ClientHellos had SNI %q, want the reverse DNS name 2.0.0.127.in-addr.arpa", sni)
		}
		if _, err := c.WaitOrder(ctx, order.URI); err != nil {
			t.Fatalf("order not ready: %v", err)
		}
		key := newKey(t)
		short, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.CreateOrderCert(ctx, order.FinalizeURL, short, true); !isProblem(err, "badCSR") || !strings.Contains(err.Error(), "127.0.0.2") {
			t.Fatalf("finalize with a CSR lacking 127.0.0.2: %v, want badCSR naming it", err)
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "127.0.0.1"},
			DNSNames: []string{name}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 1)}}, key)
		if err != nil {
			t.Fatal(err)
		}
		chain, _, err := c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
		if err != nil {
			t.Fatalf("finalize: %v", err)
		}
		leaf, issuer := mustParse(t, chain[0]), mustParse(t, chain[1])
		var ips []string
		for _, ip := range leaf.IPAddresses {
			ips = append(ips, ip.String())
		}
		if leaf.Subject.CommonName != name || !slices.Equal(leaf.DNSNames, []string{name}) || !slices.Equal(ips, []string{"127.0.0.1", "127.0.0.2"}) {
			t.Errorf("certificate CN %q, DNS names %v, IP addresses %v; want CN and DNS name %s and the addresses in order", leaf.Subject.CommonName, leaf.DNSNames, ips, name)
		}
		inter := x509.NewCertPool()
		inter.AddCert(issuer)
		for _, host := range []string{"127.0.0.2", name} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: in.rootPool(), Intermediates: inter, DNSName: host}); err != nil {
				t.Errorf("the certificate does not verify for %s: %v", host, err)
			}
		}
	})

	t.Run("addresses alone are refused: a DNS name is required", func(t *testing.T) {
		_, err := c.AuthorizeOrder(ctx, acme.IPIDs("127.0.0.1"))
		if !isProblem(err, "rejectedIdentifier") || !strings.Contains(err.Error(), "a DNS name is required") {
			t.Fatalf("newOrder of an address alone: %v, want rejectedIdentifier saying a DNS name is required", err)
		}
	})
	t.Run("an address outside the organisation's networks is refused", func(t *testing.T) {
		_, err := c.AuthorizeOrder(ctx, append(acme.DomainIDs(name), acme.IPIDs("192.0.2.7")...))
		var ae *acme.Error
		if !isProblem(err, "rejectedIdentifier") || !errors.As(err, &ae) || len(ae.Subproblems) != 1 ||
			ae.Subproblems[0].Identifier == nil || ae.Subproblems[0].Identifier.Value != "192.0.2.7" ||
			!strings.Contains(ae.Subproblems[0].Detail, "127.0.0.0/8, 10.0.0.0/8") {
			t.Fatalf("newOrder with 192.0.2.7: %v, want rejectedIdentifier with one subproblem for it naming the approved networks", err)
		}
	})
	t.Run("a non-public address outside --validation-allow is never connected to", func(t *testing.T) {
		order, err := c.AuthorizeOrder(ctx, append(acme.DomainIDs(name), acme.IPIDs("10.0.0.1")...))
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		for _, u := range order.AuthzURLs {
			az, err := c.GetAuthorization(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if az.Identifier.Type != "ip" {
				continue // reused: proven above
			}
			for _, ch := range az.Challenges {
				if ch.Type != "http-01" {
					continue
				}
				if _, err := c.Accept(ctx, ch); err != nil {
					t.Fatal(err)
				}
				_, err := c.WaitAuthorization(ctx, u)
				if problemOf(err, "connection") == nil || !strings.Contains(err.Error(), "10.0.0.1 is a non-public address") {
					t.Fatalf("authorization of 10.0.0.1: %v, want a connection problem saying validation does not connect there", err)
				}
			}
		}
	})
}
