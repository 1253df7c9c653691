package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
)

// TestNewOrder covers newOrder refusals (ROBUSTNESS 39-45): every bad identifier gets a
// subproblem naming it, and a refused order creates nothing.
func TestNewOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	www := acme.Identifier{Type: "dns", Value: "www." + domainA}
	dns := func(v string) acme.Identifier { return acme.Identifier{Type: "dns", Value: v} }
	label64 := strings.Repeat("a", 64)

	cases := []struct {
		name string
		req  any
		kind acme.ErrorKind
		bad  []acme.Identifier // each must have a subproblem naming it
	}{
		{name: "empty identifiers → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{}}, kind: acme.Malformed},
		{name: "no identifiers member → malformed", req: map[string]any{}, kind: acme.Malformed},
		{name: "type email → unsupportedIdentifier", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "email", Value: "a@" + domainA}}},
			kind: acme.UnsupportedIdentifier, bad: []acme.Identifier{{Type: "email", Value: "a@" + domainA}}},
		{name: "type ip alone → rejectedIdentifier (a DNS name is required)", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "ip", Value: "192.0.2.1"}}},
			kind: acme.RejectedIdentifier, bad: []acme.Identifier{{Type: "ip", Value: "192.0.2.1"}}},
		{name: "type ip beside a name, outside the organisation's networks → rejectedIdentifier for the address", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www, {Type: "ip", Value: "192.0.2.1"}}},
			kind: acme.RejectedIdentifier, bad: []acme.Identifier{{Type: "ip", Value: "192.0.2.1"}}},
		{name: "type ip with a host name as its value → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www, {Type: "ip", Value: "www." + domainA}}},
			kind: acme.Malformed, bad: []acme.Identifier{{Type: "ip", Value: "www." + domainA}}},
		{name: "type DNS in capitals → unsupportedIdentifier", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "DNS", Value: "www." + domainA}}},
			kind: acme.UnsupportedIdentifier, bad: []acme.Identifier{{Type: "DNS", Value: "www." + domainA}}},
		{name: "a 64-character label → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns(label64 + "." + domainA)}},
			kind: acme.Malformed, bad: []acme.Identifier{dns(label64 + "." + domainA)}},
		{name: "a name over 253 bytes → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns(strings.Repeat("abcdefghi.", 25) + domainA)}},
			kind: acme.Malformed, bad: []acme.Identifier{dns(strings.Repeat("abcdefghi.", 25) + domainA)}},
		{name: "a trailing dot → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("www." + domainA + ".")}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("www." + domainA + ".")}},
		{name: "an empty label → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("www.." + domainA)}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("www.." + domainA)}},
		{name: "an underscore → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("_acme." + domainA)}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("_acme." + domainA)}},
		{name: "an IPv4 literal → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("127.0.0.1")}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("127.0.0.1")}},
		{name: "an IPv6 literal in brackets → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("[::1]")}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("[::1]")}},
		{name: "a reserved ab-- label → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("ab--c." + domainA)}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("ab--c." + domainA)}},
		{name: "non-ASCII → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("äö." + domainA)}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("äö." + domainA)}},
		{name: "*.com → rejectedIdentifier", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("*.com")}},
			kind: acme.RejectedIdentifier, bad: []acme.Identifier{dns("*.com")}},
		{name: "a misplaced wildcard → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("a.*." + domainA)}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("a.*." + domainA)}},
		{name: "a wildcard under the organisation's domain → rejectedIdentifier (no dns-01)", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("*." + domainA)}},
			kind: acme.RejectedIdentifier, bad: []acme.Identifier{dns("*." + domainA)}},
		{name: "a name outside the organisation's domains → rejectedIdentifier", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("www." + domainB)}},
			kind: acme.RejectedIdentifier, bad: []acme.Identifier{dns("www." + domainB)}},
		{name: "a look-alike suffix of the organisation's domain → rejectedIdentifier", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{dns("www.not" + domainA)}},
			kind: acme.RejectedIdentifier, bad: []acme.Identifier{dns("www.not" + domainA)}},
		{name: "a good name with a bad one → rejectedIdentifier for the bad one only", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www, dns("www." + domainB)}},
			kind: acme.RejectedIdentifier, bad: []acme.Identifier{dns("www." + domainB)}},
		{name: "a syntax error with a policy refusal → malformed, a subproblem for each", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www, dns("_x." + domainA), dns("www." + domainB), {Type: "email", Value: "a@" + domainA}}},
			kind: acme.Malformed, bad: []acme.Identifier{dns("_x." + domainA), dns("www." + domainB), {Type: "email", Value: "a@" + domainA}}},
		{name: "101 identifiers → rejectedIdentifier", req: func() acme.NewOrderRequest {
			var ids []acme.Identifier
			for i := range 101 {
				ids = append(ids, dns("h"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+"."+domainA))
			}
			return acme.NewOrderRequest{Identifiers: ids}
		}(), kind: acme.RejectedIdentifier},
		{name: "an unknown profile → invalidProfile", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www}, Profile: "tls-server-7d"}, kind: acme.InvalidProfile},
		{name: "notBefore → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www}, NotBefore: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, kind: acme.Malformed},
		{name: "notAfter beyond 365 days → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www}, NotAfter: time.Now().AddDate(0, 0, 366).UTC().Format(time.RFC3339)}, kind: acme.Malformed},
		{name: "notAfter in the past → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www}, NotAfter: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, kind: acme.Malformed},
		{name: "notAfter not an RFC 3339 date → malformed", req: acme.NewOrderRequest{Identifiers: []acme.Identifier{www}, NotAfter: "next year"}, kind: acme.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := wantProblem(t, e.as(t, a, e.dir.NewOrder, mustJSON(t, tc.req)), tc.kind, http.StatusBadRequest)
			for _, bad := range tc.bad {
				i := slices.IndexFunc(p.Subproblems, func(s acme.Subproblem) bool { return s.Identifier != nil && *s.Identifier == bad })
				if i < 0 {
					t.Errorf("no subproblem names %+v; subproblems: %+v", bad, p.Subproblems)
					continue
				}
				if sp := p.Subproblems[i]; !strings.HasPrefix(sp.Type, "urn:ietf:params:acme:error:") || sp.Detail == "" {
					t.Errorf("subproblem %+v lacks a type or a detail", sp)
				}
			}
			if tc.bad != nil && len(p.Subproblems) != len(tc.bad) {
				t.Errorf("%d subproblems for %d bad identifiers: %+v", len(p.Subproblems), len(tc.bad), p.Subproblems)
			}
		})
	}

	t.Run("the refusal of a foreign name names the organisation and its domains", func(t *testing.T) {
		p := wantProblem(t, e.as(t, a, e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("www." + domainB)})),
			acme.RejectedIdentifier, http.StatusBadRequest)
		for _, want := range []string{"www." + domainB, orgA, domainA} {
			if !strings.Contains(p.Detail, want) {
				t.Errorf("detail %q does not name %s", p.Detail, want)
			}
		}
	})

	t.Run("no refused order was created", func(t *testing.T) {
		acct := decodeJSON[acme.Account](t, e.as(t, a, a.kid, nil))
		if got := decodeJSON[acme.OrdersList](t, e.as(t, a, acct.Orders, nil)).Orders; len(got) != 0 {
			t.Errorf("the account has orders after refusals only: %v", got)
		}
	})

	t.Run("notAfter within 365 days is honoured", func(t *testing.T) {
		na := time.Now().AddDate(0, 0, 300).UTC().Truncate(time.Second)
		r := e.as(t, a, e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("www." + domainA), NotAfter: na.Format(time.RFC3339)}))
		wantStatus(t, r, http.StatusCreated)
		if got := decodeJSON[acme.Order](t, r).NotAfter; got == nil || !got.Equal(na) {
			t.Errorf("order notAfter %v, want %v", got, na)
		}
	})
}

