// Package server is varmenne's ACME HTTP front end: routes, body limits, content types,
// the linear JWS check (parse, key, signature, nonce, url) and RFC 7807 rendering.
// It owns URLs and HTTP types; every business rule lives in acme/authority.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/gorilla/mux"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/internal/metrics"
	"github.com/varmenne/varmenne/store"
)

// Paths below the base URL.
const (
	DirectoryPath  = "/acme/directory"
	newNoncePath   = "/acme/new-nonce"
	newAccountPath = "/acme/new-account"
	newOrderPath   = "/acme/new-order"
	revokeCertPath = "/acme/revoke-cert"
	keyChangePath  = "/acme/key-change"
	accountPath    = "/acme/account/"
	orderPath      = "/acme/order/"
	authzPath      = "/acme/authz/"
	challengePath  = "/acme/chall/"
	certPath       = "/acme/cert/"

	// RenewalInfoPath is the base of ACME Renewal Information (RFC 9773), read with GET.
	RenewalInfoPath = "/acme/renewal-info/"
)

// DefaultMaxBody caps every request body (go-jose CVE-2025-27144: never parse unbounded input).
const DefaultMaxBody = 64 << 10

// Nonces issues and redeems replay nonces. An error that is not an *acme.Error
// (the shared nonce store is unreachable) is answered as serverInternal.
type Nonces interface {
	Issue(ctx context.Context) (string, error)
	Redeem(ctx context.Context, nonce string) error
}

// nonceTimeout bounds issuing a nonce, which may write to the database.
const nonceTimeout = 5 * time.Second

// Config of the front end.
type Config struct {
	BaseURL        string // scheme://host[:port] clients reach the server at, no trailing slash
	TermsOfService string
	Website        string
	MaxBody        int64 // default DefaultMaxBody
	// CAAIdentities are the domain names CAA records name this CA by (RFC 8659),
	// announced in the directory's meta.caaIdentities.
	CAAIdentities []string
	// ChaosRejectNonces, for tests only, is the share (0..1) of otherwise valid nonces
	// refused with badNonce, as Pebble's PEBBLE_WFE_NONCEREJECT, so that clients' retry
	// paths run. 0 in production. The refusals are spread evenly, not drawn at
	// random: at 0.1 exactly every tenth valid nonce is refused, so that at a share of
	// at most one half no nonce is refused twice in a row on one server and a test of
	// a client that retries once is as reproducible as one of a client that never
	// retries.
	ChaosRejectNonces float64
	// OnProblem, if set, is told the kind of every problem document sent (the
	// alert hook counts the unauthorized ones); it must not block.
	OnProblem func(kind acme.ErrorKind)
	// Metrics counts every request by endpoint, status and problem type; nil: none.
	Metrics *metrics.Metrics
}

// Server serves the ACME API.
type Server struct {
	cfg    Config
	auth   *authority.Authority
	nonces Nonces
	log    *slog.Logger
	// chaosSeen counts the valid nonces redeemed while ChaosRejectNonces is set.
	chaosSeen atomic.Uint64
}

// New makes a Server.
func New(cfg Config, auth *authority.Authority, nonces Nonces, log *slog.Logger) *Server {
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, auth: auth, nonces: nonces, log: log}
}

// DirectoryURL is where clients start.
func (s *Server) DirectoryURL() string { return s.url(DirectoryPath) }

func (s *Server) url(path string) string { return s.cfg.BaseURL + path }

