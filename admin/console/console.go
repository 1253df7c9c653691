// Package console is the operators' web console under /console/, a front end of
// the operator service (admin): server-rendered html/template pages with no
// script, token logins in cookie-held sessions the service keeps, and a CSRF token
// on every form. It holds no rule of its own and never touches the store: every
// decision, role check, session and audit event is the service's.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/store"
)

// Service is what the console asks of the operator service (admin.Service).
type Service interface {
	Authenticate(ctx context.Context, c admin.Credential) (*store.Operator, error)
	StartSession(ctx context.Context, who *store.Operator) (*admin.NewSession, error)
	Session(ctx context.Context, cookie string) (*store.Operator, error)
	EndSession(ctx context.Context, who *store.Operator, cookie string) error
	Refused(ctx context.Context, who *store.Operator, what, why string)

	RequestEAB(ctx context.Context, who *store.Operator, in admin.EABRequestInput) (*admin.RequestView, error)
	EABRequests(ctx context.Context, who *store.Operator, status string) ([]admin.RequestView, error)
	EABRequest(ctx context.Context, who *store.Operator, id string) (*admin.RequestView, error)
	Approve(ctx context.Context, who *store.Operator, id string) (*admin.KeyView, error)
	Reject(ctx context.Context, who *store.Operator, id, reason string) error
	Handover(ctx context.Context, who *store.Operator, id string) (*admin.Handover, error)
	EABKey(ctx context.Context, who *store.Operator, kid string) (*admin.KeyView, error)
	RevokeKey(ctx context.Context, who *store.Operator, kid, reason string, deactivate bool) ([]string, error)
	Organisations(ctx context.Context, who *store.Operator) ([]admin.OrgSummary, error)
	Register(ctx context.Context, who *store.Operator) (*admin.RegisterCopyView, error)
	Organisation(ctx context.Context, who *store.Operator, oid string) (*admin.OrgView, error)
	Suspend(ctx context.Context, who *store.Operator, oid, reason string) error
	Resume(ctx context.Context, who *store.Operator, oid string) error
	Certificates(ctx context.Context, who *store.Operator, serial, name string) ([]admin.CertView, error)
	RevokeCertificate(ctx context.Context, who *store.Operator, serial string, in admin.RevokeInput) (*store.Revocation, error)
	RevokeOrganisation(ctx context.Context, who *store.Operator, oid string, in admin.RevokeInput) ([]string, error)
	SearchAudit(ctx context.Context, who *store.Operator, q admin.AuditQuery) ([]admin.EventView, error)
	Health(ctx context.Context, who *store.Operator, ca admin.CA) (*admin.HealthView, error)
}

// Server is the web console over a service.
type Server struct {
	svc Service
	log *slog.Logger
	// CA is what the server knows of its issuers, OCSP responders, HSM and
	// register that the store does not hold; the health page shows it. Set it
	// before Handler.
	CA admin.CA
}

// New returns the console over svc; log nil discards.
func New(svc Service, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{svc: svc, log: log}
}

// Handler serves the console's pages under /console/ and sends / there;
// web.Handler puts it on the admin listener. A request from another site is
// refused first (web.SameOrigin), whatever CSRF token its form carries.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return web.Guard(mux, func(w http.ResponseWriter, r *http.Request, err error) { s.consoleError(w, r, nil, err) })
}

//go:embed templates/*.html static/style.css
var consoleFiles embed.FS

var pageNames = []string{"login", "health", "requests", "request", "key", "organisations", "organisation", "certificates", "audit", "error"}

// sharedTemplates are the parts several pages use.
var sharedTemplates = []string{"templates/layout.html", "templates/chart.html", "templates/revoke.html"}

var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"join": func(v []string) string {
			if len(v) == 0 {
				return "all"
			}
			return strings.Join(v, ", ")
		},
		"day":  stamp,
		"is":   func(who *store.Operator, role string) bool { return who != nil && who.Role == role },
		"path": url.PathEscape,
		// until says how far t is from at: "in 7h59m" or "2h0m ago".
		"until": func(at, t time.Time) string {
			d := t.Sub(at).Truncate(time.Minute)
			s := (d.Abs()).String()
			if d.Abs() >= 48*time.Hour {
				s = strconv.Itoa(int(d.Abs()/(24*time.Hour))) + " days"
			}
			if d < 0 {
				return s + " ago"
			}
			return "in " + s
		},
		"minus": func(a, b int) int { return a - b },
	}
	m := map[string]*template.Template{}
	for _, n := range pageNames {
		m[n] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(consoleFiles, append(sharedTemplates, "templates/"+n+".html")...))
	}
	return m
}()

