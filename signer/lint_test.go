package signer

import (
	"context"
	"crypto"
	"errors"
	"github.com/zmap/zlint/v3/lint"
	"io"
	"strings"
	"testing"
	"time"
)

// TestIssueLintRefusal: a certificate zlint refuses never reaches the issuer key,
// and the intent is closed with the lint's findings as its reason.
func TestIssueLintRefusal(t *testing.T) {
	tests := []struct {
		name       string
		issuerKind string
		subject    string
		change     func(*Profile)
		wantLint   string // a lint name the reason must contain
	}{
		{"validity over the 398 days a TLS server certificate may have", "p256", "p256",
			func(p *Profile) { p.Validity = 400 * 24 * time.Hour }, "e_tls_server_cert_valid_time_longer_than_398_days"},
		{"no CRL distribution point and no AIA", "p256", "p256",
			func(p *Profile) { p.CRLURL, p.IssuerURL, p.OCSPURL = "", "", "" }, "e_missing_crl_distrib_point"},
		{"Ed25519 issuer signature", "ed25519", "p256", nil, "e_signature_algorithm_not_supported"},
		{"Ed25519 subject key", "rsa", "ed25519", nil, "e_algorithm_identifier_improper_encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testProfile()
			if tt.change != nil {
				tt.change(&p)
			}
			h := newHarness(t, tt.issuerKind, p)
			got, err := h.ca.Issue(context.Background(), testRequest(t, tt.subject))
			if got != nil {
				t.Fatalf("issued serial %s, want a lint refusal", got.Serial)
			}
			if !errors.Is(err, ErrLint) || !errors.Is(err, ErrUnsigned) {
				t.Fatalf("error = %v, want ErrLint and ErrUnsigned", err)
			}
			if !strings.Contains(err.Error(), tt.wantLint) {
				t.Errorf("error %q does not name %s", err, tt.wantLint)
			}
			if n := h.ev.count("sign"); n != 0 {
				t.Errorf("issuer key called %d times, want 0", n)
			}
			if n := h.ev.count("intent"); n != 1 {
				t.Fatalf("%d intents recorded, want 1", n)
			}
			reasons := h.rec.failedReasons()
			if r := reasons[h.rec.intents[0].Serial]; !strings.Contains(r, tt.wantLint) {
				t.Errorf("intent %s closed with reason %q, want it to name %s", h.rec.intents[0].Serial, r, tt.wantLint)
			}
		})
	}
}

func TestNewLinterRefusesUnknownLint(t *testing.T) {
	if _, err := NewLinter(map[string]string{"e_no_such_lint": "typo"}); err == nil {
		t.Error("NewLinter accepted a lint name zlint does not know")
	}
	for name, why := range SOTEIgnoredLints {
		if strings.TrimSpace(why) == "" {
			t.Errorf("ignored lint %s has no reason", name)
		}
	}
}

// TestLinterRunsEveryLintButTheIgnored: the linter runs each certificate lint
// zlint registers, except the SOTE ignore list, exactly once.
func TestLinterRunsEveryLintButTheIgnored(t *testing.T) {
	l := DefaultLinter()
	ran := map[string]int{}
	for _, cl := range l.lints {
		ran[cl.Name]++
	}
	all := lint.GlobalRegistry().CertificateLints().Lints()
	if len(all) < 300 {
		t.Fatalf("zlint registers %d certificate lints; its lint packages are not linked in", len(all))
	}
	for _, cl := range all {
		_, ignored := SOTEIgnoredLints[cl.Name]
		switch n := ran[cl.Name]; {
		case ignored && n != 0:
			t.Errorf("ignored lint %s runs", cl.Name)
		case !ignored && n != 1:
			t.Errorf("lint %s runs %d times, want once", cl.Name, n)
		}
	}
}

func TestIssueCancelledBeforeSigningClosesIntent(t *testing.T) {
	h := newHarness(t, "p256", testProfile())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The recorder does not look at the context, so the intent is recorded and the
	// cancellation is noticed just before the key.
	_, err := h.ca.Issue(ctx, testRequest(t, "p256"))
	if !errors.Is(err, ErrUnsigned) || !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want ErrUnsigned and context.Canceled", err)
	}
	if n := h.ev.count("sign"); n != 0 {
		t.Errorf("issuer key called %d times, want 0", n)
	}
	if r := h.rec.failedReasons()[h.rec.intents[0].Serial]; !strings.Contains(r, "before signing") {
		t.Errorf("intent closed with reason %q", r)
	}
}

type ctxKey struct{}

// ctxSigner records the context its SignContext was given.
type ctxSigner struct {
	crypto.Signer
	got chan any
}

func (s *ctxSigner) SignContext(ctx context.Context, r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.got <- ctx.Value(ctxKey{})
	return s.Signer.Sign(r, digest, opts)
}

func TestIssueGivesContextSignerTheRequestContext(t *testing.T) {
	pki := newTestPKI(t, "p256")
	key := &ctxSigner{Signer: pki.issuer.Key, got: make(chan any, 1)}
	iss := *pki.issuer
	iss.Key = key
	ca := New(&iss, testProfile(), &fakeRecorder{ev: &events{}}, func() time.Time { return testNow }, nil)
	ctx := context.WithValue(context.Background(), ctxKey{}, "request-42")
	if _, err := ca.Issue(ctx, testRequest(t, "p256")); err != nil {
		t.Fatal(err)
	}
	if v := <-key.got; v != "request-42" {
		t.Errorf("SignContext saw context value %v, want request-42", v)
	}
}