// getMethods are the methods of the resources read with GET, for the Allow header.
var getMethods = map[string]string{
	DirectoryPath: http.MethodGet,
	newNoncePath:  http.MethodGet + ", " + http.MethodHead,
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	// A path like /acme//new-order is not ours: answer 404 with a problem, not the
	// router's 301 to the cleaned path, which has no nonce and no problem document.
	r.SkipClean(true)
	r.HandleFunc(DirectoryPath, s.directory).Methods(http.MethodGet)
	r.HandleFunc(newNoncePath, s.newNonce).Methods(http.MethodGet, http.MethodHead)
	r.Handle(newAccountPath, s.post(jwkOnly, s.newAccount))
	r.Handle(newOrderPath, s.post(kidOnly, s.newOrder))
	r.Handle(revokeCertPath, s.post(kidOrJWK, s.revokeCert))
	r.Handle(keyChangePath, s.post(kidOnly, s.keyChange))
	r.Handle(accountPath+"{id}", s.post(kidOnly, s.account))
	r.Handle(accountPath+"{id}/orders", s.post(kidOnly, s.orders))
	r.Handle(orderPath+"{id}", s.post(kidOnly, s.order))
	r.Handle(orderPath+"{id}/finalize", s.post(kidOnly, s.finalize))
	r.Handle(authzPath+"{id}", s.post(kidOnly, s.authorization))
	r.Handle(challengePath+"{id}", s.post(kidOnly, s.challenge))
	r.Handle(certPath+"{serial}", s.post(kidOnly, s.certificate))
	r.Handle(certPath+"{serial}/alt/{alt}", s.post(kidOnly, s.certificate))
	r.HandleFunc(RenewalInfoPath+"{certid}", s.renewalInfo).Methods(http.MethodGet) // renewal.go
	// The router refuses a method only on the GET resources; POST ones refuse in post.
	// Error responses carry a nonce too (RFC 8555 section 6.5).
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = s.addNonce(w) // without a nonce store, the problem goes without a nonce
		allow := getMethods[r.URL.Path]
		if strings.HasPrefix(r.URL.Path, RenewalInfoPath) {
			allow = http.MethodGet
		}
		if allow == "" {
			allow = http.MethodPost
		}
		w.Header().Set("Allow", allow)
		s.problem(w, r, acme.Errorf(acme.Malformed, "%s is not allowed here; use %s", r.Method, allow).WithStatus(http.StatusMethodNotAllowed))
	})
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = s.addNonce(w)
		s.problem(w, r, acme.Errorf(acme.Malformed, "no such resource: %s", r.URL.Path).WithStatus(http.StatusNotFound))
	})
	return s.logRequests(r)
}

// problem renders err as an RFC 7807 document. An error that is not an *acme.Error is a
// bug or an outage: the client gets a generic serverInternal, the log gets the detail.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	ae, ok := acme.AsError(err)
	if !ok {
		s.log.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "err", err)
		ae = acme.Errorf(acme.ServerInternal, "the server failed to handle the request; try again later")
	}
	if ae.Location != "" {
		w.Header().Set("Location", s.url(accountPath+ae.Location))
	}
	if ae.RetryAfter > 0 {
		// Whole seconds, rounded up: a client that waits this long is not refused again.
		w.Header().Set("Retry-After", strconv.FormatInt(int64((ae.RetryAfter+time.Second-1)/time.Second), 10))
	}
	if rec, ok := w.(*statusRecorder); ok {
		rec.problem = string(ae.Kind)
	}
	if s.cfg.OnProblem != nil {
		s.cfg.OnProblem(ae.Kind)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(ae.HTTPStatus())
	_ = json.NewEncoder(w).Encode(ae.Problem())
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// addNonce gives every response a fresh nonce and the directory link (RFC 8555 6.5, 7.1).
// It fails only when no nonce can be issued (database outage); error responses
// then go without one.
func (s *Server) addNonce(w http.ResponseWriter) error {
	ctx, cancel := context.WithTimeout(context.Background(), nonceTimeout)
	defer cancel()
	n, err := s.nonces.Issue(ctx)
	if err == nil {
		w.Header().Set("Replay-Nonce", n)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Link", `<`+s.DirectoryURL()+`>;rel="index"`)
	return err
}

func (s *Server) directory(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, acme.Directory{
		NewNonce:   s.url(newNoncePath),
		NewAccount: s.url(newAccountPath),
		NewOrder:   s.url(newOrderPath),
		RevokeCert: s.url(revokeCertPath),
		KeyChange:  s.url(keyChangePath),
		Meta: acme.DirectoryMeta{
			TermsOfService:          s.cfg.TermsOfService,
			Website:                 s.cfg.Website,
			CAAIdentities:           s.cfg.CAAIdentities,
			ExternalAccountRequired: true,
			Profiles:                s.auth.Profiles(),
		},
		RenewalInfo: strings.TrimSuffix(s.url(RenewalInfoPath), "/"),
	})
}

func (s *Server) newNonce(w http.ResponseWriter, r *http.Request) {
	if err := s.addNonce(w); err != nil {
		s.problem(w, r, err)
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// keyRule says whether a resource is signed with an account's kid, a jwk, or either.
type keyRule int

const (
	kidOnly keyRule = iota
	jwkOnly
	kidOrJWK
)

// request is an authenticated POST.
type request struct {
	payload []byte
	account *store.Account   // when signed with kid
	jwk     *jose.JSONWebKey // when signed with jwk
	url     string
	// received is when the server received the request (a revocation's request time).
	received time.Time
}

type postHandler func(w http.ResponseWriter, r *http.Request, req *request) error

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

// post is the linear request check, top to bottom: method, content type, size, JWS
// structure, key (jwk or kid), signature, nonce, url. A bad signature never consumes
// the nonce, so a client's retry is not punished for an attacker's replay.
func (s *Server) post(rule keyRule, h postHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		if err := s.addNonce(w); err != nil {
			s.problem(w, r, err)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			s.problem(w, r, acme.Errorf(acme.Malformed, "%s is not allowed here: ACME resources are read with POST-as-GET", r.Method).WithStatus(http.StatusMethodNotAllowed))
			return
		}
		req, err := s.authenticate(w, r, rule)
		if err == nil {
			req.received = received
			err = h(w, r, req)
		}
		if err != nil {
			s.problem(w, r, err)
		}
	})
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, rule keyRule) (*request, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/jose+json" {
		return nil, acme.Errorf(acme.Malformed, "Content-Type must be application/jose+json, not %q", r.Header.Get("Content-Type")).WithStatus(http.StatusUnsupportedMediaType)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, acme.Errorf(acme.Malformed, "the request body is larger than %d bytes", s.cfg.MaxBody).WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, acme.Errorf(acme.Malformed, "the request body could not be read")
	}
	msg, err := jws.Parse(body)
	if err != nil {
		return nil, err
	}
	req := &request{url: s.cfg.BaseURL + r.RequestURI}
	key := msg.JWK
	switch {
	case msg.KID != "" && rule == jwkOnly:
		return nil, acme.Errorf(acme.Malformed, "this request must be signed with a jwk, not a kid")
	case msg.JWK != nil && rule == kidOnly:
		return nil, acme.Errorf(acme.Malformed, "this request must be signed with the account's kid, not a jwk")
	case msg.KID != "":
		id, ok := strings.CutPrefix(msg.KID, s.url(accountPath))
		if !ok || !idPattern.MatchString(id) {
			return nil, acme.Errorf(acme.Malformed, "kid %q is not an account URL of this server", msg.KID)
		}
		if req.account, err = s.auth.Account(r.Context(), id); err != nil {
			return nil, err
		}
		if key, err = authority.AccountKey(req.account); err != nil {
			return nil, err
		}
	default:
		req.jwk = msg.JWK
	}
	if req.payload, err = msg.Verify(key); err != nil {
		return nil, err
	}
	if err := s.nonces.Redeem(r.Context(), msg.Nonce); err != nil {
		return nil, err
	}
	if s.chaosRefuses() {
		return nil, acme.Errorf(acme.BadNonce, "the nonce was refused on purpose (test-only --chaos-reject-nonces); retry with the nonce in this response")
	}
	if msg.URL != req.url {
		return nil, acme.Errorf(acme.Malformed, "the JWS url %q does not match the request URL %q", msg.URL, req.url)
	}
	return req, nil
}

