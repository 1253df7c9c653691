// Package signedpost is how varmenne POSTs to an operator's service (the policy
// webhook, the alert webhook): the body signed with HMAC-SHA256 under a shared
// secret, and a client that reaches only public addresses over https, or the
// networks the operator allow-listed (acme/validate's address rules), checked on
// the address actually dialled, never through a proxy, never following a
// redirect. It decides neither what is sent nor what an answer means.
package signedpost

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/varmenne/varmenne/acme/validate"
)

// SignatureHeader carries "sha256=" and the lower-case hex HMAC-SHA256 of the body
// under the shared secret.
const SignatureHeader = "X-Varmenne-Signature"

// MinSecret is the least number of bytes of a shared secret.
const MinSecret = 16

// Sign is the value of SignatureHeader for body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// ReadSecret reads a shared secret from its file: the file's bytes without a
// final line break, at least MinSecret of them.
func ReadSecret(path string) ([]byte, error) {
	secret, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret = bytes.TrimRight(secret, "\r\n")
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("%s holds %d bytes; use at least %d random bytes", path, len(secret), MinSecret)
	}
	return secret, nil
}

// Reachable reports whether a request may go to ip for scheme: https to public
// or allow-listed addresses, http to allow-listed ones only (an answer over plain
// http from the internet could be forged on the way).
func Reachable(ip netip.Addr, scheme string, nets []netip.Prefix) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return scheme == "https" && validate.IsPublic(ip)
}

// RefusedWhy says why Reachable refused an address for scheme; allowList names
// the setting that would allow it.
func RefusedWhy(scheme, allowList string) string {
	if scheme == "http" {
		return "not in " + allowList + " (plain http only reaches allow-listed networks; use https)"
	}
	return "not a public address"
}

// Client is the HTTP client of requests to scheme://…: it dials only addresses
// Reachable allows, and answers a redirect with the redirect itself.
func Client(scheme string, nets []netip.Prefix, allowList string, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{
		Timeout: timeout,
		// Control sees the address actually dialled, after name resolution: a name
		// that resolves (or rebinds) to an internal address is refused here.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("unexpected dial address %q", address)
			}
			if !Reachable(ap.Addr(), scheme, nets) {
				return fmt.Errorf("%s is %s", ap.Addr(), RefusedWhy(scheme, allowList))
			}
			return nil
		},
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil, // never through an environment proxy
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          4,
			IdleConnTimeout:       time.Minute,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
