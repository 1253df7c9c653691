package server_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/store"
)

// certID is the RFC 9773 CertID of an issued certificate.
func certID(t *testing.T, c *issued) string {
	t.Helper()
	id, err := authority.CertID(c.cert)
	if err != nil {
		t.Fatalf("CertID: %v", err)
	}
	return id
}

// renewalInfo GETs the renewal information of id.
func (e *env) renewalInfo(t *testing.T, id string) *response {
	t.Helper()
	if !strings.HasSuffix(e.dir.RenewalInfo, "/renewal-info") {
		t.Fatalf("directory renewalInfo %q", e.dir.RenewalInfo)
	}
	return e.get(t, e.dir.RenewalInfo+"/"+id)
}

func wantWindow(t *testing.T, r *response) acme.RenewalWindow {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	if got := r.header.Get("Retry-After"); got != "21600" {
		t.Errorf("Retry-After %q, want 21600 (6 h)", got)
	}
	info := decodeJSON[acme.RenewalInfo](t, r)
	if !info.SuggestedWindow.End.After(info.SuggestedWindow.Start) {
		t.Errorf("window %v to %v does not end after it starts", info.SuggestedWindow.Start, info.SuggestedWindow.End)
	}
	return info.SuggestedWindow
}

// TestRenewalInfo: GET {renewalInfo}/{CertID} (RFC 9773 section 4).
func TestRenewalInfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	c := e.issue(t, a, "www."+domainA)
	id := certID(t, c)
	aki, serial, _ := strings.Cut(id, ".")

	t.Run("the default window opens at 7/12 and closes at 3/4 of the lifetime", func(t *testing.T) {
		w := wantWindow(t, e.renewalInfo(t, id))
		life := c.cert.NotAfter.Sub(c.cert.NotBefore)
		wantStart := c.cert.NotBefore.Add(life * 7 / 12).Truncate(time.Second)
		wantEnd := c.cert.NotBefore.Add(life * 3 / 4).Truncate(time.Second)
		if !w.Start.Equal(wantStart) || !w.End.Equal(wantEnd) {
			t.Errorf("window %s to %s, want %s to %s", w.Start, w.End, wantStart, wantEnd)
		}
		if twoThirds := c.cert.NotBefore.Add(life * 2 / 3); !w.Start.Before(twoThirds) || !w.End.After(twoThirds) {
			t.Errorf("window %s to %s does not hold two thirds of the lifetime, %s", w.Start, w.End, twoThirds)
		}
	})

	other := make([]byte, 20)
	other[0] = 0x42
	bad := []struct {
		name   string
		id     string
		status int
	}{
		{"no dot", aki + serial, 400},
		{"two dots", aki + "." + serial + ".x", 400},
		{"padding", id + "=", 400},
		{"standard base64 characters", strings.Replace(id, "-", "+", 1) + "+", 400},
		{"empty key identifier", "." + serial, 400},
		{"empty serial", aki + ".", 400},
		{"negative serial", aki + "." + b64([]byte{0x80, 1}), 400},
		{"serial with a leading zero byte", aki + "." + b64([]byte{0, 1, 2}), 400},
		{"serial longer than 20 bytes", aki + "." + b64(append([]byte{1}, make([]byte, 20)...)), 400},
		{"a serial never issued here", aki + "." + b64([]byte{1, 2, 3, 4}), 404},
		{"our serial with another issuer's key identifier", b64(other) + "." + serial, 404},
	}
	for _, tc := range bad {
		t.Run(tc.name+" is "+http.StatusText(tc.status), func(t *testing.T) {
			wantProblem(t, e.renewalInfo(t, tc.id), acme.Malformed, tc.status)
		})
	}

	t.Run("POST is refused with Allow: GET", func(t *testing.T) {
		r := e.postJWS(t, e.dir.RenewalInfo+"/"+id, e.sign(t, a.key, a.kid, e.dir.RenewalInfo+"/"+id, nil))
		wantProblem(t, r, acme.Malformed, http.StatusMethodNotAllowed)
		if got := r.header.Get("Allow"); got != http.MethodGet {
			t.Errorf("Allow %q, want GET", got)
		}
	})

	t.Run("a window an operator moved is served as set", func(t *testing.T) {
		moved := e.issue(t, a, "moved."+domainA)
		now := time.Now().UTC().Truncate(time.Second)
		want := store.RenewalWindow{Start: now.Add(-time.Hour), End: now, Reason: "key compromise at the host", SetBy: "test", SetAt: now}
		if _, err := e.st.MoveRenewalWindows(context.Background(), store.RenewalSelector{Serial: hex.EncodeToString(moved.cert.SerialNumber.Bytes())}, want, now); err != nil {
			t.Fatal(err)
		}
		w := wantWindow(t, e.renewalInfo(t, certID(t, moved)))
		if !w.Start.Equal(want.Start) || !w.End.Equal(want.End) {
			t.Errorf("window %s to %s, want %s to %s", w.Start, w.End, want.Start, want.End)
		}
	})

	t.Run("a revoked certificate's window is in the past", func(t *testing.T) {
		revoked := e.issue(t, a, "revoked."+domainA)
		wantStatus(t, e.as(t, a, e.dir.RevokeCert, revokePayload(t, revoked.cert.Raw, reason(1))), http.StatusOK)
		w := wantWindow(t, e.renewalInfo(t, certID(t, revoked)))
		if !w.End.Before(time.Now().Add(time.Second)) {
			t.Errorf("window of a revoked certificate ends at %s, not in the past", w.End)
		}
	})
}

