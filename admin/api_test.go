package admin

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
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// roleOperator is the token operator of each role the role tests call as.
var roleOperator = map[string]string{"administrator": "alice", "registrar": "rita", "auditor": "aino"}

// endpoint is one API endpoint, how to call it as an operator and which roles may.
type endpoint struct {
	method, pattern string
	roles           []string
	ok              int
	// call makes what the call needs, fresh, for operator who and returns the
	// path and body.
	call func(f *fixture, who string) (string, any)
}

var serialCounter = 0x0100

func endpoints() []endpoint {
	all := []string{"administrator", "registrar", "auditor"}
	reason := map[string]string{"reason": "test"}
	fixed := func(path string, body any) func(*fixture, string) (string, any) {
		return func(*fixture, string) (string, any) { return path, body }
	}
	return []endpoint{
		{"GET", "/admin/v1/whoami", all, 200, fixed("/admin/v1/whoami", nil)},
		{"GET", "/admin/v1/eab-requests", all, 200, fixed("/admin/v1/eab-requests?status=requested", nil)},
		{"POST", "/admin/v1/eab-requests", []string{"registrar", "administrator"}, 201, fixed("/admin/v1/eab-requests", requestInput())},
		{"GET", "/admin/v1/eab-requests/{id}", all, 200, func(f *fixture, _ string) (string, any) {
			return "/admin/v1/eab-requests/" + f.request("rita"), nil
		}},
		{"POST", "/admin/v1/eab-requests/{id}/approve", []string{"administrator"}, 200, func(f *fixture, _ string) (string, any) {
			return "/admin/v1/eab-requests/" + f.request("rita") + "/approve", nil
		}},
		{"POST", "/admin/v1/eab-requests/{id}/reject", []string{"administrator"}, 200, func(f *fixture, _ string) (string, any) {
			return "/admin/v1/eab-requests/" + f.request("rita") + "/reject", reason
		}},
		{"POST", "/admin/v1/eab-requests/{id}/key", []string{"registrar", "administrator"}, 200, func(f *fixture, who string) (string, any) {
			requester, approver := who, "bob"
			if who == "aino" {
				requester = "rita"
			}
			id, _ := f.approved(requester, approver)
			return "/admin/v1/eab-requests/" + id + "/key", nil
		}},
		{"GET", "/admin/v1/eab-keys/{kid}", all, 200, func(f *fixture, _ string) (string, any) {
			_, kid := f.approved("rita", "bob")
			return "/admin/v1/eab-keys/" + kid, nil
		}},
		{"POST", "/admin/v1/eab-keys/{kid}/revoke", []string{"administrator"}, 200, func(f *fixture, _ string) (string, any) {
			_, kid := f.approved("rita", "bob")
			return "/admin/v1/eab-keys/" + kid + "/revoke", map[string]any{"reason": "test", "deactivate_accounts": true}
		}},
		{"GET", "/admin/v1/organisations", all, 200, fixed("/admin/v1/organisations", nil)},
		{"GET", "/admin/v1/organisations/{oid}", all, 200, fixed("/admin/v1/organisations/"+orgOID, nil)},
		{"POST", "/admin/v1/organisations/{oid}/suspend", []string{"administrator"}, 200, func(f *fixture, _ string) (string, any) {
			_ = f.st.ResumeOrganisation(f.ctx, orgOther)
			return "/admin/v1/organisations/" + orgOther + "/suspend", reason
		}},
		{"POST", "/admin/v1/organisations/{oid}/resume", []string{"administrator"}, 200, func(f *fixture, _ string) (string, any) {
			_ = f.st.SuspendOrganisation(f.ctx, orgOther, "bob", "test", f.clock.Now())
			return "/admin/v1/organisations/" + orgOther + "/resume", nil
		}},
		{"GET", "/admin/v1/certificates", all, 200, fixed("/admin/v1/certificates?name=www.apteekki.example", nil)},
		{"POST", "/admin/v1/certificates/{serial}/revoke", []string{"administrator"}, 200, func(f *fixture, _ string) (string, any) {
			serialCounter++
			serial := fmt.Sprintf("%04x", serialCounter)
			f.certificate(serial, "www.apteekki.example")
			return "/admin/v1/certificates/" + serial + "/revoke", RevokeInput{Reason: "superseded", RequestedBy: "Maija", IdentifiedBy: "phone call back"}
		}},
		{"GET", "/admin/v1/audit", []string{"auditor"}, 200, fixed("/admin/v1/audit?after=0&limit=10", nil)},
	}
}

