package validate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/acme"
)

// alpnCert is what a tls-alpn-01 responder presents: a self-signed certificate with
// the given SANs and extensions.
type alpnCert struct {
	dnsNames []string
	ips      []net.IP
	exts     []pkix.Extension
}

// acmeExt is an acmeIdentifier extension holding the digest of ka.
func acmeExt(oid asn1.ObjectIdentifier, critical bool, ka string) pkix.Extension {
	sum := sha256.Sum256([]byte(ka))
	v, _ := asn1.Marshal(sum[:])
	return pkix.Extension{Id: oid, Critical: critical, Value: v}
}

func (c alpnCert) build(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(1),
		Subject:         pkix.Name{CommonName: "tls-alpn-01 responder"},
		DNSNames:        c.dnsNames,
		IPAddresses:     c.ips,
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(time.Hour),
		ExtraExtensions: c.exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// hello is what the validator's ClientHello offered.
type hello struct {
	serverName string
	protos     []string
}

// alpnResponder serves TLS handshakes with cfg (its certificate from cert) on a
// loopback port and records each ClientHello; it never sends application data.
func alpnResponder(t *testing.T, cfg *tls.Config) (*countingListener, func() []hello) {
	t.Helper()
	l := listen(t, "127.0.0.1:0")
	var mu sync.Mutex
	var hellos []hello
	cfg = cfg.Clone()
	cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		hellos = append(hellos, hello{chi.ServerName, append([]string(nil), chi.SupportedProtos...)})
		mu.Unlock()
		return nil, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					// Wait for the client to hang up, as a real responder would.
					buf := make([]byte, 1)
					tc.Read(buf)
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l, func() []hello {
		mu.Lock()
		defer mu.Unlock()
		return append([]hello(nil), hellos...)
	}
}

func TestTLSALPN01(t *testing.T) {
	const name = "www.example.fi"
	good := acmeExt(OIDACMEIdentifier, true, keyAuth)
	// with returns a responder configuration presenting c with ALPN acme-tls/1.
	with := func(c alpnCert) func(t *testing.T) *tls.Config {
		return func(t *testing.T) *tls.Config {
			return &tls.Config{Certificates: []tls.Certificate{c.build(t)}, NextProtos: []string{ALPNProto}}
		}
	}
	rawExt := func(value []byte) pkix.Extension {
		return pkix.Extension{Id: OIDACMEIdentifier, Critical: true, Value: value}
	}
	short, _ := asn1.Marshal(make([]byte, 31))
	digest := sha256.Sum256([]byte(keyAuth))

	tests := []struct {
		name    string
		cfg     func(t *testing.T) *tls.Config
		kind    acme.ErrorKind
		details []string
	}{
		{"a correct certificate succeeds", with(alpnCert{dnsNames: []string{name}, exts: []pkix.Extension{good}}), "", nil},
		{"the SAN is compared without regard to case", with(alpnCert{dnsNames: []string{"WWW.Example.FI"}, exts: []pkix.Extension{good}}), "", nil},
		{"TLS 1.3 only succeeds", func(t *testing.T) *tls.Config {
			c := with(alpnCert{dnsNames: []string{name}, exts: []pkix.Extension{good}})(t)
			c.MinVersion = tls.VersionTLS13
			return c
		}, "", nil},
		{"TLS 1.2 only succeeds", func(t *testing.T) *tls.Config {
			c := with(alpnCert{dnsNames: []string{name}, exts: []pkix.Extension{good}})(t)
			c.MaxVersion = tls.VersionTLS12
			return c
		}, "", nil},
		{"TLS 1.1 is refused", func(t *testing.T) *tls.Config {
			c := with(alpnCert{dnsNames: []string{name}, exts: []pkix.Extension{good}})(t)
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			return c
		}, acme.TLS, []string{`alert "protocol version not supported"`, "TLS 1.2 or newer"}},
		{"the legacy draft OID is refused", with(alpnCert{dnsNames: []string{name},
			exts: []pkix.Extension{acmeExt(oidACMEIdentifierDraft, true, keyAuth)}}), acme.Unauthorized, []string{"obsolete", "1.3.6.1.5.5.7.1.30.1"}},
		{"the legacy OID beside the right one is refused", with(alpnCert{dnsNames: []string{name},
			exts: []pkix.Extension{good, acmeExt(oidACMEIdentifierDraft, true, keyAuth)}}), acme.Unauthorized, []string{"obsolete"}},
		{"a non-critical acmeIdentifier is refused", with(alpnCert{dnsNames: []string{name},
			exts: []pkix.Extension{acmeExt(OIDACMEIdentifier, false, keyAuth)}}), acme.Unauthorized, []string{"not marked critical"}},
		{"two SANs are refused", with(alpnCert{dnsNames: []string{name, "other.example.fi"}, exts: []pkix.Extension{good}}),
			acme.Unauthorized, []string{"exactly one subjectAltName", "it holds 2", `"other.example.fi"`}},
		{"the name twice is two SANs", with(alpnCert{dnsNames: []string{name, name}, exts: []pkix.Extension{good}}),
			acme.Unauthorized, []string{"it holds 2"}},
		{"an IP SAN beside the name is refused", with(alpnCert{dnsNames: []string{name}, ips: []net.IP{net.IPv4(192, 0, 2, 1)}, exts: []pkix.Extension{good}}),
			acme.Unauthorized, []string{"it holds 2", "192.0.2.1"}},
		{"a SAN of another name is refused", with(alpnCert{dnsNames: []string{"other.example.fi"}, exts: []pkix.Extension{good}}),
			acme.Unauthorized, []string{"the DNS name www.example.fi"}},
		{"no SAN is refused", with(alpnCert{exts: []pkix.Extension{good}}), acme.Unauthorized, []string{"it holds 0"}},
		{"no acmeIdentifier is refused", with(alpnCert{dnsNames: []string{name}}), acme.Unauthorized, []string{"no acmeIdentifier extension"}},
		{"the digest of another key authorization is an incorrect response", with(alpnCert{dnsNames: []string{name},
			exts: []pkix.Extension{acmeExt(OIDACMEIdentifier, true, "other.thumbprint")}}), acme.IncorrectResponse, []string{"not the SHA-256 digest"}},
		{"a digest that is not an OCTET STRING is refused", with(alpnCert{dnsNames: []string{name},
			exts: []pkix.Extension{rawExt(digest[:])}}), acme.Unauthorized, []string{"not an OCTET STRING of 32 bytes"}},
		{"a 31-byte digest is refused", with(alpnCert{dnsNames: []string{name}, exts: []pkix.Extension{rawExt(short)}}),
			acme.Unauthorized, []string{"not an OCTET STRING of 32 bytes"}},
		{"a responder offering only h2 fails the handshake", func(t *testing.T) *tls.Config {
			c := with(alpnCert{dnsNames: []string{name}, exts: []pkix.Extension{good}})(t)
			c.NextProtos = []string{"h2"}
			return c
		}, acme.TLS, []string{"no application protocol"}},
		{"a responder without ALPN is refused", func(t *testing.T) *tls.Config {
			c := with(alpnCert{dnsNames: []string{name}, exts: []pkix.Extension{good}})(t)
			c.NextProtos = nil
			return c
		}, acme.TLS, []string{"did not negotiate the ALPN protocol acme-tls/1"}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns := startDNS(t)
			dns.SetA(name, "127.0.0.1")
			l, hellos := alpnResponder(t, tt.cfg(t))
			v, _ := newValidator(t, dns, Config{TLSALPNPort: l.port(), AllowedNets: loopback})
			checkErr(t, v.TLSALPN01(context.Background(), name, keyAuth), tt.kind, tt.details...)
			if l.accepts.Load() == 0 {
				t.Fatal("the validator never connected")
			}
			for _, h := range hellos() {
				if h.serverName != name || len(h.protos) != 1 || h.protos[0] != ALPNProto {
					t.Errorf("ClientHello SNI %q ALPN %q, want %q and [%s]", h.serverName, h.protos, name, ALPNProto)
				}
			}
		})
	}
}

