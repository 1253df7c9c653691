package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/varmenne/varmenne/revocation"
)

// ocspFuzz is the OCSP responder behind the real HTTP handler, for the issuer in
// testdata/ocsp (made with openssl, as the requests there were: see its README),
// over a SQLite store where serial 0a is issued, 0b revoked and 0c only intended.
type ocspFuzz struct {
	issuer Issuer
	h      http.Handler
	want   map[string]int // what a signed answer says of each serial the issuer has
}

func newOCSPFuzz(f *testing.F) *ocspFuzz {
	f.Helper()
	read := func(name, typ string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "ocsp", name))
		if err != nil {
			f.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != typ {
			f.Fatalf("%s holds no %s", name, typ)
		}
		return block.Bytes
	}
	cert, err := x509.ParseCertificate(read("issuer.pem", "CERTIFICATE"))
	if err != nil {
		f.Fatal(err)
	}
	key, err := x509.ParseECPrivateKey(read("issuer.key", "EC PRIVATE KEY"))
	if err != nil {
		f.Fatal(err)
	}
	is := withResponder(f, "production", cert, key)
	d := newDB(f)
	d.issue("0a", "production", t0.AddDate(1, 0, 0))
	d.issue("0b", "production", t0.AddDate(1, 0, 0))
	d.revoke("0b", t0.Add(-time.Hour), revocation.KeyCompromise.Code, time.Time{})
	d.intent("0c", "production", nil)

	clock := newClock()
	quiet := slog.New(slog.DiscardHandler)
	o, err := NewOCSP(OCSPConfig{Now: clock.Now, Log: quiet}, d, []Issuer{is})
	if err != nil {
		f.Fatal(err)
	}
	p, err := NewPublisher(Config{Now: clock.Now, Log: quiet}, d, []Issuer{is})
	if err != nil {
		f.Fatal(err)
	}
	return &ocspFuzz{issuer: is, h: Handler(p, o, quiet), want: map[string]int{"0a": ocsp.Good, "0b": ocsp.Revoked, "0c": ocsp.Unknown}}
}

func (z *ocspFuzz) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	z.h.ServeHTTP(w, r)
	return w
}

// check holds an answer of 200 to what every OCSP answer must be: an
// application/ocsp-response that is either unsigned malformedRequest or
// unauthorized, or signed by the issuer's responder about a serial the issuer has,
// with that serial's status. When the request is known, the answer is about it,
// and a request x/crypto/ocsp cannot read is malformedRequest.
func (z *ocspFuzz) check(t *testing.T, w *httptest.ResponseRecorder, request []byte) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/ocsp-response" {
		t.Fatalf("answer of type %q", ct)
	}
	body := w.Body.Bytes()
	resp, err := ocsp.ParseResponse(body, z.issuer.Cert)
	var re ocsp.ResponseError
	switch {
	case errors.As(err, &re):
		if re.Status != ocsp.Malformed && re.Status != ocsp.Unauthorized {
			t.Fatalf("unsigned answer %v", re)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("an unsigned answer may be cached: %q", w.Header().Get("Cache-Control"))
		}
	case err != nil: // ParseResponse checks the signature and the responder's certificate
		t.Fatalf("the answer %x is not an OCSP response signed for the issuer: %v", body, err)
	default:
		serial := hex.EncodeToString(resp.SerialNumber.Bytes())
		want, has := z.want[serial]
		if !has || resp.Status != want {
			t.Fatalf("a signed answer says %d of serial %s", resp.Status, serial)
		}
	}
	if request == nil {
		return
	}
	req, perr := ocsp.ParseRequest(request)
	switch {
	case perr != nil && (err == nil || re.Status != ocsp.Malformed):
		t.Fatalf("a request ocsp.ParseRequest refuses (%v) got %v", perr, err)
	case perr == nil && err == nil && resp.SerialNumber.Cmp(req.SerialNumber) != 0:
		t.Fatalf("asked about %x, answered about %x", req.SerialNumber, resp.SerialNumber)
	}
}

func ocspSeeds(f *testing.F) map[string][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "ocsp", "*.der"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no OCSP requests in testdata/ocsp: %v", err)
	}
	seeds := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds[filepath.Base(p)] = b
	}
	return seeds
}

