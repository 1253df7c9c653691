package clients

import (
	"fmt"
	"strings"
	"testing"
	"time"

	legocert "github.com/go-acme/lego/v4/certificate"
	"github.com/mholt/acmez/v3"
	acmezacme "github.com/mholt/acmez/v3/acme"

	"github.com/varmenne/varmenne/test/harness"
)

// TestARIEarlyRenewal: an operator moves renewal windows into the past with
// `varmenne renew-early` (after a key compromise, say), and ARI clients renew at their
// next check, naming the old certificate in `replaces`: acmez for one certificate
// (--serial), the lego library for a whole organisation (--org). A certificate
// replaced once cannot be replaced again (alreadyReplaced).
func TestARIEarlyRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "ari", false)
	ctx := harness.Ctx(t)
	c, acct := e.acmezClient(ctx)
	name := e.name("www")
	first, _ := e.check(e.acmezObtain(ctx, c, acct, name, "", nil), name)

	ari, err := c.GetRenewalInfo(ctx, first)
	if err != nil {
		t.Fatalf("acmez: renewal info: %v", err)
	}
	if now := time.Now(); !ari.SuggestedWindow.Start.After(now) || ari.SelectedTime.Before(now) {
		t.Fatalf("a fresh certificate's window %v..%v (selected %v) is not in the future", ari.SuggestedWindow.Start, ari.SuggestedWindow.End, ari.SelectedTime)
	}

	if out, err := e.in.CLI("renew-early", "--serial", fmt.Sprintf("%x", first.SerialNumber), "--reason", "key compromise reported in ticket 1234"); err != nil {
		t.Fatalf("renew-early --serial: %v: %s", err, out)
	}
	ari, err = c.GetRenewalInfo(ctx, first)
	if err != nil {
		t.Fatalf("acmez: renewal info after renew-early: %v", err)
	}
	if now := time.Now(); ari.SuggestedWindow.End.After(now) || ari.SelectedTime.After(now) {
		t.Fatalf("after renew-early the window %v..%v (selected %v) is not in the past", ari.SuggestedWindow.Start, ari.SuggestedWindow.End, ari.SelectedTime)
	}
	// What acmez's caller (Caddy's certmagic) does when the selected time has passed:
	// renew, replacing the old certificate.
	second, _ := e.check(e.acmezObtain(ctx, c, acct, name, "", first), name)
	e.renewed(first, second)

	csr, err := acmez.NewCSR(newKey(t), []string{name})
	if err != nil {
		t.Fatal(err)
	}
	// acmez (and lego) answer alreadyReplaced by ordering again without `replaces`
	// (RFC 9773 section 5), so the refusal shows in the server's log.
	refusedBefore := strings.Count(e.in.Logs.String(), `"problem":"alreadyReplaced"`)
	if _, err = c.ObtainCertificate(ctx, acmez.OrderParameters{Account: acct, Identifiers: []acmezacme.Identifier{{Type: "dns", Value: name}},
		CSR: acmez.StaticCSR(csr), Replaces: first}); err != nil {
		t.Fatalf("acmez: replacing %x a second time, then ordering without replaces: %v", first.SerialNumber, err)
	}
	if refused := strings.Count(e.in.Logs.String(), `"problem":"alreadyReplaced"`); refused != refusedBefore+1 {
		t.Fatalf("the second replacement of %x was refused %d times with alreadyReplaced, want once", first.SerialNumber, refused-refusedBefore)
	}

	// The lego library, another account of the organisation: the whole organisation
	// is moved with --org.
	kid, mac := e.in.EAB(e.oid)
	lc := e.legoClient(kid, mac)
	other := e.name("api")
	res, err := lc.Certificate.Obtain(legocert.ObtainRequest{Domains: []string{other}, Bundle: true})
	if err != nil {
		t.Fatalf("lego: obtain: %v", err)
	}
	legoFirst, _ := e.check(harness.ParseChain(t, res.Certificate), other)
	info, err := lc.Certificate.GetRenewalInfo(legocert.RenewalInfoRequest{Cert: legoFirst})
	if err != nil {
		t.Fatalf("lego: renewal info: %v", err)
	}
	if at := info.ShouldRenewAt(time.Now(), 0); at != nil {
		t.Fatalf("lego would renew a fresh certificate now (%v)", at)
	}
	if out, err := e.in.CLI("renew-early", "--org", e.oid, "--reason", "mis-issuance at the organisation"); err != nil {
		t.Fatalf("renew-early --org: %v: %s", err, out)
	}
	info, err = lc.Certificate.GetRenewalInfo(legocert.RenewalInfoRequest{Cert: legoFirst})
	if err != nil {
		t.Fatalf("lego: renewal info after renew-early: %v", err)
	}
	if at := info.ShouldRenewAt(time.Now(), 0); at == nil || at.After(time.Now()) {
		t.Fatalf("after renew-early --org lego would renew at %v, want now", at)
	}
	certID, err := legocert.MakeARICertID(legoFirst)
	if err != nil {
		t.Fatal(err)
	}
	res, err = lc.Certificate.Obtain(legocert.ObtainRequest{Domains: []string{other}, Bundle: true, ReplacesCertID: certID})
	if err != nil {
		t.Fatalf("lego: renewal replacing %s: %v", certID, err)
	}
	legoSecond, _ := e.check(harness.ParseChain(t, res.Certificate), other)
	e.renewed(legoFirst, legoSecond)
}
