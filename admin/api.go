package admin

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/store"
)

// maxBody caps a request body of the API and the console.
const maxBody = 64 << 10

// ProblemPrefix starts the type of every admin API problem document.
const ProblemPrefix = "urn:varmenne:admin:error:"

//go:embed openapi.json
var openAPI []byte

// OpenAPI is the API's OpenAPI document.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

// Server is the admin listener's HTTP side: the JSON API under /admin/v1/ and the
// web console under /console/.
type Server struct {
	svc *Service
	log *slog.Logger
}

// NewServer returns the HTTP side of svc; log nil discards.
func NewServer(svc *Service, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{svc: svc, log: log}
}

// Route is one API endpoint.
type Route struct {
	Method, Pattern string
	handle          func(w http.ResponseWriter, r *http.Request, who *store.Operator) error
}

// Routes are the API's endpoints; the OpenAPI document describes exactly these.
func (s *Server) Routes() []Route {
	svc := s.svc
	return []Route{
		{"GET", "/admin/v1/whoami", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			return reply(w, http.StatusOK, map[string]string{"name": who.Name, "role": who.Role})
		}},
		{"GET", "/admin/v1/eab-requests", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			list, err := svc.EABRequests(r.Context(), who, r.URL.Query().Get("status"))
			return replyOr(w, http.StatusOK, list, err)
		}},
		{"POST", "/admin/v1/eab-requests", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			var in EABRequestInput
			if err := decode(r, &in); err != nil {
				return err
			}
			req, err := svc.RequestEAB(r.Context(), who, in)
			if err == nil {
				w.Header().Set("Location", "/admin/v1/eab-requests/"+req.ID)
				return reply(w, http.StatusCreated, req)
			}
			return err
		}},
		{"GET", "/admin/v1/eab-requests/{id}", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			req, err := svc.EABRequest(r.Context(), who, r.PathValue("id"))
			if err != nil {
				return err
			}
			return reply(w, http.StatusOK, req)
		}},
		{"POST", "/admin/v1/eab-requests/{id}/approve", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			if err := decodeEmpty(r); err != nil {
				return err
			}
			k, err := svc.Approve(r.Context(), who, r.PathValue("id"))
			if err != nil {
				return err
			}
			return reply(w, http.StatusOK, k)
		}},
		{"POST", "/admin/v1/eab-requests/{id}/reject", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			var in struct {
				Reason string `json:"reason"`
			}
			if err := decode(r, &in); err != nil {
				return err
			}
			if err := svc.Reject(r.Context(), who, r.PathValue("id"), in.Reason); err != nil {
				return err
			}
			req, err := svc.EABRequest(r.Context(), who, r.PathValue("id"))
			if err != nil {
				return err
			}
			return reply(w, http.StatusOK, req)
		}},
		{"POST", "/admin/v1/eab-requests/{id}/key", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			if err := decodeEmpty(r); err != nil {
				return err
			}
			h, err := svc.Handover(r.Context(), who, r.PathValue("id"))
			return replyOr(w, http.StatusOK, h, err)
		}},
		{"GET", "/admin/v1/eab-keys/{kid}", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			k, err := svc.EABKey(r.Context(), who, r.PathValue("kid"))
			return replyOr(w, http.StatusOK, k, err)
		}},
		{"POST", "/admin/v1/eab-keys/{kid}/revoke", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			var in struct {
				Reason             string `json:"reason"`
				DeactivateAccounts bool   `json:"deactivate_accounts"`
			}
			if err := decode(r, &in); err != nil {
				return err
			}
			ids, err := svc.RevokeKey(r.Context(), who, r.PathValue("kid"), in.Reason, in.DeactivateAccounts)
			if ids == nil {
				ids = []string{}
			}
			return replyOr(w, http.StatusOK, map[string]any{"kid": r.PathValue("kid"), "status": store.EABRevoked, "deactivated_accounts": ids}, err)
		}},
		{"GET", "/admin/v1/organisations", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			list, err := svc.Organisations(r.Context(), who)
			return replyOr(w, http.StatusOK, list, err)
		}},
		{"GET", "/admin/v1/organisations/{oid}", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			v, err := svc.Organisation(r.Context(), who, r.PathValue("oid"))
			return replyOr(w, http.StatusOK, v, err)
		}},
		{"POST", "/admin/v1/organisations/{oid}/suspend", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			var in struct {
				Reason string `json:"reason"`
			}
			if err := decode(r, &in); err != nil {
				return err
			}
			if err := svc.Suspend(r.Context(), who, r.PathValue("oid"), in.Reason); err != nil {
				return err
			}
			v, err := svc.Organisation(r.Context(), who, r.PathValue("oid"))
			return replyOr(w, http.StatusOK, v, err)
		}},
		{"POST", "/admin/v1/organisations/{oid}/resume", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			if err := decodeEmpty(r); err != nil {
				return err
			}
			if err := svc.Resume(r.Context(), who, r.PathValue("oid")); err != nil {
				return err
			}
			v, err := svc.Organisation(r.Context(), who, r.PathValue("oid"))
			return replyOr(w, http.StatusOK, v, err)
		}},
		{"GET", "/admin/v1/certificates", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			list, err := svc.Certificates(r.Context(), who, r.URL.Query().Get("serial"), r.URL.Query().Get("name"))
			return replyOr(w, http.StatusOK, list, err)
		}},
		{"POST", "/admin/v1/certificates/{serial}/revoke", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			var in RevokeInput
			if err := decode(r, &in); err != nil {
				return err
			}
			if err := svc.RevokeCertificate(r.Context(), who, r.PathValue("serial"), in); err != nil {
				return err
			}
			list, err := svc.Certificates(r.Context(), who, "0x"+strings.TrimPrefix(strings.ToLower(r.PathValue("serial")), "0x"), "")
			return replyOr(w, http.StatusOK, list, err)
		}},
		{"GET", "/admin/v1/audit", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			after, limit, err := auditPage(r)
			if err != nil {
				return err
			}
			events, err := svc.Audit(r.Context(), who, after, limit)
			return replyOr(w, http.StatusOK, events, err)
		}},
	}
}

