package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/varmenne/varmenne/audit"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/store"
)

// newFixture is the API alone on the admin listener's handler, over the fixture's
// service.
func newFixture(t *testing.T, cfg admin.Config) *admintest.Fixture {
	return admintest.New(t, cfg, func(svc *admin.Service) http.Handler {
		return web.Handler(New(svc, nil).Handler(), http.NotFoundHandler(), nil)
	})
}

// roleOperator is the token operator of each role the role tests call as.
var roleOperator = map[string]string{"administrator": "alice", "registrar": "rita", "auditor": "aino"}

// endpoint is one API endpoint, how to call it as an operator and which roles may.
type endpoint struct {
	method, pattern string
	roles           []string
	ok              int
	// call makes what the call needs, fresh, for operator who and returns the
	// path and body.
	call func(f *admintest.Fixture, who string) (string, any)
}

var serialCounter = 0x0100

func endpoints() []endpoint {
	all := []string{"administrator", "registrar", "auditor"}
	reason := map[string]string{"reason": "test"}
	fixed := func(path string, body any) func(*admintest.Fixture, string) (string, any) {
		return func(*admintest.Fixture, string) (string, any) { return path, body }
	}
	return []endpoint{
		{"GET", "/admin/v1/whoami", all, 200, fixed("/admin/v1/whoami", nil)},
		{"GET", "/admin/v1/eab-requests", all, 200, fixed("/admin/v1/eab-requests?status=requested", nil)},
		{"POST", "/admin/v1/eab-requests", []string{"registrar", "administrator"}, 201, fixed("/admin/v1/eab-requests", admintest.RequestInput())},
		{"GET", "/admin/v1/eab-requests/{id}", all, 200, func(f *admintest.Fixture, _ string) (string, any) {
			return "/admin/v1/eab-requests/" + f.Request("rita"), nil
		}},
		{"POST", "/admin/v1/eab-requests/{id}/approve", []string{"administrator"}, 200, func(f *admintest.Fixture, _ string) (string, any) {
			return "/admin/v1/eab-requests/" + f.Request("rita") + "/approve", nil
		}},
		{"POST", "/admin/v1/eab-requests/{id}/reject", []string{"administrator"}, 200, func(f *admintest.Fixture, _ string) (string, any) {
			return "/admin/v1/eab-requests/" + f.Request("rita") + "/reject", reason
		}},
		{"POST", "/admin/v1/eab-requests/{id}/key", []string{"registrar", "administrator"}, 200, func(f *admintest.Fixture, who string) (string, any) {
			requester, approver := who, "bob"
			if who == "aino" {
				requester = "rita"
			}
			id, _ := f.Approved(requester, approver)
			return "/admin/v1/eab-requests/" + id + "/key", nil
		}},
		{"GET", "/admin/v1/eab-keys/{kid}", all, 200, func(f *admintest.Fixture, _ string) (string, any) {
			_, kid := f.Approved("rita", "bob")
			return "/admin/v1/eab-keys/" + kid, nil
		}},
		{"POST", "/admin/v1/eab-keys/{kid}/revoke", []string{"administrator"}, 200, func(f *admintest.Fixture, _ string) (string, any) {
			_, kid := f.Approved("rita", "bob")
			return "/admin/v1/eab-keys/" + kid + "/revoke", map[string]any{"reason": "test", "deactivate_accounts": true}
		}},
		{"GET", "/admin/v1/organisations", all, 200, fixed("/admin/v1/organisations", nil)},
		{"GET", "/admin/v1/organisations/{oid}", all, 200, fixed("/admin/v1/organisations/"+admintest.OrgOID, nil)},
		{"POST", "/admin/v1/organisations/{oid}/suspend", []string{"administrator"}, 200, func(f *admintest.Fixture, _ string) (string, any) {
			_ = f.St.ResumeOrganisation(f.Ctx, admintest.OrgOther)
			return "/admin/v1/organisations/" + admintest.OrgOther + "/suspend", reason
		}},
		{"POST", "/admin/v1/organisations/{oid}/resume", []string{"administrator"}, 200, func(f *admintest.Fixture, _ string) (string, any) {
			_ = f.St.SuspendOrganisation(f.Ctx, admintest.OrgOther, "bob", "test", f.Clock.Now())
			return "/admin/v1/organisations/" + admintest.OrgOther + "/resume", nil
		}},
		{"GET", "/admin/v1/certificates", all, 200, fixed("/admin/v1/certificates?name=www.apteekki.example", nil)},
		{"POST", "/admin/v1/certificates/{serial}/revoke", []string{"administrator"}, 200, func(f *admintest.Fixture, _ string) (string, any) {
			serialCounter++
			serial := fmt.Sprintf("%04x", serialCounter)
			f.Certificate(serial, "www.apteekki.example")
			return "/admin/v1/certificates/" + serial + "/revoke", admin.RevokeInput{Reason: "superseded", RequestedBy: "Maija", IdentifiedBy: "phone call back"}
		}},
		{"GET", "/admin/v1/audit", []string{"auditor"}, 200, fixed("/admin/v1/audit?after=0&limit=10", nil)},
	}
}