func TestTLSALPN01AcceptsXCryptoACMECertificate(t *testing.T) {
	// The certificate golang.org/x/crypto/acme makes for a client is accepted.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	client := &xacme.Client{Key: key}
	ka, err := client.HTTP01ChallengeResponse(token) // the key authorization, whatever the challenge
	if err != nil {
		t.Fatal(err)
	}
	cert, err := client.TLSALPN01ChallengeCert(token, "www.example.fi")
	if err != nil {
		t.Fatal(err)
	}
	dns := startDNS(t)
	dns.SetA("www.example.fi", "127.0.0.1")
	l, _ := alpnResponder(t, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{xacme.ALPNProto}})
	v, _ := newValidator(t, dns, Config{TLSALPNPort: l.port(), AllowedNets: loopback})
	checkErr(t, v.TLSALPN01(context.Background(), "www.example.fi", ka), "")
}

func TestTLSALPN01Connection(t *testing.T) {
	goodCfg := func(t *testing.T) *tls.Config {
		c := alpnCert{dnsNames: []string{"www.example.fi"}, exts: []pkix.Extension{acmeExt(OIDACMEIdentifier, true, keyAuth)}}
		return &tls.Config{Certificates: []tls.Certificate{c.build(t)}, NextProtos: []string{ALPNProto}}
	}

	t.Run("a non-public address is never connected to", func(t *testing.T) {
		dns := startDNS(t)
		dns.SetA("www.example.fi", "127.0.0.1")
		l, _ := alpnResponder(t, goodCfg(t))
		v, dials := newValidator(t, dns, Config{TLSALPNPort: l.port()}) // loopback not allowed
		checkErr(t, v.TLSALPN01(context.Background(), "www.example.fi", keyAuth), acme.Connection, "127.0.0.1", "non-public")
		if n := l.accepts.Load(); n != 0 || len(dials.list()) != 0 {
			t.Errorf("%d connections accepted, dialled %v; want none", n, dials.list())
		}
	})
	t.Run("only the first, pinned answer of a rebinding name is dialled", func(t *testing.T) {
		dns := startDNS(t)
		dns.SetSequence("www.example.fi", "A", []string{"127.0.0.1"}, []string{"10.0.0.1"})
		l, _ := alpnResponder(t, goodCfg(t))
		v, dials := newValidator(t, dns, Config{TLSALPNPort: l.port(), AllowedNets: loopback})
		checkErr(t, v.TLSALPN01(context.Background(), "www.example.fi", keyAuth), "")
		if got := dials.list(); len(got) != 1 || !strings.HasPrefix(got[0], "127.0.0.1:") {
			t.Errorf("dialled %v, want only 127.0.0.1", got)
		}
	})
	t.Run("a refused connection is a connection problem", func(t *testing.T) {
		dns := startDNS(t)
		dns.SetA("www.example.fi", "127.0.0.1")
		l := listen(t, "127.0.0.1:0")
		port := l.port()
		l.Close()
		v, _ := newValidator(t, dns, Config{TLSALPNPort: port, AllowedNets: loopback})
		checkErr(t, v.TLSALPN01(context.Background(), "www.example.fi", keyAuth), acme.Connection, "connection refused")
	})
	t.Run("a handshake that never completes ends at the deadline", func(t *testing.T) {
		dns := startDNS(t)
		dns.SetA("www.example.fi", "127.0.0.1")
		l := silent(t, "127.0.0.1:0")
		v, _ := newValidator(t, dns, Config{TLSALPNPort: l.port(), AllowedNets: loopback, Timeout: 300 * time.Millisecond})
		checkErr(t, v.TLSALPN01(context.Background(), "www.example.fi", keyAuth), acme.TLS, "deadline of 300ms")
	})
	t.Run("a plain-text server is a tls problem", func(t *testing.T) {
		dns := startDNS(t)
		dns.SetA("www.example.fi", "127.0.0.1")
		srv := serveHTTP(t, "127.0.0.1:0", false, body("hello"))
		v, _ := newValidator(t, dns, Config{TLSALPNPort: srv.port(), AllowedNets: loopback})
		checkErr(t, v.TLSALPN01(context.Background(), "www.example.fi", keyAuth), acme.TLS)
	})
	t.Run("an unknown name is a dns problem", func(t *testing.T) {
		dns := startDNS(t)
		v, _ := newValidator(t, dns, Config{AllowedNets: loopback})
		checkErr(t, v.TLSALPN01(context.Background(), "www.example.fi", keyAuth), acme.DNS)
	})
	for _, bad := range []string{"*.example.fi", "fe80::1%eth0", "::ffff:192.0.2.1", "a_b.example.fi"} {
		t.Run("refuses the name "+bad, func(t *testing.T) {
			dns := startDNS(t)
			v, _ := newValidator(t, dns, Config{})
			checkErr(t, v.TLSALPN01(context.Background(), bad, keyAuth), acme.Malformed)
		})
	}
}