// Console cookies. __Host- makes the browser keep them to this origin, over HTTPS.
const (
	sessionCookie = "__Host-varmenne-session"
	loginCookie   = "__Host-varmenne-login"
	// certCSRFCookie keys the CSRF tokens of a browser that shows a client
	// certificate.
	certCSRFCookie = "__Host-varmenne-csrf"
)

// keyedMAC is the HMAC-SHA256 of msg under key, base64url.
func keyedMAC(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sessionCSRF is the CSRF token of a session: a MAC keyed by the session cookie's
// value, which only the browser holds, so every replica derives the same token
// and the store needs no copy of it.
func sessionCSRF(id string) string { return keyedMAC([]byte(id), "csrf") }

// page is what every console template gets.
type page struct {
	Who    *store.Operator
	CSRF   string
	Title  string
	Notice string
	Data   any
}

// consoleRequest is an authenticated console request.
type consoleRequest struct {
	who  *store.Operator
	csrf string
}

// consoleAuth finds the operator of a console request: its client certificate,
// else its session cookie. ok false means the answer (a redirect to the login
// page) was written.
func (s *Server) consoleAuth(w http.ResponseWriter, r *http.Request) (*consoleRequest, bool) {
	if c := web.Credential(r); c.Cert != nil {
		who, err := s.svc.Authenticate(r.Context(), c)
		if err != nil {
			s.consoleError(w, r, nil, err)
			return nil, false
		}
		// Bound to the certificate: the CSRF token is derived from its fingerprint.
		// Bound to the certificate and to a random cookie of this browser, not to a
		// key of this server, so every replica derives the same token.
		ck, err := r.Cookie(certCSRFCookie)
		if err != nil || ck.Value == "" {
			ck = &http.Cookie{Name: certCSRFCookie, Value: randomCookie(), Path: "/",
				Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
			http.SetCookie(w, ck)
		}
		return &consoleRequest{who: who, csrf: keyedMAC([]byte(ck.Value), "cert:"+admin.CertFingerprint(c.Cert))}, true
	}
	if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" {
		who, err := s.svc.Session(r.Context(), ck.Value)
		var e *admin.Error
		switch {
		case err == nil:
			return &consoleRequest{who: who, csrf: sessionCSRF(ck.Value)}, true
		case !errors.As(err, &e) || e.Kind != admin.Unauthenticated:
			s.consoleError(w, r, nil, err)
			return nil, false
		}
	}
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
	return nil, false
}

// checkCSRF refuses a form whose csrf field is not the request's token.
func checkCSRF(r *http.Request, want string) error {
	got := r.PostFormValue("csrf")
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return refuse(admin.Forbidden, "the form's CSRF token is missing or wrong; reload the page and send the form again")
	}
	return nil
}

// form is a console handler of an authenticated, CSRF-checked POST.
func (s *Server) form(h func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.consoleAuth(w, r)
		if !ok {
			return
		}
		if err := r.ParseForm(); err != nil {
			s.consoleError(w, r, c, refuse(admin.Malformed, "the form could not be read: %v", err))
			return
		}
		if err := checkCSRF(r, c.csrf); err != nil {
			s.svc.Refused(r.Context(), c.who, "console "+r.URL.Path, "CSRF token")
			s.consoleError(w, r, c, err)
			return
		}
		if err := h(w, r, c); err != nil {
			s.consoleError(w, r, c, err)
		}
	}
}

// view is a console handler of an authenticated GET.
func (s *Server) view(h func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.consoleAuth(w, r)
		if !ok {
			return
		}
		if err := h(w, r, c); err != nil {
			s.consoleError(w, r, c, err)
		}
	}
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return pages[name].Execute(w, p)
}

// consoleError shows err as an error page; an error that is no refusal is logged
// and shown as serverInternal, without its text.
func (s *Server) consoleError(w http.ResponseWriter, r *http.Request, c *consoleRequest, err error) {
	var e *admin.Error
	if !errors.As(err, &e) {
		s.log.ErrorContext(r.Context(), "admin: show the page", "err", err)
		e = &admin.Error{Kind: admin.Internal, Detail: "the server could not show the page; the error is in its log"}
	}
	status, typ := web.Problem(e.Kind)
	web.RetryAfter(w, e)
	p := page{Title: http.StatusText(status), Data: struct{ Type, Detail string }{typ, e.Detail}}
	if c != nil {
		p.Who, p.CSRF = c.who, c.csrf
	}
	s.render(w, status, "error", p)
}