// TestOtherAccountsResources: another account's order, authz, challenge and
// certificate are answered exactly like an id that does not exist (ROBUSTNESS 46).
func TestOtherAccountsResources(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.register(t, orgA)
	sameOrg := e.register(t, orgA)
	otherOrg := e.register(t, orgB)
	c := e.issue(t, owner, "www."+domainA)
	o := e.newOrder(t, owner, "api."+domainA)

	swapID := func(u string) string {
		i := strings.LastIndex(u, "/")
		return u[:i+1] + randomID()
	}
	randomSerial := c.certURL[:strings.LastIndex(c.certURL, "/")+1] + "0123456789abcdef0123456789abcdef01"
	cases := []struct {
		name      string
		who       *account
		url, none string
		payload   []byte
	}{
		{"order of another account", sameOrg, o.url, swapID(o.url), nil},
		{"order of another organisation's account", otherOrg, o.url, swapID(o.url), nil},
		{"authz of another account", sameOrg, o.obj.Authorizations[0], swapID(o.obj.Authorizations[0]), nil},
		{"challenge of another account (POST-as-GET)", sameOrg, o.challenges[0], swapID(o.challenges[0]), nil},
		{"challenge of another account (answered)", sameOrg, o.challenges[0], swapID(o.challenges[0]), []byte("{}")},
		{"finalize of another account's order", sameOrg, c.order.obj.Finalize,
			strings.Replace(c.order.obj.Finalize, c.order.url, swapID(c.order.url), 1), finalizePayload(t, csrFor(t, ecKey(t), "www."+domainA))},
		{"certificate of another organisation", otherOrg, c.certURL, randomSerial, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name+" → 404, as a random id", func(t *testing.T) {
			theirs := wantProblem(t, e.as(t, tc.who, tc.url, tc.payload), acme.Malformed, http.StatusNotFound)
			none := wantProblem(t, e.as(t, tc.who, tc.none, tc.payload), acme.Malformed, http.StatusNotFound)
			if theirs.Detail != none.Detail {
				t.Errorf("another account's resource says %q, a missing one %q: existence leaks", theirs.Detail, none.Detail)
			}
		})
	}
	t.Run("another account's account URL → unauthorized 403", func(t *testing.T) {
		wantProblem(t, e.as(t, sameOrg, owner.kid, nil), acme.Unauthorized, http.StatusForbidden)
		acct := decodeJSON[acme.Account](t, e.as(t, owner, owner.kid, nil))
		wantProblem(t, e.as(t, sameOrg, acct.Orders, nil), acme.Unauthorized, http.StatusForbidden)
	})
	t.Run("an account of the same organisation may download the certificate", func(t *testing.T) {
		wantStatus(t, e.as(t, sameOrg, c.certURL, nil), http.StatusOK)
	})
	if got := e.val.callsFor("api." + domainA); got != 0 {
		t.Errorf("another account's challenge POST started %d validations", got)
	}
	if got := decodeJSON[acme.Order](t, e.as(t, owner, o.url, nil)).Status; got != acme.StatusPending {
		t.Errorf("order is %s after other accounts' requests", got)
	}
}

