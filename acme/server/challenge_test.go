package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/store"
)

// TestChallengeIssuerDomainNames: a dns-persist-01 challenge tells the client which
// issuer domain names its record may use (draft-ietf-acme-dns-persist); no other
// challenge carries the field.
func TestChallengeIssuerDomainNames(t *testing.T) {
	s := &Server{cfg: Config{BaseURL: "https://acme.test", CAAIdentities: []string{"varmenne.example", "ca.varmenne.example"}}}
	for _, typ := range []string{acme.ChallengeHTTP01, acme.ChallengeDNS01, acme.ChallengeTLSALPN01, acme.ChallengeDNSAccount01, acme.ChallengeDNSPersist01} {
		b, err := json.Marshal(s.challengeJSON(&store.Challenge{ID: "c1", Type: typ, Token: "tok", Status: "pending"}))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Type  string   `json:"type"`
			Names []string `json:"issuer-domain-names"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := []string(nil)
		if typ == acme.ChallengeDNSPersist01 {
			want = []string{"varmenne.example", "ca.varmenne.example"}
		}
		if got.Type != typ || !slices.Equal(got.Names, want) {
			t.Errorf("%s: %s, want issuer-domain-names %q", typ, b, want)
		}
		if typ != acme.ChallengeDNSPersist01 && strings.Contains(string(b), "issuer-domain-names") {
			t.Errorf("%s carries issuer-domain-names: %s", typ, b)
		}
	}
}
