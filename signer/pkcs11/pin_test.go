package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// TestChangePINThenRelogin: after the PIN is changed, a lost login is taken again
// with the new PIN the pool holds in memory; the old one would be refused and the
// pool would stop for good.
func TestChangePINThenRelogin(t *testing.T) {
	cfg := testConfig(t, 2)
	var relogins []error
	cfg.OnRelogin = func(err error) { relogins = append(relogins, err) }
	p, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if want := token(t).Label; p.Serial() == "" {
		t.Fatalf("the pool on token %q knows no serial number", want)
	}
	k := key(t, p, "ecdsa-p256")
	ctx := context.Background()
	if err := p.ChangePIN(ctx, "new-"+cfg.PIN); err != nil {
		t.Fatal(err)
	}
	// The token shared by the package's tests gets its PIN back.
	t.Cleanup(func() {
		if err := p.ChangePIN(context.Background(), cfg.PIN); err != nil {
			t.Errorf("the PIN could not be changed back: %v", err)
		}
	})
	hsmOp(t, p, "logout")
	d := sha256.Sum256([]byte("after the PIN change"))
	var last error
	for range 2 { // the first request may see the lost login
		var sig []byte
		sig, last = k.Sign(rand.Reader, d[:], crypto.SHA256)
		if last == nil && !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), d[:], sig) {
			t.Fatal("a signature that does not verify")
		}
	}
	if last != nil {
		t.Fatalf("signing after the logout: %v", last)
	}
	if len(relogins) == 0 || relogins[len(relogins)-1] != nil {
		t.Fatalf("re-logins heard %v; want the last to have succeeded with the new PIN", relogins)
	}
}

// TestInspectNeedsNoPIN: a token's serial and PIN counters are read without a
// login, and the serial is the one the pool checks.
func TestInspectNeedsNoPIN(t *testing.T) {
	cfg := testConfig(t, 1)
	cfg.PIN = ""
	st, err := Inspect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := openPool(t, 1)
	if st.Serial == "" || st.Serial != p.Serial() || st.Label != cfg.TokenLabel {
		t.Errorf("Inspect = %+v; the pool found serial %q", st, p.Serial())
	}
	good := testConfig(t, 1)
	good.Serial = st.Serial
	q, err := Open(good)
	if err != nil {
		t.Fatalf("Open with the token's own serial: %v", err)
	}
	q.Close()
}
