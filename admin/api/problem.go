package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/strictjson"
)

// httpError is a refusal of the API itself that no admin.Kind describes: a body
// too large or of the wrong media type, no such endpoint or method.
type httpError struct {
	status int
	typ    string
	detail string
}

func (e *httpError) Error() string { return e.detail }

// problem writes err as an RFC 7807 problem document; an error that is no refusal
// is logged and shown as serverInternal, without its text.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	var status int
	var typ, detail string
	var he *httpError
	var e *admin.Error
	switch {
	case errors.As(err, &he):
		status, typ, detail = he.status, he.typ, he.detail
	case errors.As(err, &e):
		status, typ = web.Problem(e.Kind)
		detail = e.Detail
	default:
		s.log.ErrorContext(r.Context(), "admin: answer the request", "err", err)
		status, typ = web.Problem(admin.Internal)
		detail = "the server could not answer the request; the error is in its log"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="varmenne admin"`)
	}
	web.RetryAfter(w, err)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": web.ProblemPrefix + typ, "title": http.StatusText(status), "status": status, "detail": detail})
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

// jsonRequest refuses a request other than GET and HEAD whose Content-Type is not
// application/json.
func jsonRequest(r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return &httpError{http.StatusUnsupportedMediaType, "malformed", fmt.Sprintf(
			"send %s %s with Content-Type: application/json and a JSON body; an endpoint that takes no body takes {} or an empty body",
			r.Method, r.URL.Path)}
	}
	return nil
}

// decode reads a JSON body strictly: application/json, at most web.MaxBody bytes, no
// unknown members, one value.
func decode(r *http.Request, v any) error {
	if err := jsonRequest(r); err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &httpError{http.StatusRequestEntityTooLarge, "malformed", fmt.Sprintf("the body is larger than %d bytes", web.MaxBody)}
		}
		return malformed("the body could not be read")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformed("the body is not the JSON this endpoint takes: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed("the body holds more than one JSON value")
	}
	// Valid JSON may still hold a member twice, which parsers read differently.
	if err := strictjson.Check(body); err != nil {
		return malformed("the body %s", err)
	}
	return nil
}

// decodeEmpty accepts, as application/json, an empty body or an empty JSON
// object.
func decodeEmpty(r *http.Request) error {
	if err := jsonRequest(r); err != nil {
		return err
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return &httpError{http.StatusRequestEntityTooLarge, "malformed", fmt.Sprintf("the body is larger than %d bytes", web.MaxBody)}
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && string(t) != "{}" {
		return malformed("this endpoint takes {} or an empty body (as Content-Type: application/json)")
	}
	return nil
}

func malformed(format string, args ...any) error {
	return &admin.Error{Kind: admin.Malformed, Detail: fmt.Sprintf(format, args...)}
}
