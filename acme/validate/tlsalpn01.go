package validate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/varmenne/varmenne/acme"
)

// ALPNProto is the ALPN protocol a tls-alpn-01 responder must negotiate (RFC 8737).
const ALPNProto = "acme-tls/1"

var (
	// OIDACMEIdentifier is id-pe-acmeIdentifier (RFC 8737 section 6.1).
	OIDACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}
	// oidACMEIdentifierDraft is the OID of early drafts; certificates carrying it were
	// accepted by mistake in the 2022 TLS-ALPN-01 incident, so it is refused.
	oidACMEIdentifierDraft = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 30, 1}
	oidSubjectAltName      = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// TLSALPN01 connects to <name>:<TLSALPNPort> on an address checked like http-01's,
// with SNI name and ALPN acme-tls/1, and checks the self-signed certificate the
// responder presents (RFC 8737 section 3): TLS 1.2 or newer, acme-tls/1 negotiated,
// exactly one subjectAltName, the dNSName name, and a critical id-pe-acmeIdentifier
// extension holding the SHA-256 digest of keyAuth.
//
// It returns nil or an *acme.Error: dns or connection as for http-01, tls when the
// handshake fails or does not negotiate acme-tls/1, unauthorized when the certificate
// breaks a rule of RFC 8737, and incorrectResponse when it holds another digest.
//
// For an IP identifier (RFC 8738 section 6) it connects to the address itself, sends
// the address's reverse DNS name (in-addr.arpa or ip6.arpa) as SNI, and wants the one
// subjectAltName to be the iPAddress.
func (v *Validator) TLSALPN01(ctx context.Context, name, keyAuth string) error {
	host := strings.ToLower(strings.TrimSuffix(name, "."))
	ip, isIP, err := ipIdentifier("tls-alpn-01", host)
	if err != nil {
		return err
	}
	serverName := ""
	if isIP {
		host, serverName = ip.String(), reverseName(ip)
	} else {
		if host, err = checkHost("tls-alpn-01", name); err != nil {
			return err
		}
		serverName = host
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	release, err := v.slot(ctx)
	if err != nil {
		return err
	}
	defer release()
	addrs, err := v.resolve(ctx, host, false)
	if err != nil {
		return err
	}
	target := net.JoinHostPort(host, strconv.Itoa(v.cfg.TLSALPNPort))
	conn, ip, err := v.dialFirst(ctx, addrs, v.cfg.TLSALPNPort)
	if err != nil {
		return acme.Errorf(acme.Connection, "connecting to %s at %s failed: %s", target, ip, v.netReason(ctx, err))
	}
	defer conn.Close()

	tc := tls.Client(conn, &tls.Config{
		ServerName: serverName,
		NextProtos: []string{ALPNProto},
		MinVersion: tls.VersionTLS12,
		// The certificate is self-signed by design; it is checked below instead.
		InsecureSkipVerify: true,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		return acme.Errorf(acme.TLS, "the TLS handshake with %s at %s failed: %s; tls-alpn-01 needs TLS 1.2 or newer and the ALPN protocol %s",
			target, ip, v.netReason(ctx, err), ALPNProto)
	}
	state := tc.ConnectionState()
	if state.NegotiatedProtocol != ALPNProto {
		return acme.Errorf(acme.TLS, "%s at %s did not negotiate the ALPN protocol %s; serve the tls-alpn-01 certificate only on connections that offer it",
			target, ip, ALPNProto)
	}
	return checkALPNCertificate(state.PeerCertificates[0], host, target, keyAuth)
}

// checkALPNCertificate applies RFC 8737 section 3 to the responder's certificate.
func checkALPNCertificate(cert *x509.Certificate, host, target, keyAuth string) error {
	if err := checkALPNSubjectAltName(cert, host, target); err != nil {
		return err
	}
	var ext *pkix.Extension
	for i, e := range cert.Extensions {
		switch {
		case e.Id.Equal(oidACMEIdentifierDraft):
			return acme.Errorf(acme.Unauthorized, "the certificate of %s carries the obsolete draft acmeIdentifier extension %s; use id-pe-acmeIdentifier %s (RFC 8737)",
				target, oidACMEIdentifierDraft, OIDACMEIdentifier)
		case e.Id.Equal(OIDACMEIdentifier):
			ext = &cert.Extensions[i]
		}
	}
	if ext == nil {
		return acme.Errorf(acme.Unauthorized, "the certificate of %s has no acmeIdentifier extension (%s)", target, OIDACMEIdentifier)
	}
	if !ext.Critical {
		return acme.Errorf(acme.Unauthorized, "the acmeIdentifier extension in the certificate of %s is not marked critical; RFC 8737 requires it to be", target)
	}
	var digest []byte
	rest, err := asn1.Unmarshal(ext.Value, &digest)
	if err != nil || len(rest) != 0 || len(digest) != sha256.Size {
		return acme.Errorf(acme.Unauthorized, "the acmeIdentifier extension in the certificate of %s is not an OCTET STRING of %d bytes", target, sha256.Size)
	}
	want := sha256.Sum256([]byte(keyAuth))
	if subtle.ConstantTimeCompare(digest, want[:]) != 1 {
		return acme.Errorf(acme.IncorrectResponse, "the acmeIdentifier in the certificate of %s is %s, not the SHA-256 digest of the key authorization, %s",
			target, hex.EncodeToString(digest), hex.EncodeToString(want[:]))
	}
	return nil
}

// checkALPNSubjectAltName requires the subjectAltName to hold exactly one entry, the
// dNSName host. The raw extension is read, so entries of kinds the x509 package does
// not decode (otherName, directoryName…) count too.
func checkALPNSubjectAltName(cert *x509.Certificate, host, target string) error {
	var names []asn1.RawValue
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidSubjectAltName) {
			continue
		}
		if rest, err := asn1.Unmarshal(e.Value, &names); err != nil || len(rest) != 0 {
			return acme.Errorf(acme.Unauthorized, "the subjectAltName extension of the certificate of %s cannot be parsed", target)
		}
	}
	const dNSName, iPAddress = 2, 7 // GeneralName CHOICE tags
	want, wantTag, what := []byte(host), dNSName, "DNS name"
	if ip, err := netip.ParseAddr(host); err == nil {
		want, wantTag, what = ip.AsSlice(), iPAddress, "IP address"
	}
	if len(names) == 1 && names[0].Class == asn1.ClassContextSpecific && names[0].Tag == wantTag &&
		(wantTag == iPAddress && bytes.Equal(names[0].Bytes, want) || wantTag == dNSName && strings.EqualFold(string(names[0].Bytes), host)) {
		return nil
	}
	shown := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		shown = append(shown, ip.String())
	}
	for _, u := range cert.URIs {
		shown = append(shown, u.String())
	}
	shown = append(shown, cert.EmailAddresses...)
	holds := "no decodable names"
	if len(shown) > 0 {
		holds = echoList(shown)
	}
	return acme.Errorf(acme.Unauthorized, "the certificate of %s must hold exactly one subjectAltName, the %s %s; it holds %d (%s)",
		target, what, host, len(names), holds)
}