func TestEveryEndpointByRole(t *testing.T) {
	f := newFixture(t, Config{})
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
				before := f.lastSeq()
				r := f.do(who, ep.method, path, body)
				if allowed {
					if r.status != ep.ok {
						t.Fatalf("%s as %s: %d %s, want %d", path, role, r.status, r.body, ep.ok)
					}
					return
				}
				if r.status != http.StatusForbidden || r.problemType() != TypeForbidden {
					t.Fatalf("%s as %s: %d %s, want 403 forbidden", path, role, r.status, r.body)
				}
				if !hasEvent(f.events(before), who, "access.denied", "refused", "") {
					t.Errorf("the refused attempt is not in the audit log:%s", describe(f.events(before)))
				}
			})
		}
		t.Run(ep.method+" "+ep.pattern+" without credentials", func(t *testing.T) {
			path, body := ep.call(f, "rita")
			r := f.do("", ep.method, path, body)
			if r.status != http.StatusUnauthorized || r.problemType() != TypeUnauthenticated || r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%d %s %v, want 401 unauthenticated with WWW-Authenticate", r.status, r.body, r.header)
			}
		})
	}
}

func TestAuditLogCannotBeChangedThroughTheAPI(t *testing.T) {
	f := newFixture(t, Config{})
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, who := range []string{"aino", "alice"} {
			r := f.do(who, m, "/admin/v1/audit", map[string]string{"seq": "1"})
			if r.status != http.StatusMethodNotAllowed || r.problemType() != "methodNotAllowed" || r.header.Get("Allow") != "GET" {
				t.Errorf("%s /admin/v1/audit as %s: %d %s (Allow %q), want 405 with Allow: GET", m, who, r.status, r.body, r.header.Get("Allow"))
			}
		}
	}
	var events []EventView
	r := f.do("aino", "GET", "/admin/v1/audit", nil)
	r.json(t, &events)
	if len(events) == 0 || events[0].Seq != 1 || events[0].Hash == "" {
		t.Fatalf("auditor reads %s", r.body)
	}
}

func TestDualControl(t *testing.T) {
	t.Run("the requester cannot approve", func(t *testing.T) {
		f := newFixture(t, Config{})
		var req RequestView
		r := f.do("alice", "POST", "/admin/v1/eab-requests", requestInput())
		r.json(t, &req)
		if r.status != http.StatusCreated || req.Status != "requested" || r.header.Get("Location") != "/admin/v1/eab-requests/"+req.ID ||
			req.RequestedBy != "alice" || req.Person != "Maija Meikäläinen" || len(req.Domains) != 1 {
			t.Fatalf("new request: %d %s (Location %q)", r.status, r.body, r.header.Get("Location"))
		}
		before := f.lastSeq()
		r = f.do("alice", "POST", "/admin/v1/eab-requests/"+req.ID+"/approve", nil)
		if r.status != http.StatusForbidden || r.problemType() != TypeDualControl || !strings.Contains(string(r.body), "another administrator") {
			t.Fatalf("self-approval: %d %s, want 403 dualControl", r.status, r.body)
		}
		if !hasEvent(f.events(before), "alice", AuditEABApprove, "refused: dual control", req.ID) {
			t.Errorf("the refused approval is not in the audit log:%s", describe(f.events(before)))
		}
		var got RequestView
		f.do("bob", "GET", "/admin/v1/eab-requests/"+req.ID, nil).json(t, &got)
		if got.Status != "requested" {
			t.Fatalf("after a refused approval the request is %s", got.Status)
		}
		r = f.do("carl", "POST", "/admin/v1/eab-requests/"+req.ID+"/approve", nil)
		if r.status != 200 {
			t.Fatalf("another administrator (by client certificate): %d %s", r.status, r.body)
		}
		var k KeyView
		r.json(t, &k)
		if k.ApprovedBy != "carl" || k.RequestedBy != "alice" || k.Status != "approved" || strings.Contains(string(r.body), "hmac") {
			t.Fatalf("approval answer %s", r.body)
		}
		r = f.do("bob", "POST", "/admin/v1/eab-requests/"+req.ID+"/approve", nil)
		if r.status != http.StatusConflict || !strings.Contains(string(r.body), "already approved by carl") {
			t.Fatalf("second approval: %d %s, want 409 naming carl", r.status, r.body)
		}
	})
	t.Run("single control, when configured, lets the requester approve", func(t *testing.T) {
		f := newFixture(t, Config{SingleControl: true})
		id := f.request("alice")
		if r := f.do("alice", "POST", "/admin/v1/eab-requests/"+id+"/approve", nil); r.status != 200 {
			t.Fatalf("self-approval with single control: %d %s", r.status, r.body)
		}
	})
}

