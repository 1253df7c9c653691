package validate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/varmenne/varmenne/acme"
)

// maxBody is the most of a response body that is read: a key authorization is 87
// bytes, and a larger answer is wrong whatever it holds.
const maxBody = 256

// maxEcho is the most of a response echoed back in a problem detail.
const maxEcho = 64

// HTTP01 fetches http://<name>:<HTTPPort>/.well-known/acme-challenge/<token>,
// following redirects within the configured limits, and compares the body with
// keyAuth (RFC 8555 section 8.3). It returns nil when they match, otherwise an
// *acme.Error: dns when the name cannot be resolved, connection when no acceptable
// answer could be fetched (refused, timed out, non-public address, bad redirect),
// incorrectResponse when the answer is wrong, and malformed for an unusable name or
// token.
func (v *Validator) HTTP01(ctx context.Context, name, token, keyAuth string) error {
	host := strings.ToLower(strings.TrimSuffix(name, "."))
	ip, isIP, err := ipIdentifier("http-01", host)
	switch {
	case err != nil:
		return err
	case isIP:
		// RFC 8738 section 4: the address itself, and the Host header names it.
		host = ip.String()
	case strings.HasPrefix(host, "*."):
		return acme.Errorf(acme.Malformed, "http-01 cannot prove control of the wildcard name %s", echo(host))
	case !validHostname(host):
		return acme.Errorf(acme.Malformed, "%s is not a valid DNS name", echo(host))
	}
	if !validToken(token) {
		return acme.Errorf(acme.Malformed, "the challenge token %s is not base64url text", echo(token))
	}

	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	release, err := v.slot(ctx)
	if err != nil {
		return err
	}
	defer release()
	target := &url.URL{
		Scheme: "http",
		Host:   hostPort(host, v.cfg.HTTPPort, DefaultHTTPPort),
		Path:   "/.well-known/acme-challenge/" + token,
	}
	// publicOnly: once the name resolved to public addresses, no redirect may lead
	// into a non-public network, --validation-allow or not.
	publicOnly := false
	for redirects := 0; ; redirects++ {
		resp, addrs, err := v.fetch(ctx, target, publicOnly)
		if err != nil {
			return err
		}
		if redirects == 0 {
			publicOnly = !slices.ContainsFunc(addrs, func(a netip.Addr) bool { return !isPublic(a) })
		}
		if !isRedirect(resp.StatusCode) {
			// What a hop off the validated host answered is not echoed: the CA must
			// not be a way to read another server's pages.
			err := v.checkResponse(ctx, target, resp, keyAuth, strings.EqualFold(target.Hostname(), host))
			resp.Body.Close()
			return err
		}
		location := resp.Header.Get("Location")
		resp.Body.Close()
		if redirects == v.cfg.MaxRedirects {
			return acme.Errorf(acme.Connection, "too many redirects: %s redirected again after %d redirects; at most %d are followed",
				shortURL(target), redirects, v.cfg.MaxRedirects)
		}
		if target, err = v.redirectTarget(target, location); err != nil {
			return err
		}
	}
}

// fetch resolves and checks the hop's host, then sends the GET to the checked
// address; it returns the answer and the addresses it was allowed to dial.
func (v *Validator) fetch(ctx context.Context, u *url.URL, publicOnly bool) (*http.Response, []netip.Addr, error) {
	addrs, err := v.resolve(ctx, u.Hostname(), publicOnly)
	if err != nil {
		return nil, nil, err
	}
	p := &pin{addrs: addrs, port: portOf(u), attempt: ctx}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, pinKey{}, p), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, acme.Errorf(acme.Connection, "cannot request %s", shortURL(u))
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	resp, err := v.transport.RoundTrip(req)
	if err != nil {
		return nil, nil, v.connectionError(ctx, u, p, err)
	}
	return resp, addrs, nil
}

