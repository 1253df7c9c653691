package server_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

// TestHappyPath is the path every other case starts from: account with EAB, order,
// http-01, finalize, download.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	c := e.issue(t, a, "www."+domainA, domainA)
	if got := c.cert.DNSNames; len(got) != 2 {
		t.Errorf("certificate names %v", got)
	}
	if got := e.val.callsFor("www." + domainA); got != 1 {
		t.Errorf("validator called %d times for www", got)
	}
	// The certificate also comes as DER when asked for.
	req, err := http.NewRequest(http.MethodPost, c.certURL, bytes.NewReader(e.sign(t, a.key, a.kid, c.certURL, nil)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/jose+json")
	req.Header.Set("Accept", "application/pkix-cert")
	r := e.do(t, req)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.body, c.cert.Raw) || r.header.Get("Content-Type") != "application/pkix-cert" {
		t.Errorf("DER download: %s, %d bytes", r.header.Get("Content-Type"), len(r.body))
	}
	// The account reads back, with its orders list.
	r = e.as(t, a, a.kid, nil)
	wantStatus(t, r, http.StatusOK)
	acct := decodeJSON[acme.Account](t, r)
	r = e.as(t, a, acct.Orders, nil)
	wantStatus(t, r, http.StatusOK)
	if list := decodeJSON[acme.OrdersList](t, r); len(list.Orders) != 1 || list.Orders[0] != c.order.url {
		t.Errorf("orders list %v, want [%s]", list.Orders, c.order.url)
	}
}