func TestHandoverOnce(t *testing.T) {
	f := newFixture(t, Config{})
	id, kid := f.approved("eservice", "alice")
	if r := f.do("rita", "POST", "/admin/v1/eab-requests/"+id+"/key", nil); r.status != http.StatusForbidden || !strings.Contains(string(r.body), "only eservice") {
		t.Fatalf("another registrar fetching the key: %d %s, want 403", r.status, r.body)
	}
	r := f.do("eservice", "POST", "/admin/v1/eab-requests/"+id+"/key", nil)
	var h Handover
	r.json(t, &h)
	key, err := base64.RawURLEncoding.DecodeString(h.HMACKey)
	if r.status != 200 || h.KID != kid || len(key) != 32 || h.Fingerprint != Fingerprint(key) {
		t.Fatalf("first handover: %d %s", r.status, r.body)
	}
	if err != nil {
		t.Fatal(err)
	}
	r = f.do("eservice", "POST", "/admin/v1/eab-requests/"+id+"/key", nil)
	if r.status != http.StatusGone || r.problemType() != TypeGone || !strings.Contains(string(r.body), h.Fingerprint) || strings.Contains(string(r.body), h.HMACKey) {
		t.Fatalf("second handover: %d %s, want 410 with the fingerprint only", r.status, r.body)
	}
	var k KeyView
	f.do("aino", "GET", "/admin/v1/eab-keys/"+kid, nil).json(t, &k)
	if k.Fingerprint != h.Fingerprint || k.HandedOver == "" {
		t.Fatalf("key view after the handover: %+v", k)
	}
	for _, e := range f.events(0) {
		if strings.Contains(e.Object+e.Outcome, h.HMACKey) {
			t.Fatalf("the HMAC key is in the audit log: %+v", e)
		}
	}
	if !hasEvent(f.events(0), "eservice", AuditEABHandover, "ok", h.Fingerprint) {
		t.Errorf("no handover event:%s", describe(f.events(0)))
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t, Config{RequestLifetime: 48 * time.Hour, KeyLifetime: 24 * time.Hour})
	stale := f.request("rita")
	_, unused := f.approved("rita", "alice")
	f.clock.Add(24 * time.Hour)
	fresh := f.request("rita")
	if err := f.svc.ExpireDue(f.ctx); err != nil {
		t.Fatal(err)
	}
	var k KeyView
	f.do("alice", "GET", "/admin/v1/eab-keys/"+unused, nil).json(t, &k)
	if k.Status != store.EABExpired {
		t.Fatalf("key a day after approval with a 1-day lifetime: %s", k.Status)
	}
	f.clock.Add(24 * time.Hour)
	r := f.do("alice", "POST", "/admin/v1/eab-requests/"+stale+"/approve", nil)
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), "expired") {
		t.Fatalf("approving a request past its lifetime before the sweep: %d %s, want 409 expired", r.status, r.body)
	}
	before := f.lastSeq()
	if err := f.svc.ExpireDue(f.ctx); err != nil {
		t.Fatal(err)
	}
	var got RequestView
	f.do("alice", "GET", "/admin/v1/eab-requests/"+stale, nil).json(t, &got)
	if got.Status != store.EABRequestExpired {
		t.Fatalf("stale request is %s, want expired", got.Status)
	}
	f.do("alice", "GET", "/admin/v1/eab-requests/"+fresh, nil).json(t, &got)
	if got.Status != store.EABRequestRequested {
		t.Fatalf("a request one day old is %s, want requested", got.Status)
	}
	if !hasEvent(f.events(before), "system", AuditEABExpire, "ok", "request="+stale) {
		t.Errorf("no expiry event:%s", describe(f.events(before)))
	}
}