// chaosRefuses tells whether the test-only chaos knob refuses the nonce just redeemed:
// the n-th valid nonce is refused when floor(n·share) grows, so the refusals are the
// configured share, evenly spread.
func (s *Server) chaosRefuses() bool {
	share := s.cfg.ChaosRejectNonces
	if share <= 0 {
		return false
	}
	n := s.chaosSeen.Add(1)
	return math.Floor(float64(n)*share) > math.Floor(float64(n-1)*share)
}

// postAsGet refuses a payload where only POST-as-GET (empty payload) is meaningful.
func postAsGet(req *request) error {
	if len(req.payload) != 0 {
		return acme.Errorf(acme.Malformed, "this resource is read with POST-as-GET: the payload must be empty, not %q", truncate(string(req.payload), 32))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// statusRecorder remembers what a handler answered, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	problem string
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// logRequests writes one event per request with its outcome.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status, "ms", time.Since(start).Milliseconds()}
		if rec.problem != "" {
			attrs = append(attrs, "problem", rec.problem)
		}
		s.log.InfoContext(r.Context(), "request", attrs...)
		s.cfg.Metrics.ACMERequest(endpointOf(r.URL.Path), rec.status, rec.problem, time.Since(start))
	})
}

// endpointOf names the resource a path is, for the metrics: one of a fixed set,
// never an id or a serial.
func endpointOf(path string) string {
	for _, e := range []struct{ prefix, name string }{
		{DirectoryPath, "directory"}, {newNoncePath, "new-nonce"}, {newAccountPath, "new-account"},
		{newOrderPath, "new-order"}, {revokeCertPath, "revoke-cert"}, {keyChangePath, "key-change"},
		{accountPath, "account"}, {orderPath, "order"}, {authzPath, "authz"}, {challengePath, "challenge"},
		{certPath, "certificate"}, {RenewalInfoPath, "renewal-info"},
	} {
		rest, ok := strings.CutPrefix(path, e.prefix)
		switch {
		case !ok:
			continue
		case e.prefix[len(e.prefix)-1] != '/': // a fixed resource: the whole path
			if rest == "" {
				return e.name
			}
		case e.name == "account" && strings.HasSuffix(rest, "/orders"):
			return "orders"
		case e.name == "order" && strings.HasSuffix(rest, "/finalize"):
			return "finalize"
		default:
			return e.name
		}
	}
	return "other"
}