func TestEveryEndpointByRole(t *testing.T) {
	f := newFixture(t, admin.Config{})
	for _, ep := range endpoints() {
		for _, role := range []string{"administrator", "registrar", "auditor"} {
			allowed := slices.Contains(ep.roles, role)
			verdict := "refused"
			if allowed {
				verdict = "allowed"
			}
			t.Run(ep.method+" "+ep.pattern+" "+role+" "+verdict, func(t *testing.T) {
				who := roleOperator[role]
				path, body := ep.call(f, who)
				before := f.LastSeq()
				r := f.Do(who, ep.method, path, body)
				if allowed {
					if r.Status != ep.ok {
						t.Fatalf("%s as %s: %d %s, want %d", path, role, r.Status, r.Body, ep.ok)
					}
					return
				}
				if r.Status != http.StatusForbidden || r.ProblemType() != "forbidden" {
					t.Fatalf("%s as %s: %d %s, want 403 forbidden", path, role, r.Status, r.Body)
				}
				if !admintest.HasEvent(f.Events(before), who, "access.denied", "refused", "") {
					t.Errorf("the refused attempt is not in the audit log:%s", admintest.Describe(f.Events(before)))
				}
			})
		}
		t.Run(ep.method+" "+ep.pattern+" without credentials", func(t *testing.T) {
			path, body := ep.call(f, "rita")
			r := f.Do("", ep.method, path, body)
			if r.Status != http.StatusUnauthorized || r.ProblemType() != "unauthenticated" || r.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%d %s %v, want 401 unauthenticated with WWW-Authenticate", r.Status, r.Body, r.Header)
			}
		})
	}
}

func TestAuditLogCannotBeChangedThroughTheAPI(t *testing.T) {
	f := newFixture(t, admin.Config{})
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, who := range []string{"aino", "alice"} {
			r := f.Do(who, m, "/admin/v1/audit", map[string]string{"seq": "1"})
			if r.Status != http.StatusMethodNotAllowed || r.ProblemType() != "methodNotAllowed" || r.Header.Get("Allow") != "GET" {
				t.Errorf("%s /admin/v1/audit as %s: %d %s (Allow %q), want 405 with Allow: GET", m, who, r.Status, r.Body, r.Header.Get("Allow"))
			}
		}
	}
	var events []admin.EventView
	r := f.Do("aino", "GET", "/admin/v1/audit", nil)
	r.JSON(t, &events)
	if len(events) == 0 || events[0].Seq != 1 || events[0].Hash == "" {
		t.Fatalf("auditor reads %s", r.Body)
	}
}

