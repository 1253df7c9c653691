package jws_test

import (
	"slices"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// FuzzParse feeds arbitrary bodies to every parser. Nothing may panic, every refusal
// must be an *acme.Error (an untyped error would reach the client as serverInternal),
// and an accepted message must satisfy the rules Parse promises. The seed corpus is in
// testdata/fuzz/FuzzParse; valid bodies signed by fresh keys are added here.
func FuzzParse(f *testing.F) {
	k := keys()
	f.Add(sign(f, k.p256, "", testNonce, testURL, `{}`))
	f.Add(sign(f, k.ed, testKID, testNonce, testURL, ""))
	f.Add(sign(f, k.p384, "", "", testURL, `{"account":"x"}`))
	f.Add([]byte(mustEAB(f, "HS384")))
	outer := jwstest.JWK(k.p256)

	typed := func(t *testing.T, what string, err error) {
		if _, ok := acme.AsError(err); err != nil && !ok {
			t.Fatalf("%s returned untyped error %v", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := jws.Parse(body)
		typed(t, "Parse", err)
		if err == nil {
			if m.URL == "" || (m.JWK == nil) == (m.KID == "") || !slices.Contains(jws.Algorithms, m.Alg) {
				t.Fatalf("Parse accepted %+v", m)
			}
			key := m.JWK
			if key == nil {
				key = outer
			}
			_, err := m.Verify(key)
			typed(t, "Verify", err)
		}

		_, err = jws.ParseKeyChange(body)
		typed(t, "ParseKeyChange", err)

		e, err := jws.ParseEAB(body, testURL, outer)
		typed(t, "ParseEAB", err)
		if err == nil {
			typed(t, "VerifyMAC", e.VerifyMAC(hmacKey))
		}
	})
}
