package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
)

// TestStateChangesTakeJSONOnly: every state change of the API refuses, with 415
// and before the credential is looked at, what a page of another site can make a
// browser send without asking (a form, text/plain, a bodyless POST): nothing
// changes and nothing is recorded. Sent as JSON, the same call works, also
// without a body where the endpoint takes none.
func TestStateChangesTakeJSONOnly(t *testing.T) {
	f := newFixture(t, admin.Config{})
	for _, ep := range endpoints() {
		if ep.method == http.MethodGet {
			continue
		}
		who := roleOperator[ep.roles[len(ep.roles)-1]]
		for _, c := range []struct {
			name, contentType string
			body              func(json []byte) []byte
		}{
			{"a form", "application/x-www-form-urlencoded", func([]byte) []byte { return []byte("reason=test&deactivate_accounts=true") }},
			{"a multipart form", "multipart/form-data; boundary=x", func([]byte) []byte { return []byte("--x\r\n\r\n--x--\r\n") }},
			{"JSON sent as text/plain", "text/plain", func(j []byte) []byte { return j }},
			{"JSON with no content type", "", func(j []byte) []byte { return j }},
			{"no body and no content type", "", func([]byte) []byte { return nil }},
			{"JSON sent as application/jsonx", "application/jsonx", func(j []byte) []byte { return j }},
		} {
			t.Run(ep.method+" "+ep.pattern+" "+c.name, func(t *testing.T) {
				path, body := ep.call(f, who)
				j := []byte("{}")
				if body != nil {
					j, _ = json.Marshal(body)
				}
				h := http.Header{}
				if c.contentType != "" {
					h.Set("Content-Type", c.contentType)
				}
				snap, before := admintest.Snapshot(t, f.Path), f.LastSeq()
				r := f.DoRaw(who, ep.method, path, h, c.body(j))
				if r.Status != http.StatusUnsupportedMediaType || r.ProblemType() != "malformed" ||
					!strings.Contains(string(r.Body), "Content-Type: application/json") {
					t.Fatalf("%d %s, want 415 malformed saying to send application/json", r.Status, r.Body)
				}
				if admintest.Snapshot(t, f.Path) != snap || len(f.Events(before)) != 0 {
					t.Errorf("a refused request changed the database or the audit log:%s", admintest.Describe(f.Events(before)))
				}
			})
		}
	}
	// The endpoints that take no body take an empty one, or {}, as JSON.
	for _, body := range [][]byte{nil, []byte("{}"), []byte(" {} \n")} {
		id := f.Request("rita")
		h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
		if r := f.DoRaw("alice", "POST", "/admin/v1/eab-requests/"+id+"/approve", h, body); r.Status != http.StatusOK {
			t.Errorf("approve with body %q as JSON: %d %s", body, r.Status, r.Body)
		}
	}
	id := f.Request("rita")
	if r := f.DoRaw("alice", "POST", "/admin/v1/eab-requests/"+id+"/approve", http.Header{"Content-Type": {"application/json"}}, []byte(`{"x":1}`)); r.Status != http.StatusBadRequest {
		t.Errorf("approve with a body: %d %s, want 400", r.Status, r.Body)
	}
}