// replaceOrder asks for an order of names replacing the certificate with CertID id.
func (e *env) replaceOrder(t *testing.T, a *account, id string, names ...string) *response {
	t.Helper()
	return e.as(t, a, e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers(names...), Replaces: id}))
}

// TestReplaces: newOrder's "replaces" (RFC 9773 section 5).
func TestReplaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	colleague := e.register(t, orgA)
	stranger := e.register(t, orgB)
	old := e.issue(t, a, "www."+domainA, "api."+domainA)
	id := certID(t, old)

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			who    *account
			id     string
			names  []string
			kind   acme.ErrorKind
			status int
		}{
			{"a CertID that is not one", a, "not-a-cert-id", []string{"www." + domainA}, acme.Malformed, 400},
			{"a certificate not issued here", a, strings.Split(id, ".")[0] + "." + b64([]byte{1, 2, 3}), []string{"www." + domainA}, acme.Malformed, 400},
			{"no name in common", a, id, []string{"other." + domainA}, acme.Malformed, 400},
			{"another organisation's certificate", stranger, id, []string{"www." + domainB}, acme.Unauthorized, 403},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantProblem(t, e.replaceOrder(t, tc.who, tc.id, tc.names...), tc.kind, tc.status)
			})
		}
	})

	// A colleague's account of the same organisation may replace it, with one name kept.
	r := e.replaceOrder(t, colleague, id, "WWW."+domainA)
	wantStatus(t, r, http.StatusCreated)
	first := decodeJSON[acme.Order](t, r)
	if first.Replaces != id {
		t.Fatalf("order replaces %q, want %q", first.Replaces, id)
	}
	firstURL := r.header.Get("Location")

	// A newer replacement supersedes the first, which never reached finalize.
	second := e.newOrderReplacing(t, a, id, "www."+domainA, "api."+domainA)
	if got := decodeJSON[acme.Order](t, e.as(t, colleague, firstURL, nil)); got.Status != acme.StatusInvalid {
		t.Errorf("superseded replacement order is %s, want invalid", got.Status)
	}
	e.authorize(t, a, second)
	renewed := e.finalize(t, a, second)
	if renewed.order.obj.Replaces != id {
		t.Errorf("finalized order replaces %q, want %q", renewed.order.obj.Replaces, id)
	}

	// Once a replacement is finalized, the certificate is replaced for good.
	p := wantProblem(t, e.replaceOrder(t, a, id, "www."+domainA), acme.AlreadyReplaced, http.StatusConflict)
	if !strings.Contains(p.Detail, id) {
		t.Errorf("detail %q does not name the CertID", p.Detail)
	}
	// The new certificate can itself be replaced.
	wantStatus(t, e.replaceOrder(t, a, certID(t, renewed), "www."+domainA), http.StatusCreated)
}

// newOrderReplacing is newOrder with replaces.
func (e *env) newOrderReplacing(t *testing.T, a *account, id string, names ...string) *order {
	t.Helper()
	r := e.replaceOrder(t, a, id, names...)
	wantStatus(t, r, http.StatusCreated)
	o := &order{url: r.header.Get("Location"), obj: decodeJSON[acme.Order](t, r)}
	for _, az := range o.obj.Authorizations {
		authz := decodeJSON[acme.Authorization](t, e.as(t, a, az, nil))
		for _, ch := range authz.Challenges {
			if ch.Type == acme.ChallengeHTTP01 {
				o.challenges = append(o.challenges, ch.URL)
				o.pending = append(o.pending, authz.Status == acme.StatusPending)
			}
		}
	}
	return o
}