func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /console/static/style.css", func(w http.ResponseWriter, r *http.Request) {
		b, _ := consoleFiles.ReadFile("static/style.css")
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Write(b)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/console/", http.StatusSeeOther) })
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		s.consoleError(w, r, nil, refuse(admin.NotFound, "there is no console page %s", r.URL.Path))
	})
	mux.HandleFunc("GET /console/login", s.loginPage)
	mux.HandleFunc("POST /console/login", s.login)
	mux.HandleFunc("POST /console/logout", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		cookie := ""
		if ck, err := r.Cookie(sessionCookie); err == nil {
			cookie = ck.Value
		}
		if err := s.svc.EndSession(r.Context(), c.who, cookie); err != nil {
			return err
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("GET /console/{$}", s.view(s.healthPage))
	mux.HandleFunc("GET /console/requests", s.view(s.requestsPage))
	mux.HandleFunc("POST /console/requests", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		in := admin.EABRequestInput{Organisation: r.PostFormValue("organisation"), Person: r.PostFormValue("person"),
			IdentifiedBy: r.PostFormValue("identified_by"), TechnicalContact: r.PostFormValue("technical_contact"),
			Domains: splitList(r.PostFormValue("domains")), Profiles: splitList(r.PostFormValue("profiles"))}
		req, err := s.svc.RequestEAB(r.Context(), c.who, in)
		if err != nil {
			return err
		}
		http.Redirect(w, r, "/console/requests/"+req.ID, http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("GET /console/requests/{id}", s.view(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		req, err := s.svc.EABRequest(r.Context(), c.who, r.PathValue("id"))
		if err != nil {
			return err
		}
		data := struct {
			Request admin.RequestView
			Key     *admin.KeyView
		}{Request: *req}
		if req.KID != "" {
			if data.Key, err = s.svc.EABKey(r.Context(), c.who, req.KID); err != nil {
				return err
			}
		}
		return s.render(w, http.StatusOK, "request", page{Who: c.who, CSRF: c.csrf, Title: "EAB request " + req.ID, Data: data})
	}))
	mux.HandleFunc("POST /console/requests/{id}/approve", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		if _, err := s.svc.Approve(r.Context(), c.who, r.PathValue("id")); err != nil {
			return err
		}
		http.Redirect(w, r, "/console/requests/"+r.PathValue("id"), http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("POST /console/requests/{id}/reject", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		if err := s.svc.Reject(r.Context(), c.who, r.PathValue("id"), r.PostFormValue("reason")); err != nil {
			return err
		}
		http.Redirect(w, r, "/console/requests/"+r.PathValue("id"), http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("POST /console/requests/{id}/key", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		h, err := s.svc.Handover(r.Context(), c.who, r.PathValue("id"))
		if err != nil {
			return err
		}
		return s.render(w, http.StatusOK, "key", page{Who: c.who, CSRF: c.csrf, Title: "EAB key " + h.KID, Data: h})
	}))
	mux.HandleFunc("POST /console/eab-keys/{kid}/revoke", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		_, err := s.svc.RevokeKey(r.Context(), c.who, r.PathValue("kid"), r.PostFormValue("reason"), r.PostFormValue("deactivate_accounts") == "on")
		if err != nil {
			return err
		}
		http.Redirect(w, r, "/console/organisations/"+url.PathEscape(r.PostFormValue("organisation")), http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("GET /console/organisations", s.view(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		list, err := s.svc.Organisations(r.Context(), c.who)
		if err != nil {
			return err
		}
		reg, err := s.svc.Register(r.Context(), c.who)
		if err != nil {
			return err
		}
		data := struct {
			Orgs     []admin.OrgSummary
			Register *admin.RegisterCopyView
		}{list, reg}
		return s.render(w, http.StatusOK, "organisations", page{Who: c.who, CSRF: c.csrf, Title: "Organisations", Data: data})
	}))
	mux.HandleFunc("GET /console/organisations/{oid}", s.view(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		v, err := s.svc.Organisation(r.Context(), c.who, r.PathValue("oid"))
		if err != nil {
			return err
		}
		return s.render(w, http.StatusOK, "organisation", page{Who: c.who, CSRF: c.csrf, Title: v.Name, Data: v})
	}))
	mux.HandleFunc("POST /console/organisations/{oid}/suspend", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		if err := s.svc.Suspend(r.Context(), c.who, r.PathValue("oid"), r.PostFormValue("reason")); err != nil {
			return err
		}
		http.Redirect(w, r, "/console/organisations/"+url.PathEscape(r.PathValue("oid")), http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("POST /console/organisations/{oid}/resume", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		if err := s.svc.Resume(r.Context(), c.who, r.PathValue("oid")); err != nil {
			return err
		}
		http.Redirect(w, r, "/console/organisations/"+url.PathEscape(r.PathValue("oid")), http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("GET /console/certificates", s.view(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		q := r.URL.Query()
		list, err := s.svc.Certificates(r.Context(), c.who, q.Get("serial"), q.Get("name"))
		if err != nil {
			return err
		}
		data := struct {
			Serial, Name string
			Certificates []admin.CertView
		}{q.Get("serial"), q.Get("name"), list}
		return s.render(w, http.StatusOK, "certificates", page{Who: c.who, CSRF: c.csrf, Title: "Certificates", Data: data})
	}))
	mux.HandleFunc("POST /console/certificates/{serial}/revoke", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		in, err := revokeInput(r)
		if err != nil {
			return err
		}
		if _, err := s.svc.RevokeCertificate(r.Context(), c.who, r.PathValue("serial"), in); err != nil {
			return err
		}
		http.Redirect(w, r, "/console/certificates?serial=0x"+url.QueryEscape(r.PathValue("serial")), http.StatusSeeOther)
		return nil
	}))
	// The organisation page's revocations: the same operation, back to the page.
	mux.HandleFunc("POST /console/organisations/{oid}/certificates/{serial}/revoke", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		in, err := revokeInput(r)
		if err != nil {
			return err
		}
		if _, err := s.svc.RevokeCertificate(r.Context(), c.who, r.PathValue("serial"), in); err != nil {
			return err
		}
		http.Redirect(w, r, "/console/organisations/"+url.PathEscape(r.PathValue("oid"))+"#cert-"+url.PathEscape(r.PathValue("serial")), http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("POST /console/organisations/{oid}/revoke", s.form(func(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
		in, err := revokeInput(r)
		if err != nil {
			return err
		}
		if _, err := s.svc.RevokeOrganisation(r.Context(), c.who, r.PathValue("oid"), in); err != nil {
			return err
		}
		http.Redirect(w, r, "/console/organisations/"+url.PathEscape(r.PathValue("oid")), http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("GET /console/audit", s.view(s.auditPage))
}

func (s *Server) requestsPage(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
	pending, err := s.svc.EABRequests(r.Context(), c.who, store.EABRequestRequested)
	if err != nil {
		return err
	}
	all, err := s.svc.EABRequests(r.Context(), c.who, "")
	if err != nil {
		return err
	}
	var decided []admin.RequestView
	for _, v := range all {
		if v.Status != store.EABRequestRequested {
			decided = append(decided, v)
		}
	}
	data := struct{ Pending, Decided []admin.RequestView }{pending, decided}
	return s.render(w, http.StatusOK, "requests", page{Who: c.who, CSRF: c.csrf, Title: "EAB requests", Data: data})
}

// loginPage shows the token login form with a login CSRF token: a random cookie
// and, in the form, a MAC keyed by that cookie.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if c := web.Credential(r); c.Cert != nil {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	nonce := randomCookie()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: nonce, Path: "/", MaxAge: 3600, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	s.render(w, http.StatusOK, "login", page{Title: "Log in", CSRF: s.loginMAC(nonce)})
}

// loginMAC is keyed by the login cookie's value, not by a key of this server, so
// the login form shown by one replica may be sent to another.
func (s *Server) loginMAC(nonce string) string { return keyedMAC([]byte(nonce), "login") }

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.consoleError(w, r, nil, refuse(admin.Malformed, "the form could not be read: %v", err))
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || checkCSRF(r, s.loginMAC(ck.Value)) != nil {
		s.consoleError(w, r, nil, refuse(admin.Forbidden, "the login form's CSRF token is missing or wrong; open the login page again"))
		return
	}
	who, err := s.svc.Authenticate(r.Context(), admin.Credential{Token: strings.TrimSpace(r.PostFormValue("token")), Source: web.Source(r)})
	var e *admin.Error
	switch {
	case errors.As(err, &e) && e.Kind == admin.RateLimited:
		web.RetryAfter(w, e)
		s.render(w, http.StatusTooManyRequests, "login", page{Title: "Log in", CSRF: s.loginMAC(ck.Value), Notice: "Too many refused logins: " + e.Detail + "."})
		return
	case errors.As(err, &e) && e.Kind == admin.Unauthenticated:
		s.render(w, http.StatusUnauthorized, "login", page{Title: "Log in", CSRF: s.loginMAC(ck.Value), Notice: "That token is not an operator's token."})
		return
	case err != nil:
		s.consoleError(w, r, nil, err)
		return
	}
	sess, err := s.svc.StartSession(r.Context(), who)
	if err != nil {
		s.consoleError(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.Cookie, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(sess.Lifetime / time.Second)})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// splitList reads a form field of names separated by commas or white space.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func refuse(kind admin.Kind, format string, args ...any) error {
	return &admin.Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// randomCookie is a cookie value of 256 random bits, base64url.
func randomCookie() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("console: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// stamp is an RFC 3339 time, "" for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