// TestFinalize covers finalize refusals (ROBUSTNESS 60-68): a refused CSR leaves the
// order ready, and an order is finalized once.
func TestFinalize(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	earlier := e.issue(t, a, "old."+domainA)
	names := []string{"www." + domainA, "api." + domainA}
	o := e.readyOrder(t, a, names...)

	t.Run("before the authz is valid → orderNotReady 403", func(t *testing.T) {
		p := e.newOrder(t, a, "pending."+domainA)
		wantProblem(t, e.as(t, a, p.obj.Finalize, finalizePayload(t, csrFor(t, ecKey(t), "pending."+domainA))), acme.OrderNotReady, http.StatusForbidden)
	})

	std := func(s string) string { return strings.NewReplacer("-", "+", "_", "/").Replace(s) }
	k := ecKey(t)
	good := csrFor(t, k, names...)
	cases := append(csrRefusals(t, names), []finalizeCase{
		{"a CSR with the key of an earlier certificate → badCSR", func(t *testing.T) []byte {
			return finalizePayload(t, csrFor(t, earlier.key, names...))
		}, acme.BadCSR},
		{"a CSR as padded base64 → malformed", func(t *testing.T) []byte {
			for {
				der := mustB64(t, csrFor(t, ecKey(t), names...))
				if len(der)%3 != 0 { // else base64 has no padding to add
					return finalizePayload(t, base64.URLEncoding.EncodeToString(der))
				}
			}
		}, acme.Malformed},
		{"a CSR in the standard base64 alphabet → malformed", func(t *testing.T) []byte {
			for { // a fresh key until its CSR's encoding has a - or _ to translate
				b64url := csrFor(t, ecKey(t), names...)
				if s := std(b64url); s != b64url {
					return finalizePayload(t, s)
				}
			}
		}, acme.Malformed},
		{"a CSR with white space → malformed", func(t *testing.T) []byte { return finalizePayload(t, good[:10]+"\n"+good[10:]) }, acme.Malformed},
		{"a CSR in PEM → malformed", func(t *testing.T) []byte {
			return finalizePayload(t, "-----BEGIN CERTIFICATE REQUEST-----\n"+std(good)+"\n-----END CERTIFICATE REQUEST-----")
		}, acme.Malformed},
		{"no csr member → malformed", func(*testing.T) []byte { return []byte(`{}`) }, acme.Malformed},
		{"csr as a number → malformed", func(*testing.T) []byte { return []byte(`{"csr":1}`) }, acme.Malformed},
		{"an empty payload → malformed", func(*testing.T) []byte { return nil }, acme.Malformed},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.as(t, a, o.obj.Finalize, tc.payload(t)), tc.kind, http.StatusBadRequest)
			if got := decodeJSON[acme.Order](t, e.as(t, a, o.url, nil)).Status; got != acme.StatusReady {
				t.Fatalf("after a refused finalize the order is %s, want ready", got)
			}
		})
	}

	t.Run("finalize twice → the second gets orderNotReady", func(t *testing.T) {
		r := e.as(t, a, o.obj.Finalize, finalizePayload(t, good))
		wantStatus(t, r, http.StatusOK)
		if got := decodeJSON[acme.Order](t, r); got.Status != acme.StatusValid || got.Certificate == "" {
			t.Fatalf("finalized order: %s", r.body)
		}
		wantProblem(t, e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, ecKey(t), names...))), acme.OrderNotReady, http.StatusForbidden)
	})
}