func auditPage(r *http.Request) (after int64, limit int, err error) {
	q := r.URL.Query()
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return 0, 0, errorf(Malformed, "after=%q: give the sequence number of the last event read, e.g. 0", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxAuditPage {
			return 0, 0, errorf(Malformed, "limit=%q: give 1 to %d", v, MaxAuditPage)
		}
	}
	return after, limit, nil
}

// Handler serves the API, the console and the OpenAPI document.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	paths := http.NewServeMux() // the API's paths whatever the method, to tell 405 from 404
	allowed := map[string][]string{}
	for _, rt := range s.Routes() {
		mux.HandleFunc(rt.Method+" "+rt.Pattern, s.api(rt.handle))
		if allowed[rt.Pattern] == nil {
			paths.HandleFunc(rt.Pattern, func(http.ResponseWriter, *http.Request) {})
		}
		allowed[rt.Pattern] = append(allowed[rt.Pattern], rt.Method)
	}
	mux.HandleFunc("GET /admin/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); pattern != "" {
			methods := allowed[pattern]
			sort.Strings(methods)
			w.Header().Set("Allow", strings.Join(methods, ", "))
			s.problem(w, r, &httpError{http.StatusMethodNotAllowed, "methodNotAllowed", fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, strings.Join(methods, " or "))})
			return
		}
		s.problem(w, r, &httpError{http.StatusNotFound, "noRoute", fmt.Sprintf("there is no endpoint %s; the API is described at /admin/v1/openapi.json", r.URL.Path)})
	})
	s.consoleRoutes(mux)
	return s.logged(securityHeaders(mux))
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
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		s.log.InfoContext(r.Context(), "admin request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
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
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h.ServeHTTP(w, r)
	})
}

// api authenticates the request and runs h; a refusal is a problem document.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, *store.Operator) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, err := s.svc.Authenticate(r.Context(), credential(r))
		if err == nil {
			err = h(w, r, who)
		}
		if err != nil {
			s.problem(w, r, err)
		}
	}
}

// credential is the verified client certificate, else the bearer token.
func credential(r *http.Request) Credential {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		return Credential{Cert: r.TLS.PeerCertificates[0]}
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return Credential{Token: strings.TrimSpace(v)}
	}
	return Credential{}
}

// problem writes err as an RFC 7807 problem document.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	status, typ, detail, ok := refusal(err)
	if !ok {
		status, typ, detail, _ = refusal(s.svc.internal(r.Context(), "answer the request", err))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="varmenne admin"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": ProblemPrefix + typ, "title": http.StatusText(status), "status": status, "detail": detail})
}

func reply(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func replyOr(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	return reply(w, status, v)
}

// decode reads a JSON body strictly: application/json, at most maxBody bytes, no
// unknown members, one value.
func decode(r *http.Request, v any) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return &httpError{http.StatusUnsupportedMediaType, TypeMalformed, "send the body as Content-Type: application/json"}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &httpError{http.StatusRequestEntityTooLarge, TypeMalformed, fmt.Sprintf("the body is larger than %d bytes", maxBody)}
		}
		return errorf(Malformed, "the body is not the JSON this endpoint takes: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(Malformed, "the body holds more than one JSON value")
	}
	return nil
}

// decodeEmpty accepts no body, or an empty JSON object.
func decodeEmpty(r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return &httpError{http.StatusRequestEntityTooLarge, TypeMalformed, fmt.Sprintf("the body is larger than %d bytes", maxBody)}
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && string(t) != "{}" {
		return errorf(Malformed, "this endpoint takes no body, or {}")
	}
	return nil
}
