package crl

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxOCSPRequest caps a POSTed OCSP request; one CertID is about 100 bytes.
const maxOCSPRequest = 10 << 10

// Handler serves, over plain HTTP (relying parties fetch revocation status without
// TLS, which would itself need revocation checking):
//
//	GET  /crl/<issuer>.crl          the issuer's current CRL (DER)
//	GET  /issuer/<issuer>.cer       the issuer certificate (DER, the certificates' AIA caIssuers)
//	GET  /ocsp/<issuer>/<request>   OCSP, base64 DER request in the path (RFC 6960 A.1)
//	POST /ocsp/<issuer>             OCSP, DER request as the body
//
// ocsp may be nil (no OCSP).
func Handler(p *Publisher, o *OCSP, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &handler{p: p, o: o, log: log, now: p.cfg.Now, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /crl/{file}", h.crl)
	h.mux.HandleFunc("GET /issuer/{file}", h.issuer)
	return h
}

type handler struct {
	p   *Publisher
	o   *OCSP
	log *slog.Logger
	now func() time.Time
	mux *http.ServeMux
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// OCSP is routed by hand: base64 holds "/" and may hold "//", which ServeMux
	// would clean away with a redirect.
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/ocsp/"); ok {
		h.ocsp(w, r, rest)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) crl(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
	if _, known := h.p.issuers[name]; !ok || !known {
		http.NotFound(w, r)
		return
	}
	cur, ok := h.p.Current(name)
	if !ok {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "no CRL published yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(cur.Number, 10)))
	cacheUntil(w, h.now(), cur.NextUpdate)
	http.ServeContent(w, r, "", cur.ThisUpdate, bytes.NewReader(cur.DER))
}

func (h *handler) issuer(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".cer")
	is, known := h.p.issuers[name]
	if !ok || !known {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-cert")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, "", is.Cert.NotBefore, bytes.NewReader(is.Cert.Raw))
}

// cacheUntil lets caches keep a response until t (a CRL's nextUpdate, an OCSP
// answer's refresh time) and no longer.
func cacheUntil(w http.ResponseWriter, now, t time.Time) {
	age := max(int64(t.Sub(now)/time.Second), 0)
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d, no-transform", age))
	w.Header().Set("Expires", t.UTC().Format(http.TimeFormat))
}

func (h *handler) ocsp(w http.ResponseWriter, r *http.Request, rest string) {
	issuer, request, _ := strings.Cut(rest, "/")
	switch r.Method {
	case http.MethodPost:
		if request != "" {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOCSPRequest))
		if err != nil {
			http.Error(w, "the OCSP request is too large", http.StatusRequestEntityTooLarge)
			return
		}
		h.answer(w, r, issuer, body, false)
	case http.MethodGet, http.MethodHead:
		req, ok := decodeGETRequest(request)
		if !ok {
			http.Error(w, "the OCSP request in the URL is not base64", http.StatusBadRequest)
			return
		}
		h.answer(w, r, issuer, req, true)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
	}
}

// decodeGETRequest reads the URL-escaped base64 of RFC 6960 A.1. Clients differ:
// some leave "+" and "/" unescaped, some drop the padding, and a "+" may arrive as
// a space after a proxy.
func decodeGETRequest(escaped string) ([]byte, bool) {
	raw, err := url.PathUnescape(escaped)
	if err != nil || raw == "" {
		return nil, false
	}
	raw = strings.ReplaceAll(raw, " ", "+")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if req, err := enc.DecodeString(raw); err == nil && len(req) > 0 {
			return req, true
		}
	}
	return nil, false
}

func (h *handler) answer(w http.ResponseWriter, r *http.Request, issuer string, req []byte, cacheable bool) {
	if h.o == nil {
		http.NotFound(w, r)
		return
	}
	resp, err := h.o.Respond(r.Context(), issuer, req)
	if errors.Is(err, ErrUnknownIssuer) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.log.Error("OCSP request failed", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	// Only a signed answer fetched by GET may be cached (RFC 5019 section 6).
	if cacheable && !resp.ThisUpdate.IsZero() {
		cacheUntil(w, h.now(), resp.RefreshAt)
		w.Header().Set("Last-Modified", resp.ThisUpdate.UTC().Format(http.TimeFormat))
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.DER)))
	if r.Method != http.MethodHead {
		w.Write(resp.DER)
	}
}