// TestConcurrentFinalize: of simultaneous finalize requests exactly one issues; the
// others get orderNotReady (ROBUSTNESS 4).
func TestConcurrentFinalize(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	name := "www." + domainA
	o := e.readyOrder(t, a, name)
	const n = 6
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = e.sign(t, a.key, a.kid, o.obj.Finalize, finalizePayload(t, csrFor(t, ecKey(t), name)))
	}
	answers := make([]acme.Problem, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() {
			res, err := e.client.Post(o.obj.Finalize, "application/jose+json", bytes.NewReader(bodies[i]))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			statuses[i] = res.StatusCode
			if res.StatusCode != http.StatusOK {
				_ = json.NewDecoder(res.Body).Decode(&answers[i])
			}
		})
	}
	wg.Wait()
	issued := 0
	for i, s := range statuses {
		switch {
		case s == http.StatusOK:
			issued++
		case s != http.StatusForbidden || answers[i].Type != acme.OrderNotReady.URN():
			t.Errorf("finalize %d: %d %+v, want 200 or 403 orderNotReady", i, s, answers[i])
		}
	}
	if issued != 1 {
		t.Errorf("%d of %d concurrent finalizes issued, want 1 (statuses %v)", issued, n, statuses)
	}
	if got := e.poll(t, a, o, acme.StatusValid); got.Certificate == "" {
		t.Errorf("valid order without a certificate")
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestValidationFailure: a failed http-01 makes the challenge, the authz and the order
// invalid, and the challenge carries the validator's problem (ROBUSTNESS 52, 59).
func TestValidationFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	name := "fail." + domainA
	e.val.failWith(name, acme.Errorf(acme.IncorrectResponse, "the key authorization at http://%s/.well-known/acme-challenge/ differs", name))
	o := e.newOrder(t, a, name)

	r := e.as(t, a, o.challenges[0], []byte("{}"))
	wantStatus(t, r, http.StatusOK)
	ch := decodeJSON[acme.Challenge](t, r)
	if up := "<" + o.obj.Authorizations[0] + `>;rel="up"`; !slices.Contains(r.header.Values("Link"), up) {
		t.Errorf("challenge Link %q lacks %s", r.header.Values("Link"), up)
	}
	if ch.Status != acme.StatusInvalid || ch.Error == nil {
		// The validation may still be running after the server's wait.
		time.Sleep(100 * time.Millisecond)
		ch = decodeJSON[acme.Challenge](t, e.as(t, a, o.challenges[0], nil))
	}
	if ch.Status != acme.StatusInvalid {
		t.Fatalf("challenge is %s, want invalid", ch.Status)
	}
	if ch.Error == nil || ch.Error.Type != acme.IncorrectResponse.URN() || ch.Error.Status != http.StatusForbidden || !strings.Contains(ch.Error.Detail, name) {
		t.Errorf("challenge error %+v, want incorrectResponse 403 naming %s", ch.Error, name)
	}
	az := decodeJSON[acme.Authorization](t, e.as(t, a, o.obj.Authorizations[0], nil))
	if az.Status != acme.StatusInvalid {
		t.Errorf("authz is %s, want invalid", az.Status)
	}
	if got := e.poll(t, a, o, acme.StatusInvalid); got.Status != acme.StatusInvalid {
		t.Errorf("order is %s, want invalid", got.Status)
	}
	t.Run("answering the challenge again runs no second validation", func(t *testing.T) {
		ch := decodeJSON[acme.Challenge](t, e.as(t, a, o.challenges[0], []byte("{}")))
		if ch.Status != acme.StatusInvalid || e.val.callsFor(name) != 1 {
			t.Errorf("challenge %s after %d validations", ch.Status, e.val.callsFor(name))
		}
	})
	t.Run("finalize of the invalid order → orderNotReady", func(t *testing.T) {
		wantProblem(t, e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, ecKey(t), name))), acme.OrderNotReady, http.StatusForbidden)
	})
	t.Run("an internal validator error reaches the client as a generic serverInternal", func(t *testing.T) {
		name := "broken." + domainA
		e.val.failWith(name, &net500{"dial tcp 10.1.2.3:80: secret internal route"})
		o := e.newOrder(t, a, name)
		e.as(t, a, o.challenges[0], []byte("{}"))
		e.poll(t, a, o, acme.StatusInvalid)
		ch := decodeJSON[acme.Challenge](t, e.as(t, a, o.challenges[0], nil))
		if ch.Error == nil || ch.Error.Type != acme.ServerInternal.URN() {
			t.Fatalf("challenge error %+v, want serverInternal", ch.Error)
		}
		if raw, _ := json.Marshal(ch.Error); strings.Contains(string(raw), "10.1.2.3") || strings.Contains(string(raw), "secret") {
			t.Errorf("challenge error leaks the internal error: %s", raw)
		}
	})
}