func TestDualControl(t *testing.T) {
	t.Run("the requester cannot approve", func(t *testing.T) {
		f := newFixture(t, admin.Config{})
		var req admin.RequestView
		r := f.Do("alice", "POST", "/admin/v1/eab-requests", admintest.RequestInput())
		r.JSON(t, &req)
		if r.Status != http.StatusCreated || req.Status != "requested" || r.Header.Get("Location") != "/admin/v1/eab-requests/"+req.ID ||
			req.RequestedBy != "alice" || req.Person != "Maija Meikäläinen" || len(req.Domains) != 1 {
			t.Fatalf("new request: %d %s (Location %q)", r.Status, r.Body, r.Header.Get("Location"))
		}
		before := f.LastSeq()
		r = f.Do("alice", "POST", "/admin/v1/eab-requests/"+req.ID+"/approve", nil)
		if r.Status != http.StatusForbidden || r.ProblemType() != "dualControl" || !strings.Contains(string(r.Body), "another administrator") {
			t.Fatalf("self-approval: %d %s, want 403 dualControl", r.Status, r.Body)
		}
		if !admintest.HasEvent(f.Events(before), "alice", string(audit.ActEABApprove), "refused: dual control", req.ID) {
			t.Errorf("the refused approval is not in the audit log:%s", admintest.Describe(f.Events(before)))
		}
		var got admin.RequestView
		f.Do("bob", "GET", "/admin/v1/eab-requests/"+req.ID, nil).JSON(t, &got)
		if got.Status != "requested" {
			t.Fatalf("after a refused approval the request is %s", got.Status)
		}
		r = f.Do("carl", "POST", "/admin/v1/eab-requests/"+req.ID+"/approve", nil)
		if r.Status != 200 {
			t.Fatalf("another administrator (by client certificate): %d %s", r.Status, r.Body)
		}
		var k admin.KeyView
		r.JSON(t, &k)
		if k.ApprovedBy != "carl" || k.RequestedBy != "alice" || k.Status != "approved" || strings.Contains(string(r.Body), "hmac") {
			t.Fatalf("approval answer %s", r.Body)
		}
		r = f.Do("bob", "POST", "/admin/v1/eab-requests/"+req.ID+"/approve", nil)
		if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "already approved by carl") {
			t.Fatalf("second approval: %d %s, want 409 naming carl", r.Status, r.Body)
		}
	})
	t.Run("single control, when configured, lets the requester approve", func(t *testing.T) {
		f := newFixture(t, admin.Config{SingleControl: true})
		id := f.Request("alice")
		if r := f.Do("alice", "POST", "/admin/v1/eab-requests/"+id+"/approve", nil); r.Status != 200 {
			t.Fatalf("self-approval with single control: %d %s", r.Status, r.Body)
		}
	})
}

func TestHandoverOnce(t *testing.T) {
	f := newFixture(t, admin.Config{})
	id, kid := f.Approved("eservice", "alice")
	if r := f.Do("rita", "POST", "/admin/v1/eab-requests/"+id+"/key", nil); r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "only eservice") {
		t.Fatalf("another registrar fetching the key: %d %s, want 403", r.Status, r.Body)
	}
	r := f.Do("eservice", "POST", "/admin/v1/eab-requests/"+id+"/key", nil)
	var h admin.Handover
	r.JSON(t, &h)
	key, err := base64.RawURLEncoding.DecodeString(h.HMACKey)
	if r.Status != 200 || h.KID != kid || len(key) != 32 || h.Fingerprint != admin.Fingerprint(key) {
		t.Fatalf("first handover: %d %s", r.Status, r.Body)
	}
	if err != nil {
		t.Fatal(err)
	}
	r = f.Do("eservice", "POST", "/admin/v1/eab-requests/"+id+"/key", nil)
	if r.Status != http.StatusGone || r.ProblemType() != "gone" || !strings.Contains(string(r.Body), h.Fingerprint) || strings.Contains(string(r.Body), h.HMACKey) {
		t.Fatalf("second handover: %d %s, want 410 with the fingerprint only", r.Status, r.Body)
	}
	var k admin.KeyView
	f.Do("aino", "GET", "/admin/v1/eab-keys/"+kid, nil).JSON(t, &k)
	if k.Fingerprint != h.Fingerprint || k.HandedOver == "" {
		t.Fatalf("key view after the handover: %+v", k)
	}
	for _, e := range f.Events(0) {
		if strings.Contains(e.Object+e.Outcome, h.HMACKey) {
			t.Fatalf("the HMAC key is in the audit log: %+v", e)
		}
	}
	if !admintest.HasEvent(f.Events(0), "eservice", string(audit.ActEABHandover), "ok", h.Fingerprint) {
		t.Errorf("no handover event:%s", admintest.Describe(f.Events(0)))
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t, admin.Config{RequestLifetime: 48 * time.Hour, KeyLifetime: 24 * time.Hour})
	stale := f.Request("rita")
	_, unused := f.Approved("rita", "alice")
	f.Clock.Add(24 * time.Hour)
	fresh := f.Request("rita")
	if err := f.Svc.ExpireDue(f.Ctx); err != nil {
		t.Fatal(err)
	}
	var k admin.KeyView
	f.Do("alice", "GET", "/admin/v1/eab-keys/"+unused, nil).JSON(t, &k)
	if k.Status != store.EABExpired {
		t.Fatalf("key a day after approval with a 1-day lifetime: %s", k.Status)
	}
	f.Clock.Add(24 * time.Hour)
	r := f.Do("alice", "POST", "/admin/v1/eab-requests/"+stale+"/approve", nil)
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "expired") {
		t.Fatalf("approving a request past its lifetime before the sweep: %d %s, want 409 expired", r.Status, r.Body)
	}
	before := f.LastSeq()
	if err := f.Svc.ExpireDue(f.Ctx); err != nil {
		t.Fatal(err)
	}
	var got admin.RequestView
	f.Do("alice", "GET", "/admin/v1/eab-requests/"+stale, nil).JSON(t, &got)
	if got.Status != store.EABRequestExpired {
		t.Fatalf("stale request is %s, want expired", got.Status)
	}
	f.Do("alice", "GET", "/admin/v1/eab-requests/"+fresh, nil).JSON(t, &got)
	if got.Status != store.EABRequestRequested {
		t.Fatalf("a request one day old is %s, want requested", got.Status)
	}
	if !admintest.HasEvent(f.Events(before), "system", string(audit.ActEABExpire), "ok", "request="+stale) {
		t.Errorf("no expiry event:%s", admintest.Describe(f.Events(before)))
	}
}

