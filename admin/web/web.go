// Package web is the admin listener's HTTP: it puts the JSON API (admin/api) and
// the web console (admin/console) behind one handler with the security headers,
// the body cap and one log event per request, and holds what both front ends read
// from a request or write of a refusal alike: the rule that refuses cross-site
// requests (SameOrigin, Guard), the operator's credential and its source, the
// audit page parameters, and the HTTP status and problem type of each kind of
// refusal.
//
// It holds no rule of the operator service and never touches the store.
package web

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/admin"
)

// MaxBody caps a request body of the API and the console.
const MaxBody = 64 << 10

// ProblemPrefix starts the type of every admin API problem document.
const ProblemPrefix = "urn:varmenne:admin:error:"

// Problem is how the admin listener shows a refusal of kind k: its HTTP status and
// the last part of its problem type (ProblemPrefix + typ).
func Problem(k admin.Kind) (status int, typ string) {
	switch k {
	case admin.Unauthenticated:
		return http.StatusUnauthorized, "unauthenticated"
	case admin.Forbidden:
		return http.StatusForbidden, "forbidden"
	case admin.DualControl:
		return http.StatusForbidden, "dualControl"
	case admin.NotFound:
		return http.StatusNotFound, "notFound"
	case admin.Conflict:
		return http.StatusConflict, "conflict"
	case admin.Gone:
		return http.StatusGone, "gone"
	case admin.Malformed:
		return http.StatusBadRequest, "malformed"
	case admin.RateLimited:
		return http.StatusTooManyRequests, "rateLimited"
	}
	return http.StatusInternalServerError, "serverInternal"
}

// RetryAfter sets the Retry-After header, in whole seconds, of a refusal that
// says when it ends (admin.Error.RetryAfter).
func RetryAfter(w http.ResponseWriter, err error) {
	var e *admin.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
}

// Credential is the request's verified client certificate, else its bearer token,
// with the client's address as its source.
func Credential(r *http.Request) admin.Credential {
	c := admin.Credential{Source: Source(r)}
	switch {
	case r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0:
		c.Cert = r.TLS.PeerCertificates[0]
	default:
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			c.Token = strings.TrimSpace(v)
		}
	}
	return c
}

// Source is the client's IP address: the admin listener terminates TLS itself
// (it verifies client certificates), so the peer of the connection is the client
// and no forwarding header is believed.
func Source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// SameOrigin is the admin listener's one rule against cross-site requests, which
// the API and the console both apply (Guard) before anything else, so a refused
// request authenticates no one and records nothing. A browser that holds an
// operator's client certificate sends it with any request to this origin, whatever
// page asked; SameSite cookies do not cover certificates. So a request is refused
// when
//
//   - its Origin header names another origin than the listener's own (scheme,
//     host and port as the request reached it), or is "null" (an opaque origin:
//     a sandboxed frame, a data: URL) without Sec-Fetch-Site same-origin; a
//     browser whose referrer policy is no-referrer sends "null" for the console's
//     own forms too, which is why the listener's policy is same-origin; or
//   - its Sec-Fetch-Site is anything but same-origin or none (none: the operator
//     typed the address or opened a bookmark). same-site is refused too: a site
//     is every port and every subdomain of the registrable domain, so the ACME
//     listener on another port of this host, or any other service of the domain,
//     is same-site, and cookies that are SameSite=Strict are sent to it all the
//     same.
//
// One exception: a GET or HEAD that is a top-level navigation (Sec-Fetch-Mode
// navigate, Sec-Fetch-Dest document), so a link to a console page from a mail or a
// ticket opens it. Such a request changes nothing, sends no SameSite=Strict
// cookie, and the other site can neither read the answer nor frame it
// (frame-ancestors 'none').
//
// Requests with neither header (curl, the e-service, other non-browser clients)
// pass: no browser sends a state change without Origin. The refusal is Forbidden.
func SameOrigin(r *http.Request) error {
	own := "http://" + r.Host
	if r.TLS != nil {
		own = "https://" + r.Host
	}
	site := r.Header.Get("Sec-Fetch-Site")
	navigation := (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		r.Header.Get("Sec-Fetch-Mode") == "navigate" && r.Header.Get("Sec-Fetch-Dest") == "document"
	if site != "" && site != "same-origin" && site != "none" && !navigation {
		return &admin.Error{Kind: admin.Forbidden, Detail: fmt.Sprintf(
			"this request came from another site (Sec-Fetch-Site: %s); %s accepts requests only from its own pages: open %s/console/ directly, or call the API from a program, not from a web page",
			site, own, own)}
	}
	origin := r.Header.Get("Origin")
	if origin == "null" && site == "same-origin" {
		return nil // the browser vouches for its own page (see above)
	}
	if origin != "" && !sameOrigin(origin, own) {
		return &admin.Error{Kind: admin.Forbidden, Detail: fmt.Sprintf(
			"this request came from the origin %q, not %s; %[2]s accepts requests only from its own pages: open %[2]s/console/ directly, or call the API from a program, not from a web page",
			origin, own)}
	}
	return nil
}

// sameOrigin compares two serialised origins: scheme and host case-insensitively,
// with a scheme's default port written or not.
func sameOrigin(a, b string) bool {
	norm := func(o string) string {
		o = strings.ToLower(o)
		o = strings.TrimSuffix(o, "/")
		if rest, ok := strings.CutPrefix(o, "https://"); ok {
			return "https://" + strings.TrimSuffix(rest, ":443")
		}
		if rest, ok := strings.CutPrefix(o, "http://"); ok {
			return "http://" + strings.TrimSuffix(rest, ":80")
		}
		return o
	}
	return norm(a) == norm(b)
}

// Guard applies SameOrigin to every request of h; refuse writes a refusal as the
// front end shows refusals (a problem document, an error page).
func Guard(h http.Handler, refuse func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := SameOrigin(r); err != nil {
			refuse(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// AuditPage reads the audit log's page parameters: after, the sequence number of
// the last event read (default 0), and limit, 1 to admin.MaxAuditPage (default 0:
// the service's page).
func AuditPage(q url.Values) (after int64, limit int, err error) {
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return 0, 0, &admin.Error{Kind: admin.Malformed, Detail: fmt.Sprintf("after=%q: give the sequence number of the last event read, e.g. 0", v)}
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > admin.MaxAuditPage {
			return 0, 0, &admin.Error{Kind: admin.Malformed, Detail: fmt.Sprintf("limit=%q: give 1 to %d", v, admin.MaxAuditPage)}
		}
	}
	return after, limit, nil
}

// Handler is the admin listener: api answers under /admin/, console everything
// else; log nil discards.
func Handler(api, console http.Handler, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", api)
	mux.Handle("/", console)
	return logged(log, securityHeaders(mux))
}

// statusWriter remembers the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logged writes one log event per request: method, path, status, duration, and
// whether a client certificate was presented; never a header or a body, which
// may hold a token or a key.
func logged(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		log.InfoContext(r.Context(), "admin request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"client_cert", r.TLS != nil && len(r.TLS.PeerCertificates) > 0, "ms", time.Since(start).Milliseconds())
	})
}

// securityHeaders are sent with every answer of the admin listener.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: nothing goes to other sites either way, and
		// with no-referrer browsers send the console's own forms with "Origin: null"
		// (see SameOrigin).
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h.ServeHTTP(w, r)
	})
}