func TestRequestRefusals(t *testing.T) {
	f := newFixture(t, Config{})
	if err := f.st.SuspendOrganisation(f.ctx, orgOther, "bob", "unpaid", f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	with := func(edit func(*EABRequestInput)) EABRequestInput {
		in := requestInput()
		edit(&in)
		return in
	}
	tests := []struct {
		name   string
		body   any
		status int
		detail string
	}{
		{"an organisation not in the register", with(func(in *EABRequestInput) { in.Organisation = "1.2.246.10.99.10.0" }), 404, "not in the register"},
		{"a suspended organisation", with(func(in *EABRequestInput) { in.Organisation = orgOther; in.Domains = nil }), 409, "suspended"},
		{"a domain the organisation does not administer", with(func(in *EABRequestInput) { in.Domains = []string{"evil.example"} }), 400, "not among organisation"},
		{"an unknown profile", with(func(in *EABRequestInput) { in.Profiles = []string{"sote-client"} }), 400, "is unknown; the profiles are sote-server"},
		{"no person", with(func(in *EABRequestInput) { in.Person = " " }), 400, "person is required"},
		{"no identification", with(func(in *EABRequestInput) { in.IdentifiedBy = "" }), 400, "identified_by is required"},
		{"an unknown member", map[string]string{"organisation": orgOID, "approved": "yes"}, 400, "unknown field"},
		{"a body that is not an object", []int{1}, 400, "not the JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do("rita", "POST", "/admin/v1/eab-requests", tt.body)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.detail) || r.problemType() == "" {
				t.Fatalf("%d %s, want %d problem saying %q", r.status, r.body, tt.status, tt.detail)
			}
		})
	}
	t.Run("a body that is not JSON by content type", func(t *testing.T) {
		req, _ := http.NewRequest("POST", f.srv.URL+"/admin/v1/eab-requests", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+f.tokens["rita"])
		req.Header.Set("Content-Type", "text/plain")
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("text/plain body: %d, want 415", resp.StatusCode)
		}
	})
	t.Run("a body over the limit", func(t *testing.T) {
		big := requestInput()
		big.Person = strings.Repeat("x", maxBody)
		if r := f.do("rita", "POST", "/admin/v1/eab-requests", big); r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d bytes: %d %s, want 413", maxBody, r.status, r.body)
		}
	})
	t.Run("an unknown endpoint", func(t *testing.T) {
		if r := f.do("alice", "GET", "/admin/v1/operators", nil); r.status != 404 || r.problemType() != "noRoute" {
			t.Fatalf("%d %s, want 404 noRoute", r.status, r.body)
		}
	})
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, Config{})
	whoami := func(c *http.Client, header string) (int, string) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/admin/v1/whoami", nil)
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
	if code, got := whoami(f.certClient, ""); code != 200 || got != "carl/administrator" {
		t.Fatalf("client certificate: %d %s", code, got)
	}
	if code, got := whoami(f.srv.Client(), "Bearer "+f.tokens["rita"]); code != 200 || got != "rita/registrar" {
		t.Fatalf("token: %d %s", code, got)
	}
	before := f.lastSeq()
	for _, h := range []string{"Bearer " + f.tokens["rita"] + "x", "Bearer rita.", "Bearer nobody.abc", "Bearer carl.abc", "Basic cml0YTp4"} {
		if code, _ := whoami(f.srv.Client(), h); code != 401 {
			t.Errorf("Authorization %q: %d, want 401", h, code)
		}
	}
	if !hasEvent(f.events(before), "unknown", AuditOperatorLogin, "refused", "token of rita") {
		t.Errorf("refused token not audited:%s", describe(f.events(before)))
	}
	// A certificate from the operator CA that no operator holds (its key was
	// re-issued, say) is refused and recorded.
	_, certPEM, keyPEM, err := f.ca.IssueClientCert("mallory", "administrator", f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, _ := tls.X509KeyPair(certPEM, keyPEM)
	if code, _ := whoami(f.clientWithCert(pair), ""); code != 401 {
		t.Errorf("unregistered operator certificate: %d, want 401", code)
	}
	if !hasEvent(f.events(before), "unknown", AuditOperatorLogin, "refused", "mallory") {
		t.Errorf("refused certificate not audited:%s", describe(f.events(before)))
	}
	// A certificate of another CA fails the TLS handshake.
	other := selfSigned(t, "carl")
	forced := f.clientWithCert(other)
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
	f := newFixture(t, Config{})
	f.certificate("0100000168f0a805c366b43b5de968c691fb", "www.apteekki.example")
	_, kid := f.approved("rita", "alice")
	var v OrgView
	f.do("aino", "GET", "/admin/v1/organisations/"+orgOID, nil).json(t, &v)
	if len(v.Certificates) != 1 || len(v.Accounts) != 1 || len(v.EABKeys) != 2 || len(v.EABRequests) != 1 || v.Register.Status != "added by an operator" {
		t.Fatalf("organisation view %+v", v)
	}
	for _, serial := range []string{"0100000168f0a805c366b43b5de968c691fb", "87112293252494463413683796322992020427259", "01:00:00:01:68:F0:A8:05:C3:66:B4:3B:5D:E9:68:C6:91:FB"} {
		var list []CertView
		f.do("rita", "GET", "/admin/v1/certificates?serial="+serial, nil).json(t, &list)
		if len(list) != 1 || list[0].SerialDecimal != "87112293252494463413683796322992020427259" {
			t.Errorf("serial %s finds %+v", serial, list)
		}
	}
	if r := f.do("alice", "GET", "/admin/v1/certificates?serial=xyz", nil); r.status != 400 {
		t.Errorf("bad serial: %d %s", r.status, r.body)
	}
	r := f.do("alice", "POST", "/admin/v1/certificates/0100000168f0a805c366b43b5de968c691fb/revoke",
		RevokeInput{Reason: "keyCompromise", RequestedBy: "Maija", IdentifiedBy: "call back"})
	var list []CertView
	r.json(t, &list)
	if r.status != 200 || len(list) != 1 || list[0].RevokeReason != "keyCompromise" {
		t.Fatalf("revocation: %d %s", r.status, r.body)
	}
	if r := f.do("alice", "POST", "/admin/v1/certificates/0100000168f0a805c366b43b5de968c691fb/revoke",
		RevokeInput{Reason: "keyCompromise", RequestedBy: "Maija", IdentifiedBy: "call back"}); r.status != 409 {
		t.Fatalf("second revocation: %d %s, want 409", r.status, r.body)
	}
	if r := f.do("alice", "POST", "/admin/v1/certificates/ab/revoke", RevokeInput{Reason: "certificateHold", RequestedBy: "x", IdentifiedBy: "y"}); r.status != 400 {
		t.Fatalf("certificateHold: %d %s, want 400", r.status, r.body)
	}
	r = f.do("alice", "POST", "/admin/v1/eab-keys/"+kid+"/revoke", map[string]any{"reason": "lost"})
	if r.status != 200 {
		t.Fatalf("key revocation: %d %s", r.status, r.body)
	}
	if r := f.do("alice", "POST", "/admin/v1/eab-keys/"+kid+"/revoke", map[string]any{"reason": "lost"}); r.status != 409 {
		t.Fatalf("second key revocation: %d %s, want 409", r.status, r.body)
	}
	if r := f.do("alice", "POST", "/admin/v1/organisations/"+orgOID+"/suspend", map[string]string{"reason": "contract ended"}); r.status != 200 {
		t.Fatalf("suspend: %d %s", r.status, r.body)
	}
	if r := f.do("alice", "POST", "/admin/v1/organisations/"+orgOID+"/suspend", map[string]string{"reason": "again"}); r.status != 409 {
		t.Fatalf("second suspend: %d %s, want 409", r.status, r.body)
	}
	var orgs []OrgSummary
	f.do("aino", "GET", "/admin/v1/organisations", nil).json(t, &orgs)
	sort.Slice(orgs, func(i, j int) bool { return orgs[i].OID < orgs[j].OID })
	if len(orgs) != 2 || !orgs[0].Suspended || orgs[1].Suspended {
		t.Fatalf("organisations %+v", orgs)
	}
	for _, action := range []string{AuditRevoke, AuditEABRevoke, AuditOrgSuspend} {
		if !hasEvent(f.events(0), "alice", action, "ok", "") {
			t.Errorf("no %s event by alice:%s", action, describe(f.events(0)))
		}
	}
}