// net500 is an error that is not an *acme.Error, as a broken validator might return.
// TestFinalizeWithoutNamesAndKeysPlugins: a profile whose chain has neither the names
// nor the keys plugin still refuses every CSR of csrRefusals at the ACME endpoint,
// and issues a good one.
func TestFinalizeWithoutNamesAndKeysPlugins(t *testing.T) {
	t.Parallel()
	e := newEnvPlugins(t, "validity")
	a := e.register(t, orgA)
	names := []string{"www." + domainA, "api." + domainA}
	o := e.readyOrder(t, a, names...)
	for _, tc := range csrRefusals(t, names) {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.as(t, a, o.obj.Finalize, tc.payload(t)), tc.kind, http.StatusBadRequest)
			if got := decodeJSON[acme.Order](t, e.as(t, a, o.url, nil)).Status; got != acme.StatusReady {
				t.Fatalf("after a refused finalize the order is %s, want ready", got)
			}
		})
	}
	r := e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, ecKey(t), names...)))
	wantStatus(t, r, http.StatusOK)
}

type net500 struct{ s string }

func (e *net500) Error() string { return e.s }

// finalizeCase is a finalize payload and the problem it must get.
type finalizeCase struct {
	name    string
	payload func(t *testing.T) []byte
	kind    acme.ErrorKind
}