func TestRequestRefusals(t *testing.T) {
	f := newFixture(t, admin.Config{})
	if err := f.St.SuspendOrganisation(f.Ctx, admintest.OrgOther, "bob", "unpaid", f.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	with := func(edit func(*admin.EABRequestInput)) admin.EABRequestInput {
		in := admintest.RequestInput()
		edit(&in)
		return in
	}
	tests := []struct {
		name   string
		body   any
		status int
		detail string
	}{
		{"an organisation not in the register", with(func(in *admin.EABRequestInput) { in.Organisation = "1.2.246.10.99.10.0" }), 404, "not in the register"},
		{"a suspended organisation", with(func(in *admin.EABRequestInput) { in.Organisation = admintest.OrgOther; in.Domains = nil }), 409, "suspended"},
		{"a domain the organisation does not administer", with(func(in *admin.EABRequestInput) { in.Domains = []string{"evil.example"} }), 400, "not among organisation"},
		{"an unknown profile", with(func(in *admin.EABRequestInput) { in.Profiles = []string{"sote-client"} }), 400, "is unknown; the profiles are sote-server"},
		{"no person", with(func(in *admin.EABRequestInput) { in.Person = " " }), 400, "person is required"},
		{"no identification", with(func(in *admin.EABRequestInput) { in.IdentifiedBy = "" }), 400, "identified_by is required"},
		{"an unknown member", map[string]string{"organisation": admintest.OrgOID, "approved": "yes"}, 400, "unknown field"},
		{"a body that is not an object", []int{1}, 400, "not the JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.Do("rita", "POST", "/admin/v1/eab-requests", tt.body)
			if r.Status != tt.status || !strings.Contains(string(r.Body), tt.detail) || r.ProblemType() == "" {
				t.Fatalf("%d %s, want %d problem saying %q", r.Status, r.Body, tt.status, tt.detail)
			}
		})
	}
	t.Run("a body that is not JSON by content type", func(t *testing.T) {
		req, _ := http.NewRequest("POST", f.Srv.URL+"/admin/v1/eab-requests", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+f.Tokens["rita"])
		req.Header.Set("Content-Type", "text/plain")
		resp, err := f.Srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("text/plain body: %d, want 415", resp.StatusCode)
		}
	})
	t.Run("a body over the limit", func(t *testing.T) {
		big := admintest.RequestInput()
		big.Person = strings.Repeat("x", web.MaxBody)
		if r := f.Do("rita", "POST", "/admin/v1/eab-requests", big); r.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d bytes: %d %s, want 413", web.MaxBody, r.Status, r.Body)
		}
	})
	t.Run("an unknown endpoint", func(t *testing.T) {
		if r := f.Do("alice", "GET", "/admin/v1/operators", nil); r.Status != 404 || r.ProblemType() != "noRoute" {
			t.Fatalf("%d %s, want 404 noRoute", r.Status, r.Body)
		}
	})
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, admin.Config{})
	whoami := func(c *http.Client, header string) (int, string) {
		req, _ := http.NewRequest("GET", f.Srv.URL+"/admin/v1/whoami", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var v struct{ Name, Role string }
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v.Name + "/" + v.Role
	}
	if code, got := whoami(f.CertClient, ""); code != 200 || got != "carl/administrator" {
		t.Fatalf("client certificate: %d %s", code, got)
	}
	if code, got := whoami(f.Srv.Client(), "Bearer "+f.Tokens["rita"]); code != 200 || got != "rita/registrar" {
		t.Fatalf("token: %d %s", code, got)
	}
	before := f.LastSeq()
	for _, h := range []string{"Bearer " + f.Tokens["rita"] + "x", "Bearer rita.", "Bearer nobody.abc", "Bearer carl.abc", "Basic cml0YTp4"} {
		if code, _ := whoami(f.Srv.Client(), h); code != 401 {
			t.Errorf("Authorization %q: %d, want 401", h, code)
		}
	}
	if !admintest.HasEvent(f.Events(before), "unknown", string(audit.ActOperatorLogin), "refused", "token of rita") {
		t.Errorf("refused token not audited:%s", admintest.Describe(f.Events(before)))
	}
	// A certificate from the operator CA that no operator holds (its key was
	// re-issued, say) is refused and recorded.
	_, certPEM, keyPEM, err := f.CA.IssueClientCert("mallory", "administrator", f.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, _ := tls.X509KeyPair(certPEM, keyPEM)
	if code, _ := whoami(f.ClientWithCert(pair), ""); code != 401 {
		t.Errorf("unregistered operator certificate: %d, want 401", code)
	}
	if !admintest.HasEvent(f.Events(before), "unknown", string(audit.ActOperatorLogin), "refused", "mallory") {
		t.Errorf("refused certificate not audited:%s", admintest.Describe(f.Events(before)))
	}
	// A certificate of another CA fails the TLS handshake.
	other := selfSigned(t, "carl")
	forced := f.ClientWithCert(other)
	// Sent whatever CAs the server names, as a hostile client would.
	forced.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &other, nil }
	if code, msg := whoami(forced, ""); code != 0 {
		t.Errorf("certificate of another CA: %d %s, want a failed handshake", code, msg)
	}
}

