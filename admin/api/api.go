// Package api is the operators' JSON API under /admin/v1/, a front end of the
// operator service (admin): routes, strict JSON bodies, RFC 7807 problem documents
// and the OpenAPI document that describes exactly these routes. It holds no rule
// of its own: every decision, role check and audit event is the service's.
package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/store"
)

//go:embed openapi.json
var openAPI []byte

// Service is what the API asks of the operator service (admin.Service).
type Service interface {
	Authenticate(ctx context.Context, c admin.Credential) (*store.Operator, error)
	RequestEAB(ctx context.Context, who *store.Operator, in admin.EABRequestInput) (*admin.RequestView, error)
	EABRequests(ctx context.Context, who *store.Operator, status string) ([]admin.RequestView, error)
	EABRequest(ctx context.Context, who *store.Operator, id string) (*admin.RequestView, error)
	Approve(ctx context.Context, who *store.Operator, id string) (*admin.KeyView, error)
	Reject(ctx context.Context, who *store.Operator, id, reason string) error
	Handover(ctx context.Context, who *store.Operator, id string) (*admin.Handover, error)
	EABKey(ctx context.Context, who *store.Operator, kid string) (*admin.KeyView, error)
	RevokeKey(ctx context.Context, who *store.Operator, kid, reason string, deactivate bool) ([]string, error)
	Organisations(ctx context.Context, who *store.Operator) ([]admin.OrgSummary, error)
	Organisation(ctx context.Context, who *store.Operator, oid string) (*admin.OrgView, error)
	Suspend(ctx context.Context, who *store.Operator, oid, reason string) error
	Resume(ctx context.Context, who *store.Operator, oid string) error
	Certificates(ctx context.Context, who *store.Operator, serial, name string) ([]admin.CertView, error)
	RevokeCertificate(ctx context.Context, who *store.Operator, serial string, in admin.RevokeInput) (*store.Revocation, error)
	Audit(ctx context.Context, who *store.Operator, after int64, limit int) ([]admin.EventView, error)
}

// Server is the JSON API over a service.
type Server struct {
	svc Service
	log *slog.Logger
}

// New returns the API over svc; log nil discards.
func New(svc Service, log *slog.Logger) *Server {
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
			var in admin.EABRequestInput
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
			var in admin.RevokeInput
			if err := decode(r, &in); err != nil {
				return err
			}
			in.Door = admin.DoorAPI
			if _, err := svc.RevokeCertificate(r.Context(), who, r.PathValue("serial"), in); err != nil {
				return err
			}
			list, err := svc.Certificates(r.Context(), who, "0x"+strings.TrimPrefix(strings.ToLower(r.PathValue("serial")), "0x"), "")
			return replyOr(w, http.StatusOK, list, err)
		}},
		{"GET", "/admin/v1/audit", func(w http.ResponseWriter, r *http.Request, who *store.Operator) error {
			after, limit, err := web.AuditPage(r.URL.Query())
			if err != nil {
				return err
			}
			events, err := svc.Audit(r.Context(), who, after, limit)
			return replyOr(w, http.StatusOK, events, err)
		}},
	}
}

// Handler serves the API and its OpenAPI document under /admin/; web.Handler puts
// it on the admin listener. A request from another site is refused first
// (web.SameOrigin).
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
	return web.Guard(mux, s.problem)
}

// api authenticates the request and runs h; a refusal is a problem document. A
// state change (any method but GET and HEAD) must be sent as application/json,
// even when it takes no body, before the credential is looked at: a browser sends
// a form or text/plain to another site without asking, but not JSON.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, *store.Operator) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var who *store.Operator
		err := jsonRequest(r)
		if err == nil {
			who, err = s.svc.Authenticate(r.Context(), web.Credential(r))
		}
		if err == nil {
			err = h(w, r, who)
		}
		if err != nil {
			s.problem(w, r, err)
		}
	}
}