// csrRefusals are the CSRs for an order of names that every profile refuses, whatever
// its plugins: names other than the order's (RFC 8555 section 7.4), a CSR that does
// not parse or whose signature is weak or broken, and keys of a refused kind, size or
// exponent.
func csrRefusals(t *testing.T, names []string) []finalizeCase {
	t.Helper()
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []finalizeCase{
		{"a CSR with an extra name → badCSR", func(t *testing.T) []byte {
			return finalizePayload(t, csrFor(t, ecKey(t), append(slices.Clone(names), "extra."+domainA)...))
		}, acme.BadCSR},
		{"a CSR missing a name → badCSR", func(t *testing.T) []byte { return finalizePayload(t, csrFor(t, ecKey(t), names[0])) }, acme.BadCSR},
		{"a CSR with a case-folded duplicate → badCSR", func(t *testing.T) []byte {
			return finalizePayload(t, csrFor(t, ecKey(t), append(slices.Clone(names), strings.ToUpper(names[0]))...))
		}, acme.BadCSR},
		{"a CSR whose CN is not among its names → badCSR", func(t *testing.T) []byte {
			return finalizePayload(t, csr(t, ecKey(t), csrTemplate(names, "other."+domainA)))
		}, acme.BadCSR},
		{"a CSR with a CN over 64 characters → badCSR", func(t *testing.T) []byte {
			return finalizePayload(t, csr(t, ecKey(t), csrTemplate(names, strings.Repeat("c", 65))))
		}, acme.BadCSR},
		{"a CSR with an email SAN → badCSR", func(t *testing.T) []byte {
			tmpl := csrTemplate(names, "")
			tmpl.EmailAddresses = []string{"admin@" + domainA}
			return finalizePayload(t, csr(t, ecKey(t), tmpl))
		}, acme.BadCSR},
		{"a CSR with a URI SAN → badCSR", func(t *testing.T) []byte {
			tmpl := csrTemplate(names, "")
			tmpl.URIs = []*url.URL{{Scheme: "https", Host: "www." + domainA}}
			return finalizePayload(t, csr(t, ecKey(t), tmpl))
		}, acme.BadCSR},
		{"a CSR with an IP SAN → badCSR", func(t *testing.T) []byte {
			tmpl := csrTemplate(names, "")
			tmpl.IPAddresses = append(tmpl.IPAddresses, []byte{192, 0, 2, 1})
			return finalizePayload(t, csr(t, ecKey(t), tmpl))
		}, acme.BadCSR},
		{"a CSR signed with SHA-1 (ECDSA) → badCSR", func(t *testing.T) []byte {
			tmpl := csrTemplate(names, "")
			tmpl.SignatureAlgorithm = x509.ECDSAWithSHA1
			return finalizePayload(t, csr(t, ecKey(t), tmpl))
		}, acme.BadCSR},
		{"a CSR with a broken signature → badCSR", func(t *testing.T) []byte {
			der := mustB64(t, csrFor(t, ecKey(t), names...))
			der[len(der)-3] ^= 0x40
			return finalizePayload(t, b64(der))
		}, acme.BadCSR},
		{"a CSR that is not DER → badCSR", func(t *testing.T) []byte { return finalizePayload(t, b64([]byte("not a CSR"))) }, acme.BadCSR},
		{"a CSR with an RSA key with e=3 → badCSR", func(t *testing.T) []byte {
			return finalizePayload(t, csrFor(t, slowKey(t, rsaE3), names...))
		}, acme.BadCSR},
		{"a CSR with an RSA-2047 key → badCSR", func(t *testing.T) []byte {
			return finalizePayload(t, csrFor(t, slowKey(t, rsa2047), names...))
		}, acme.BadCSR},
		{"a CSR with an RSA-1024 key → badCSR", func(t *testing.T) []byte {
			return finalizePayload(t, csrFor(t, slowKey(t, rsa1024), names...))
		}, acme.BadCSR},
		{"a CSR with a P-224 key → badCSR", func(t *testing.T) []byte { return finalizePayload(t, csrFor(t, p224, names...)) }, acme.BadCSR},
		{"a CSR with an Ed25519 key → badCSR", func(t *testing.T) []byte { return finalizePayload(t, csrFor(t, ed, names...)) }, acme.BadCSR},
	}
}