// TestCrossSiteRequestsAreRefused: a request a browser sends for a page of
// another site is refused on every endpoint, reading or changing, with a valid
// credential (carl's client certificate, as a browser holds it, or a token) and
// a valid JSON body: 403 before authentication, so nothing changes and nothing is
// recorded, not even a refused login of a wrong token.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	f := newFixture(t, admin.Config{})
	// web's TestSameOrigin covers each combination of headers; here each endpoint
	// meets the two a page of another site sends, with carl's certificate (the
	// finding: a browser holding it approves from another site), and a wrong
	// token, whose refused login must not be counted or recorded either.
	type call struct {
		name, who string
		header    http.Header
	}
	calls := []call{
		{"an Origin of another site as carl", "carl", http.Header{"Origin": {"https://evil.example"}}},
		{"Sec-Fetch-Site cross-site as carl", "carl", http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"an Origin of another site with a wrong token", "", http.Header{"Origin": {"https://evil.example"}, "Authorization": {"Bearer alice.wrong"}}},
		{"Sec-Fetch-Site same-site as alice", "alice", http.Header{"Sec-Fetch-Site": {"same-site"}, "Origin": {"https://127.0.0.1:14000"}}},
	}
	for _, ep := range endpoints() {
		for _, c := range calls {
			t.Run(ep.method+" "+ep.pattern+" "+c.name, func(t *testing.T) {
				path, body := ep.call(f, "alice")
				h := c.header.Clone()
				h.Set("Content-Type", "application/json")
				var raw []byte
				if body != nil {
					raw, _ = json.Marshal(body)
				}
				snap, before := admintest.Snapshot(t, f.Path), f.LastSeq()
				r := f.DoRaw(c.who, ep.method, path, h, raw)
				if r.Status != http.StatusForbidden || r.ProblemType() != "forbidden" || !strings.Contains(string(r.Body), "accepts requests only from its own pages") {
					t.Fatalf("%d %s, want 403 forbidden naming the cross-site request", r.Status, r.Body)
				}
				if admintest.Snapshot(t, f.Path) != snap || len(f.Events(before)) != 0 {
					t.Errorf("a cross-site request changed the database or the audit log:%s", admintest.Describe(f.Events(before)))
				}
			})
		}
	}
	// The same call from the listener's own origin works: the rule refuses
	// other sites, not browsers.
	id := f.Request("rita")
	h := http.Header{"Origin": {f.Srv.URL}, "Sec-Fetch-Site": {"same-origin"}, "Content-Type": {"application/json"}}
	if r := f.DoRaw("carl", "POST", "/admin/v1/eab-requests/"+id+"/approve", h, nil); r.Status != http.StatusOK {
		t.Fatalf("approval from the listener's own origin: %d %s", r.Status, r.Body)
	}
	// So does a link to a reading endpoint that another site showed.
	nav := http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"navigate"}, "Sec-Fetch-Dest": {"document"}}
	if r := f.DoRaw("carl", "GET", "/admin/v1/eab-requests/"+id, nav, nil); r.Status != http.StatusOK {
		t.Fatalf("a link from another site to a request: %d %s", r.Status, r.Body)
	}
}

// TestLoginLimitOnEveryReplica: wrong tokens sent to one server hold back their
// source on another server on the same database: 429 rateLimited with
// Retry-After, also for a correct token, until the window ends.
func TestLoginLimitOnEveryReplica(t *testing.T) {
	f := newFixture(t, admin.Config{Logins: admin.LoginLimits{PerSource: 5, PerCredential: 50}})
	g := f.Replica()
	bad := func(srv *admintest.Fixture, i int) admintest.Response {
		return srv.DoRaw("", "GET", "/admin/v1/whoami", http.Header{"Authorization": {fmt.Sprintf("Bearer nobody%d.wrong", i)}}, nil)
	}
	for i := range 5 {
		if r := bad(f, i); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong token %d on f: %d %s", i, r.Status, r.Body)
		}
	}
	for _, srv := range []*admintest.Fixture{g, f} {
		for _, r := range []admintest.Response{bad(srv, 99), srv.Do("rita", "GET", "/admin/v1/whoami", nil)} {
			if r.Status != http.StatusTooManyRequests || r.ProblemType() != "rateLimited" || r.Header.Get("Retry-After") == "" ||
				r.Header.Get("WWW-Authenticate") != "" {
				t.Fatalf("after 5 wrong tokens: %d %s %v, want 429 rateLimited with Retry-After", r.Status, r.Body, r.Header)
			}
			if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 15*60 {
				t.Fatalf("Retry-After %q, want 1 to 900 seconds", r.Header.Get("Retry-After"))
			}
		}
	}
	// Client certificates from the same source are not held back.
	if r := g.Do("carl", "GET", "/admin/v1/whoami", nil); r.Status != http.StatusOK {
		t.Fatalf("carl's certificate: %d %s", r.Status, r.Body)
	}
	f.Clock.Add(15 * time.Minute)
	if r := g.Do("rita", "GET", "/admin/v1/whoami", nil); r.Status != http.StatusOK {
		t.Fatalf("rita in the next window: %d %s", r.Status, r.Body)
	}
}