// reverseName is the reverse DNS name of ip without the trailing dot: 1.2.0.192.in-addr.arpa
// for 192.0.2.1, 32 nibbles under ip6.arpa for an IPv6 address (RFC 8738 section 6).
func reverseName(ip netip.Addr) string {
	b := ip.AsSlice()
	var labels []string
	if ip.Is4() {
		for i := len(b) - 1; i >= 0; i-- {
			labels = append(labels, strconv.Itoa(int(b[i])))
		}
		return strings.Join(labels, ".") + ".in-addr.arpa"
	}
	const hexDigits = "0123456789abcdef"
	for i := len(b) - 1; i >= 0; i-- {
		labels = append(labels, string(hexDigits[b[i]&0xf]), string(hexDigits[b[i]>>4]))
	}
	return strings.Join(labels, ".") + ".ip6.arpa"
}

// dialFirst connects to the first of the checked addresses that answers on port.
func (v *Validator) dialFirst(ctx context.Context, addrs []netip.Addr, port int) (net.Conn, netip.Addr, error) {
	var errs []error
	var ip netip.Addr
	for _, ip = range addrs {
		c, err := v.dial(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		if err == nil {
			return c, ip, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, ip, errors.Join(errs...)
}

// netReason is the part of a connection or TLS failure a person can act on.
func (v *Validator) netReason(ctx context.Context, err error) string {
	var alert tls.AlertError
	var recErr tls.RecordHeaderError
	var op *net.OpError
	if r, ok := v.transportReason(ctx, err); ok {
		return r
	}
	switch {
	case errors.As(err, &alert):
		return "the server sent the TLS alert " + strconv.Quote(alert.Error())
	case errors.As(err, &op) && op.Op == "remote error":
		// Alerts from the peer arrive as a "remote error" around an unexported type.
		return "the server sent the TLS alert " + strconv.Quote(strings.TrimPrefix(op.Err.Error(), "tls: "))
	case errors.As(err, &recErr):
		return "the server did not answer with TLS"
	case errors.Is(err, syscall.ECONNRESET):
		return "the server closed the connection"
	default:
		return "the server did not complete a TLS handshake we accept"
	}
}
