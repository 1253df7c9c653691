// Package web is the admin listener's HTTP: it puts the JSON API (admin/api) and
// the web console (admin/console) behind one handler with the security headers,
// the body cap and one log event per request, and holds what both front ends read
// from a request or write of a refusal alike: the operator's credential, the audit
// page parameters, and the HTTP status and problem type of each kind of refusal.
//
// It holds no rule of the operator service and never touches the store.
package web

import (
	"fmt"
	"log/slog"
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
	}
	return http.StatusInternalServerError, "serverInternal"
}

// Credential is the request's verified client certificate, else its bearer token.
func Credential(r *http.Request) admin.Credential {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		return admin.Credential{Cert: r.TLS.PeerCertificates[0]}
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return admin.Credential{Token: strings.TrimSpace(v)}
	}
	return admin.Credential{}
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
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h.ServeHTTP(w, r)
	})
}