func selfSigned(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestOrganisationsAndCertificates(t *testing.T) {
	f := newFixture(t, admin.Config{})
	f.Certificate("0100000168f0a805c366b43b5de968c691fb", "www.apteekki.example")
	_, kid := f.Approved("rita", "alice")
	var v admin.OrgView
	f.Do("aino", "GET", "/admin/v1/organisations/"+admintest.OrgOID, nil).JSON(t, &v)
	if len(v.Certificates) != 1 || len(v.Accounts) != 1 || len(v.EABKeys) != 2 || len(v.EABRequests) != 1 || v.Register.Status != "active" || v.Register.Synced == "" {
		t.Fatalf("organisation view %+v", v)
	}
	for _, serial := range []string{"0100000168f0a805c366b43b5de968c691fb", "87112293252494463413683796322992020427259", "01:00:00:01:68:F0:A8:05:C3:66:B4:3B:5D:E9:68:C6:91:FB"} {
		var list []admin.CertView
		f.Do("rita", "GET", "/admin/v1/certificates?serial="+serial, nil).JSON(t, &list)
		if len(list) != 1 || list[0].SerialDecimal != "87112293252494463413683796322992020427259" {
			t.Errorf("serial %s finds %+v", serial, list)
		}
	}
	if r := f.Do("alice", "GET", "/admin/v1/certificates?serial=xyz", nil); r.Status != 400 {
		t.Errorf("bad serial: %d %s", r.Status, r.Body)
	}
	r := f.Do("alice", "POST", "/admin/v1/certificates/0100000168f0a805c366b43b5de968c691fb/revoke",
		admin.RevokeInput{Reason: "keyCompromise", RequestedBy: "Maija", IdentifiedBy: "call back"})
	var list []admin.CertView
	r.JSON(t, &list)
	if r.Status != 200 || len(list) != 1 || list[0].RevokeReason != "keyCompromise" {
		t.Fatalf("revocation: %d %s", r.Status, r.Body)
	}
	if r := f.Do("alice", "POST", "/admin/v1/certificates/0100000168f0a805c366b43b5de968c691fb/revoke",
		admin.RevokeInput{Reason: "keyCompromise", RequestedBy: "Maija", IdentifiedBy: "call back"}); r.Status != 409 {
		t.Fatalf("second revocation: %d %s, want 409", r.Status, r.Body)
	}
	if r := f.Do("alice", "POST", "/admin/v1/certificates/ab/revoke", admin.RevokeInput{Reason: "certificateHold", RequestedBy: "x", IdentifiedBy: "y"}); r.Status != 400 {
		t.Fatalf("certificateHold: %d %s, want 400", r.Status, r.Body)
	}
	r = f.Do("alice", "POST", "/admin/v1/eab-keys/"+kid+"/revoke", map[string]any{"reason": "lost"})
	if r.Status != 200 {
		t.Fatalf("key revocation: %d %s", r.Status, r.Body)
	}
	if r := f.Do("alice", "POST", "/admin/v1/eab-keys/"+kid+"/revoke", map[string]any{"reason": "lost"}); r.Status != 409 {
		t.Fatalf("second key revocation: %d %s, want 409", r.Status, r.Body)
	}
	if r := f.Do("alice", "POST", "/admin/v1/organisations/"+admintest.OrgOID+"/suspend", map[string]string{"reason": "contract ended"}); r.Status != 200 {
		t.Fatalf("suspend: %d %s", r.Status, r.Body)
	}
	if r := f.Do("alice", "POST", "/admin/v1/organisations/"+admintest.OrgOID+"/suspend", map[string]string{"reason": "again"}); r.Status != 409 {
		t.Fatalf("second suspend: %d %s, want 409", r.Status, r.Body)
	}
	var orgs []admin.OrgSummary
	f.Do("aino", "GET", "/admin/v1/organisations", nil).JSON(t, &orgs)
	sort.Slice(orgs, func(i, j int) bool { return orgs[i].OID < orgs[j].OID })
	if len(orgs) != 2 || !orgs[0].Suspended || orgs[1].Suspended {
		t.Fatalf("organisations %+v", orgs)
	}
	for _, action := range []string{string(audit.ActRevoke), string(audit.ActEABRevoke), string(audit.ActOrganisationSuspend)} {
		if !admintest.HasEvent(f.Events(0), "alice", action, "ok", "") {
			t.Errorf("no %s event by alice:%s", action, admintest.Describe(f.Events(0)))
		}
	}
}

// auditedEndpoints are the API's state changes and the audit actions one success
// records.
var auditedEndpoints = map[string][]audit.Action{
	"POST /admin/v1/eab-requests":                 {audit.ActEABRequest},
	"POST /admin/v1/eab-requests/{id}/approve":    {audit.ActEABApprove},
	"POST /admin/v1/eab-requests/{id}/reject":     {audit.ActEABReject},
	"POST /admin/v1/eab-requests/{id}/key":        {audit.ActEABHandover},
	"POST /admin/v1/eab-keys/{kid}/revoke":        {audit.ActEABRevoke},
	"POST /admin/v1/organisations/{oid}/suspend":  {audit.ActOrganisationSuspend},
	"POST /admin/v1/organisations/{oid}/resume":   {audit.ActOrganisationResume},
	"POST /admin/v1/certificates/{serial}/revoke": {audit.ActRevoke},
}

// TestEveryStateChangeIsAudited: through the API, each state change records
// exactly its audit actions, and when the audit log cannot be written it answers
// serverInternal and changes nothing.
func TestEveryStateChangeIsAudited(t *testing.T) {
	for _, ep := range endpoints() {
		key := ep.method + " " + ep.pattern
		want, audited := auditedEndpoints[key]
		if ep.method == "POST" && !audited {
			t.Errorf("%s changes state but is not in auditedEndpoints", key)
		}
		if !audited {
			continue
		}
		who := roleOperator[ep.roles[len(ep.roles)-1]] // the administrator where administrators may
		t.Run(key, func(t *testing.T) {
			f := newFixture(t, admin.Config{})
			path, body := ep.call(f, who)
			before := f.LastSeq()
			if r := f.Do(who, ep.method, path, body); r.Status != ep.ok {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			var got []audit.Action
			for _, e := range f.Events(before) {
				if e.Actor != who || e.Outcome != audit.OK {
					t.Errorf("event %+v: want one of %s, ok", e, who)
				}
				got = append(got, audit.Action(e.Action))
			}
			if !slices.Equal(got, want) {
				t.Errorf("actions %v, want %v", got, want)
			}
		})
		t.Run(key+" with the audit log down", func(t *testing.T) {
			f := newFixture(t, admin.Config{})
			path, body := ep.call(f, who)
			snap, before := admintest.Snapshot(t, f.Path), f.LastSeq()
			restore := admintest.AuditDown(t, f.Path)
			r := f.Do(who, ep.method, path, body)
			restore()
			if r.Status != http.StatusInternalServerError || r.ProblemType() != "serverInternal" {
				t.Fatalf("%d %s, want 500 serverInternal", r.Status, r.Body)
			}
			if admintest.Snapshot(t, f.Path) != snap || len(f.Events(before)) != 0 {
				t.Errorf("the database changed although the audit write failed")
			}
		})
	}
}

// TestBodiesWithAMemberTwiceAreRefused: a body that holds a member twice is read
// differently by different parsers; the API refuses it instead of acting on the last.
func TestBodiesWithAMemberTwiceAreRefused(t *testing.T) {
	f := newFixture(t, admin.Config{})
	id := f.Request("rita")
	r := f.Do("alice", "POST", "/admin/v1/eab-requests/"+id+"/reject", json.RawMessage(`{"reason":"no contract","reason":""}`))
	if r.Status != http.StatusBadRequest || r.ProblemType() != "malformed" || !strings.Contains(string(r.Body), `duplicate member \"reason\"`) {
		t.Fatalf("%d %s, want 400 malformed naming the duplicate member", r.Status, r.Body)
	}
	if req, err := f.St.GetEABRequest(f.Ctx, id); err != nil || req.Status != "requested" {
		t.Fatalf("the request after the refused body: %+v %v", req, err)
	}
}

// TestRevocationRecord: the API takes the request time and the invalidity date
// (RFC 5280: not after now, not before the certificate's notBefore) and the
// record names the door and the operator that received the request.
func TestRevocationRecord(t *testing.T) {
	f := newFixture(t, admin.Config{})
	now := f.Clock.Now().UTC().Truncate(time.Second)
	f.Certificate("0a01", "www.apteekki.example") // notBefore: now
	f.Clock.Add(48 * time.Hour)
	later := now.Add(48 * time.Hour)
	in := func(requested, invalid time.Time) admin.RevokeInput {
		return admin.RevokeInput{Reason: "keyCompromise", RequestedBy: "Maija", IdentifiedBy: "call back", RequestedAt: requested, InvalidityDate: invalid}
	}
	refused := []struct {
		name   string
		in     admin.RevokeInput
		detail string
	}{
		{"invalidity date in the future", in(time.Time{}, later.Add(time.Hour)), "is in the future"},
		{"invalidity date before notBefore", in(time.Time{}, now.Add(-time.Hour)), "before certificate 0a01 became valid"},
		{"request time in the future", in(later.Add(time.Hour), time.Time{}), "is in the future"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			r := f.Do("alice", "POST", "/admin/v1/certificates/0a01/revoke", tc.in)
			if r.Status != 400 || !strings.Contains(string(r.Body), tc.detail) {
				t.Fatalf("%d %s, want 400 saying %q", r.Status, r.Body, tc.detail)
			}
		})
	}
	if _, err := f.St.GetRevocation(f.Ctx, "0a01"); err == nil {
		t.Fatal("a refused request revoked the certificate")
	}
	requested, invalid := later.Add(-2*time.Hour), now.Add(time.Hour)
	r := f.Do("alice", "POST", "/admin/v1/certificates/0a01/revoke", in(requested, invalid))
	var list []admin.CertView
	r.JSON(t, &list)
	if r.Status != 200 || len(list) != 1 {
		t.Fatalf("revocation: %d %s", r.Status, r.Body)
	}
	got := list[0]
	if got.RevokeRequestedAt != requested.Format(time.RFC3339) || got.InvalidityDate != invalid.Format(time.RFC3339) ||
		got.RevokeReceivedBy != "admin API by alice" {
		t.Errorf("certificate view %+v: want requested %s, invalid since %s, received by admin API by alice", got, requested, invalid)
	}
	rec, err := f.St.GetRevocation(f.Ctx, "0a01")
	if err != nil || !rec.RequestedAt.Equal(requested) || !rec.InvalidityDate.Equal(invalid) || rec.ReceivedBy != "admin API by alice" {
		t.Errorf("stored record %+v, %v", rec, err)
	}
}