// FuzzOCSPRequest fuzzes the DER request of RFC 6960 as a relying party POSTs it,
// then asks the same by GET (base64 in the path, RFC 6960 A.1): both answers hold
// to check, and, the clock standing still, they are the same bytes. Seeds: the
// openssl requests in testdata/ocsp and testdata/fuzz/FuzzOCSPRequest.
func FuzzOCSPRequest(f *testing.F) {
	seeds := ocspSeeds(f)
	for _, b := range seeds {
		f.Add(b)
	}
	z := newOCSPFuzz(f)
	// The openssl requests are answered as a relying party expects, or the
	// properties below would hold of refusals only.
	const unauthorized = -1
	for name, want := range map[string]int{
		"good_sha1.der": ocsp.Good, "good_sha1_nonce.der": ocsp.Good, "good_sha256.der": ocsp.Good, "two_serials.der": ocsp.Good,
		"revoked_sha1.der": ocsp.Revoked, "pending_sha1.der": ocsp.Unknown,
		"never_issued_sha1.der": unauthorized, "other_issuer.der": unauthorized,
	} {
		w := z.serve(httptest.NewRequest(http.MethodPost, "/ocsp/production", bytes.NewReader(seeds[name])))
		resp, err := ocsp.ParseResponse(w.Body.Bytes(), z.issuer.Cert)
		got := unauthorized
		if err == nil {
			got = resp.Status
		} else if !errors.Is(err, ocsp.ResponseError{Status: ocsp.Unauthorized}) {
			f.Fatalf("%s: %v", name, err)
		}
		if got != want {
			f.Fatalf("%s answered %d, want %d", name, got, want)
		}
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		r := httptest.NewRequest(http.MethodPost, "/ocsp/production", bytes.NewReader(der))
		r.Header.Set("Content-Type", "application/ocsp-request")
		post := z.serve(r)
		if len(der) > maxOCSPRequest {
			if post.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("a request of %d bytes got %d", len(der), post.Code)
			}
			return
		}
		if post.Code != http.StatusOK {
			t.Fatalf("POST got %d: %s", post.Code, post.Body)
		}
		z.check(t, post, der)
		if len(der) == 0 {
			return
		}
		get := z.serve(httptest.NewRequest(http.MethodGet, "/ocsp/production/"+url.PathEscape(base64.StdEncoding.EncodeToString(der)), nil))
		if get.Code != http.StatusOK {
			t.Fatalf("GET got %d: %s", get.Code, get.Body)
		}
		z.check(t, get, der)
		if !bytes.Equal(get.Body.Bytes(), post.Body.Bytes()) {
			t.Fatal("GET and POST of one request were answered differently")
		}
	})
}

// FuzzOCSPGET fuzzes the path of a GET as net/http delivers it (a request line
// it accepts): whatever the path, the answer is 400 for one that is not base64 of
// anything, or an OCSP answer that holds to check; never a server error.
func FuzzOCSPGET(f *testing.F) {
	for _, b := range ocspSeeds(f) {
		f.Add(url.PathEscape(base64.StdEncoding.EncodeToString(b)))
		f.Add(base64.StdEncoding.EncodeToString(b))    // "/" and "+" unescaped, as some clients send
		f.Add(base64.RawURLEncoding.EncodeToString(b)) // unpadded base64url
	}
	f.Add("")
	f.Add("%zz")
	f.Add("MEMwQTA/MD0wOzAJBgUrDgMCGgUABBQ//")
	z := newOCSPFuzz(f)
	f.Fuzz(func(t *testing.T, path string) {
		u, err := url.ParseRequestURI("/ocsp/production/" + path)
		if err != nil {
			return // net/http answers 400 itself
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL, r.RequestURI = u, u.RequestURI()
		w := z.serve(r)
		switch w.Code {
		case http.StatusBadRequest:
		case http.StatusOK:
			z.check(t, w, nil)
		default:
			t.Fatalf("GET %q got %d: %s", u.EscapedPath(), w.Code, w.Body)
		}
	})
}
