package crl

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

type httpFixture struct {
	*pubFixture
	o   *OCSP
	srv *httptest.Server
}

func newHTTPFixture(t *testing.T, publish bool) *httpFixture {
	f := &httpFixture{pubFixture: newPubFixture(t, Config{})}
	o, err := NewOCSP(OCSPConfig{Now: f.clock.Now}, f.db, f.p.Issuers())
	if err != nil {
		t.Fatal(err)
	}
	f.o = o
	if publish {
		f.tick(t)
	}
	f.srv = httptest.NewServer(Handler(f.p, o, nil))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *httpFixture) do(t *testing.T, method, path, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestHandlerServesCRLsAndIssuers(t *testing.T) {
	f := newHTTPFixture(t, true)
	f.clock.Add(time.Hour - time.Second) // the CRL of t0 has 7 h 1 s left
	cur, _ := f.p.Current("production")
	cases := []struct {
		name, method, path string
		wantStatus         int
		wantType           string
		wantBody           []byte
		wantHeaders        map[string]string
	}{
		{name: "the CRL, cacheable until its nextUpdate", method: "GET", path: "/crl/production.crl", wantStatus: 200,
			wantType: "application/pkix-crl", wantBody: cur.DER, wantHeaders: map[string]string{
				"Cache-Control": "public, max-age=25201, no-transform",
				"Expires":       cur.NextUpdate.Format(http.TimeFormat),
				"Last-Modified": cur.ThisUpdate.Format(http.TimeFormat),
				"ETag":          `"1"`,
			}},
		{name: "HEAD of the CRL", method: "HEAD", path: "/crl/production.crl", wantStatus: 200, wantType: "application/pkix-crl"},
		{name: "the test issuer's CRL", method: "GET", path: "/crl/test.crl", wantStatus: 200, wantType: "application/pkix-crl"},
		{name: "the issuer certificate", method: "GET", path: "/issuer/production.cer", wantStatus: 200,
			wantType: "application/pkix-cert", wantBody: f.prod.Cert.Raw},
		{name: "an unknown issuer's CRL", method: "GET", path: "/crl/staging.crl", wantStatus: 404},
		{name: "a CRL without its suffix", method: "GET", path: "/crl/production", wantStatus: 404},
		{name: "an unknown issuer certificate", method: "GET", path: "/issuer/staging.cer", wantStatus: 404},
		{name: "POST to a CRL", method: "POST", path: "/crl/production.crl", wantStatus: 405},
		{name: "OCSP of an unknown issuer", method: "POST", path: "/ocsp/staging", wantStatus: 404},
		{name: "OCSP by PUT", method: "PUT", path: "/ocsp/production", wantStatus: 405},
		{name: "OCSP GET without a request", method: "GET", path: "/ocsp/production/", wantStatus: 400},
		{name: "OCSP GET with a request that is not base64", method: "GET", path: "/ocsp/production/!!!", wantStatus: 400},
		{name: "OCSP POST over 10 KiB", method: "POST", path: "/ocsp/production", wantStatus: 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.wantStatus == 413 {
				body = make([]byte, maxOCSPRequest+1)
			}
			resp, got := f.do(t, tc.method, tc.path, "", body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.wantStatus, got)
			}
			if tc.wantType != "" && resp.Header.Get("Content-Type") != tc.wantType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.wantType)
			}
			if tc.wantBody != nil && !bytes.Equal(got, tc.wantBody) {
				t.Errorf("body differs (%d bytes, want %d)", len(got), len(tc.wantBody))
			}
			for k, v := range tc.wantHeaders {
				if resp.Header.Get(k) != v {
					t.Errorf("%s: %q, want %q", k, resp.Header.Get(k), v)
				}
			}
		})
	}
	t.Run("a cache that holds the CRL gets 304", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/crl/production.crl", nil)
		req.Header.Set("If-None-Match", `"1"`)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("status %d, want 304", resp.StatusCode)
		}
	})
}

func TestHandlerBeforeTheFirstCRL(t *testing.T) {
	f := newHTTPFixture(t, false)
	resp, _ := f.do(t, "GET", "/crl/production.crl", "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q: want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestHandlerOCSP(t *testing.T) {
	f := newHTTPFixture(t, true)
	f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
	req := request(t, f.prod, "0a", crypto.SHA1)
	std := base64.StdEncoding.EncodeToString(req)
	cases := []struct {
		name, method, path string
		body               []byte
		wantCache          string
	}{
		{"POST", "POST", "/ocsp/production", req, "no-store"},
		{"GET with the base64 URL-escaped", "GET", "/ocsp/production/" + url.PathEscape(std), nil, "public, max-age=3600, no-transform"},
		{"GET with the base64 as it is", "GET", "/ocsp/production/" + std, nil, "public, max-age=3600, no-transform"},
		{"GET with URL-safe base64 without padding", "GET", "/ocsp/production/" + base64.RawURLEncoding.EncodeToString(req), nil,
			"public, max-age=3600, no-transform"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do(t, tc.method, tc.path, "application/ocsp-request", tc.body)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/ocsp-response" {
				t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			got, err := ocsp.ParseResponseForCert(body, nil, f.prod.Cert)
			if err != nil || got.Status != ocsp.Good {
				t.Fatalf("response %+v, %v: want good", got, err)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != tc.wantCache {
				t.Errorf("Cache-Control %q, want %q", cc, tc.wantCache)
			}
		})
	}
}

func TestDecodeGETRequest(t *testing.T) {
	req := []byte{0x30, 0xfb, 0xff, 0x3e, 0x01} // base64 "MPv/PgE=": a "/" in it
	plus := []byte{0xfb, 0xef}                  // base64 "++8="
	std := base64.StdEncoding.EncodeToString(req)
	cases := []struct {
		name, in string
		want     []byte // nil: refused
	}{
		{"standard", std, req},
		{"escaped", url.PathEscape(std), req},
		{"escaped slash", strings.ReplaceAll(std, "/", "%2F"), req},
		{"no padding", strings.TrimRight(std, "="), req},
		{"URL-safe", base64.URLEncoding.EncodeToString(req), req},
		{"plus as it is", base64.StdEncoding.EncodeToString(plus), plus},
		{"plus escaped", "%2B%2B8%3D", plus},
		{"plus turned into a space by a proxy", "  8=", plus},
		{"empty", "", nil},
		{"not base64", "!!!", nil},
		{"bad escape", "%zz", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeGETRequest(tc.in)
			if ok != (tc.want != nil) || !bytes.Equal(got, tc.want) {
				t.Errorf("decoded %x, %v; want %x", got, ok, tc.want)
			}
		})
	}
}
