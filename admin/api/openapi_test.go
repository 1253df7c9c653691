package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/admin"
)

// TestOpenAPIMatchesTheRoutes checks the OpenAPI document in the repository
// against the routes the server really has: every route is described with its
// method and roles, every described operation exists and answers (never the
// server's "no such endpoint" or "method not allowed"), and the document the
// server serves is the one in the repository.
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Roles     []string       `json:"x-roles"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	f := newFixture(t, admin.Config{})
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			described[strings.ToUpper(method)+" "+path] = true
			if len(op.Responses) == 0 {
				t.Errorf("%s %s has no responses", method, path)
			}
		}
	}
	routes := map[string]bool{"GET /admin/v1/openapi.json": true}
	for _, rt := range New(f.Svc, nil).Routes() {
		routes[rt.Method+" "+rt.Pattern] = true
	}
	for r := range routes {
		if !described[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range described {
		if !routes[d] {
			t.Errorf("openapi.json describes %s, which the server does not have", d)
		}
	}
	// The roles the document states are the ones the role test proves.
	for _, ep := range endpoints() {
		op := doc.Paths[ep.pattern][strings.ToLower(ep.method)]
		got, want := slices.Clone(op.Roles), slices.Clone(ep.roles)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s %s: openapi.json says roles %v, the server allows %v", ep.method, ep.pattern, got, want)
		}
	}
	if len(endpoints())+1 != len(routes) {
		t.Errorf("the role test covers %d endpoints of %d routes", len(endpoints()), len(routes)-1)
	}
	// Each described operation reaches a handler of the real server.
	for _, ep := range endpoints() {
		path, body := ep.call(f, "alice")
		r := f.Do("alice", ep.method, path, body)
		if typ := r.ProblemType(); typ == "noRoute" || typ == "methodNotAllowed" {
			t.Errorf("%s %s answers %d %s", ep.method, path, r.Status, r.Body)
		}
	}
	r := f.Do("", "GET", "/admin/v1/openapi.json", nil)
	if r.Status != http.StatusOK || string(r.Body) != string(openAPI) {
		t.Errorf("GET /admin/v1/openapi.json: %d, not the repository's document", r.Status)
	}
}