// checkResponse compares a final answer with the key authorization. onHost: the
// answer is from the validated host itself; the status and contents of an answer
// from another host (a redirect target) are not echoed.
func (v *Validator) checkResponse(ctx context.Context, u *url.URL, resp *http.Response, keyAuth string, onHost bool) error {
	if !onHost && resp.StatusCode != http.StatusOK {
		return acme.Errorf(acme.IncorrectResponse, "the redirect target %s did not answer 200 OK; the key authorization must be served with 200 OK", shortURL(u))
	}
	if resp.StatusCode != http.StatusOK {
		// Our own status text: the server's reason phrase is not echoed.
		return acme.Errorf(acme.IncorrectResponse, "%s answered HTTP %d %s; the key authorization must be served with 200 OK",
			shortURL(u), resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return acme.Errorf(acme.Connection, "reading the answer of %s failed: %s", shortURL(u), v.reason(ctx, u, err))
	}
	if len(body) > maxBody {
		return acme.Errorf(acme.IncorrectResponse, "the response of %s is larger than %d bytes; it must hold only the key authorization",
			shortURL(u), maxBody)
	}
	// Editors and servers add line ends; anything else around the value is wrong.
	if strings.TrimRight(string(body), " \t\r\n") != keyAuth {
		if !onHost {
			return acme.Errorf(acme.IncorrectResponse, "the redirect target %s did not answer the key authorization %q", shortURL(u), keyAuth)
		}
		return acme.Errorf(acme.IncorrectResponse, "%s answered %s, not the key authorization %q", shortURL(u), echo(string(body)), keyAuth)
	}
	return nil
}

// redirectTarget checks a Location and returns the next hop's URL. Only names are
// followed, on the configured http and https ports; the name is resolved and checked
// when the hop is fetched, like the first one.
func (v *Validator) redirectTarget(from *url.URL, location string) (*url.URL, error) {
	if location == "" {
		return nil, acme.Errorf(acme.Connection, "%s redirected without a Location header", shortURL(from))
	}
	ref, err := url.Parse(location)
	if err != nil {
		return nil, acme.Errorf(acme.Connection, "%s redirected to an invalid URL %s", shortURL(from), echo(location))
	}
	next := from.ResolveReference(ref)
	next.User = nil // never send credentials a redirect offers
	next.Fragment, next.RawFragment = "", ""

	var want int
	switch next.Scheme {
	case "http":
		want = v.cfg.HTTPPort
	case "https":
		want = v.cfg.HTTPSPort
	default:
		return nil, acme.Errorf(acme.Connection, "redirect to %s refused: only http and https redirects are followed", shortURL(next))
	}
	host := strings.ToLower(strings.TrimSuffix(next.Hostname(), "."))
	switch {
	case isIPLiteral(host) || strings.HasPrefix(next.Host, "["):
		return nil, acme.Errorf(acme.Connection, "redirect to %s refused: the host is an IP address; only DNS names are followed", shortURL(next))
	case !validHostname(host):
		return nil, acme.Errorf(acme.Connection, "redirect to %s refused: %s is not a valid DNS name", shortURL(next), echo(host))
	}
	if port := portOf(next); port != want {
		return nil, acme.Errorf(acme.Connection, "redirect to %s refused: port %d is not allowed; %s redirects may only go to port %d",
			shortURL(next), port, next.Scheme, want)
	}
	next.Host = hostPort(host, portOf(next), map[string]int{"http": DefaultHTTPPort, "https": DefaultHTTPSPort}[next.Scheme])
	return next, nil
}

// connectionError explains a failed request without transport internals.
func (v *Validator) connectionError(ctx context.Context, u *url.URL, p *pin, err error) *acme.Error {
	from := ""
	if ip := p.last(); ip.IsValid() {
		from = " from " + ip.String()
	}
	return acme.Errorf(acme.Connection, "fetching %s%s failed: %s", shortURL(u), from, v.reason(ctx, u, err))
}

// transportReason names the failures every method shares: cancellation, the deadline,
// a refused connection and an unreachable address.
func (v *Validator) transportReason(ctx context.Context, err error) (string, bool) {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return "the validation was cancelled", true
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("no complete answer within the validation deadline of %s", v.cfg.Timeout), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the address", true
	}
	return "", false
}

// reason is the part of a network failure a person can act on.
func (v *Validator) reason(ctx context.Context, u *url.URL, err error) string {
	if r, ok := v.transportReason(ctx, err); ok {
		return r
	}
	var alert tls.AlertError
	switch {
	case errors.As(err, &alert):
		return "TLS handshake failed: the server sent the alert " + strconv.Quote(alert.Error())
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the server closed the connection before a complete answer"
	case u.Scheme == "https":
		return "the TLS handshake failed or the server did not send a valid HTTP response (TLS 1.2 or newer is required)"
	default:
		return "the server did not send a valid HTTP response"
	}
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// ipIdentifier reports whether host is the IP address of an ip identifier (RFC 8738),
// and refuses the spellings a certificate cannot hold: a zone, an IPv4-mapped IPv6
// address.
func ipIdentifier(method, host string) (netip.Addr, bool, error) {
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return netip.Addr{}, false, nil
	case ip.Zone() != "" || ip.Is4In6():
		return netip.Addr{}, false, acme.Errorf(acme.Malformed, "%s cannot validate %s: an IP identifier holds a plain IPv4 or IPv6 address, without a zone", method, echo(host))
	}
	return ip, true, nil
}

// isIPLiteral reports whether host is an IP address, zoned IPv6 included.
func isIPLiteral(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// validHostname accepts lower-case letter-digit-hyphen names (A-labels for IDNs), the
// only form a name reaches us in and the only one worth sending to DNS.
func validHostname(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validToken accepts base64url text (RFC 8555 section 8.3), which is safe in a path.
func validToken(token string) bool {
	if token == "" || len(token) > 256 {
		return false
	}
	for _, c := range []byte(token) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// portOf is the URL's port, or its scheme's default.
func portOf(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "https" {
		return DefaultHTTPSPort
	}
	return DefaultHTTPPort
}

// hostPort leaves the default port out, so the Host header is what a browser sends;
// an IPv6 address is bracketed either way (RFC 3986 section 3.2.2).
func hostPort(host string, port, defaultPort int) string {
	if port == defaultPort {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// echo quotes content received from a client's server for a problem detail: at most
// maxEcho bytes, non-printable characters escaped.
func echo(s string) string {
	if len(s) > maxEcho {
		return strconv.Quote(s[:maxEcho]) + " (cut)"
	}
	return strconv.Quote(s)
}

// shortURL keeps a URL from a Location header to a readable length in a detail.
func shortURL(u *url.URL) string {
	const max = 200
	s := u.String()
	if len(s) > max {
		return strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}
