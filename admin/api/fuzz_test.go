package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/store"
	"github.com/varmenne/varmenne/strictjson"
)

// errDecoded ends a request once the route has handed the service what it decoded.
var errDecoded = errors.New("decoded")

// recorder is the service as the routes that take a body see it: it keeps what
// the route decoded and stops there. Only the POST routes are fuzzed; the others
// would reach the nil Service.
type recorder struct {
	Service
	got any
}

type revokeKeyInput struct {
	Reason             string `json:"reason"`
	DeactivateAccounts bool   `json:"deactivate_accounts"`
}

type reasonInput struct {
	Reason string `json:"reason"`
}

type noInput struct{}

func (s *recorder) RequestEAB(_ context.Context, _ *store.Operator, in admin.EABRequestInput) (*admin.RequestView, error) {
	s.got = in
	return nil, errDecoded
}
func (s *recorder) Approve(context.Context, *store.Operator, string) (*admin.KeyView, error) {
	s.got = noInput{}
	return nil, errDecoded
}
func (s *recorder) Reject(_ context.Context, _ *store.Operator, _, reason string) error {
	s.got = reasonInput{reason}
	return errDecoded
}
func (s *recorder) Handover(context.Context, *store.Operator, string) (*admin.Handover, error) {
	s.got = noInput{}
	return nil, errDecoded
}
func (s *recorder) RevokeKey(_ context.Context, _ *store.Operator, _, reason string, deactivate bool) ([]string, error) {
	s.got = revokeKeyInput{reason, deactivate}
	return nil, errDecoded
}
func (s *recorder) Suspend(_ context.Context, _ *store.Operator, _, reason string) error {
	s.got = reasonInput{reason}
	return errDecoded
}
func (s *recorder) Resume(context.Context, *store.Operator, string) error {
	s.got = noInput{}
	return errDecoded
}
func (s *recorder) RevokeCertificate(_ context.Context, _ *store.Operator, _ string, in admin.RevokeInput) (*store.Revocation, error) {
	s.got = in
	return nil, errDecoded
}

// FuzzBody fuzzes the JSON body of every POST route of the API, through the
// route's own handler, as web.Handler delivers it (application/json, capped at
// web.MaxBody). Properties: a body the route refuses is malformed (400) or too
// large (413) and never reaches the service; a body that reaches it is valid JSON
// without a duplicate member, and what the service got, encoded again and sent
// through the same route, reaches it unchanged; a route that takes no body passes
// on only an empty body or {}. Seeds: testdata/fuzz/FuzzBody.
func FuzzBody(f *testing.F) {
	svc := &recorder{}
	var routes []Route
	index := map[string]uint8{}
	for _, rt := range New(svc, nil).Routes() {
		if rt.Method == http.MethodPost {
			index[rt.Pattern] = uint8(len(routes))
			routes = append(routes, rt)
		}
	}
	for pattern, body := range map[string]any{
		"/admin/v1/eab-requests":                 admintest.RequestInput(),
		"/admin/v1/certificates/{serial}/revoke": admin.RevokeInput{Reason: "keyCompromise", RequestedBy: "Maija", IdentifiedBy: "call back", Note: "laptop stolen"},
		"/admin/v1/eab-requests/{id}/reject":     reasonInput{"test"},
		"/admin/v1/organisations/{oid}/suspend":  reasonInput{"contract ended"},
		"/admin/v1/eab-keys/{kid}/revoke":        revokeKeyInput{"left the organisation", true},
		"/admin/v1/eab-requests/{id}/approve":    struct{}{},
		"/admin/v1/organisations/{oid}/resume":   nil,
	} {
		i, ok := index[pattern]
		if !ok {
			f.Fatalf("no POST route %s", pattern)
		}
		b := []byte{}
		if body != nil {
			var err error
			if b, err = json.Marshal(body); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(i, b)
	}
	f.Add(index["/admin/v1/eab-requests"], []byte(`{"organisation":"1.2.246.10.12345678.10.0","Organisation":"1.2.246.10.87654321.10.0"}`))

	who := &store.Operator{Name: "alice", Role: "administrator"}
	send := func(rt Route, body []byte) (any, error) {
		r := httptest.NewRequest(http.MethodPost, "/admin/v1/fuzz", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(w, r.Body, web.MaxBody)
		for _, name := range []string{"id", "kid", "oid", "serial"} {
			r.SetPathValue(name, "x")
		}
		svc.got = nil
		err := rt.handle(w, r, who)
		return svc.got, err
	}

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := routes[int(which)%len(routes)]
		got, err := send(rt, body)
		if got == nil {
			var ae *admin.Error
			var he *httpError
			switch {
			case errors.Is(err, errDecoded) || err == nil:
				t.Fatalf("%s: the route answered without asking the service", rt.Pattern)
			case errors.As(err, &ae) && ae.Kind == admin.Malformed:
			case errors.As(err, &he) && he.status == http.StatusRequestEntityTooLarge:
			default:
				t.Fatalf("%s refused %q with %T %v, want malformed or 413", rt.Pattern, body, err, err)
			}
			return
		}
		if !errors.Is(err, errDecoded) {
			t.Fatalf("%s: %v after the service", rt.Pattern, err)
		}
		if _, empty := got.(noInput); empty {
			if b := bytes.TrimSpace(body); len(b) > 0 && string(b) != "{}" {
				t.Fatalf("%s, which takes no body, passed on %q", rt.Pattern, body)
			}
			return
		}
		if len(body) > web.MaxBody || !json.Valid(body) || strictjson.Check(body) != nil {
			t.Fatalf("%s passed on %q", rt.Pattern, body)
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		got2, err := send(rt, again)
		if !errors.Is(err, errDecoded) {
			t.Fatalf("%s refused its own input encoded again, %s: %v", rt.Pattern, again, err)
		}
		if a, b := mustJSON(t, got), mustJSON(t, got2); !bytes.Equal(a, b) || reflect.TypeOf(got) != reflect.TypeOf(got2) {
			t.Fatalf("%s: %s decoded as %s, then as %s", rt.Pattern, body, a, b)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
