package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/store"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func secretFile(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t testing.TB, c Config) (policy.Plugin, error) {
	t.Helper()
	raw, _ := json.Marshal(c)
	return policy.Build(PluginName, raw, policy.Env{Profile: policy.ProfileInfo{Name: "sote-server"}})
}

// service answers with handler after checking the signature; it records the last body.
func service(t testing.TB, handler func(w http.ResponseWriter, r *http.Request, body Body)) (*httptest.Server, *Body) {
	t.Helper()
	var last Body
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, secret)
		mac.Write(raw)
		if r.Method != http.MethodPost || r.Header.Get(SignatureHeader) != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if err := json.Unmarshal(raw, &last); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		handler(w, r, last)
	}))
	t.Cleanup(srv.Close)
	return srv, &last
}

func loopbackConfig(t testing.TB, url string) Config {
	return Config{URL: url, SecretFile: secretFile(t, secret), Timeout: policy.Duration(300 * time.Millisecond), AllowNetworks: []string{"127.0.0.0/8", "::1/128"}}
}

func request() *policy.Request {
	return &policy.Request{Profile: "sote-server", Org: &store.Organisation{OID: "1.2.246.10.12345678.10.0", Name: "Apteekki"},
		AccountID: "acct-1", Identifiers: []acme.Identifier{{Type: "dns", Value: "www.example.fi"}}}
}

func TestAnswers(t *testing.T) {
	write := func(status int, body string) func(http.ResponseWriter, *http.Request, Body) {
		return func(w http.ResponseWriter, _ *http.Request, _ Body) { w.WriteHeader(status); io.WriteString(w, body) }
	}
	tests := []struct {
		name    string
		handler func(http.ResponseWriter, *http.Request, Body)
		wantErr string // "" allows
	}{
		{"an explicit allow allows", write(200, `{"allow": true}`), ""},
		{"allow with 204-like 2xx allows", write(202, `{"allow": true}`), ""},
		{"allow false refuses with the service's detail", write(200, `{"allow": false, "detail": "host not in inventory"}`), "refused the request: host not in inventory"},
		{"allow false without detail refuses", write(200, `{"allow": false}`), "refused the request"},
		{"a missing allow refuses", write(200, `{"detail": "ok"}`), `without "allow"`},
		{"allow as a string refuses", write(200, `{"allow": "true"}`), "other than a JSON object"},
		{"malformed JSON refuses", write(200, `{"allow": tru`), "other than a JSON object"},
		{"an empty body refuses", write(200, ``), "other than a JSON object"},
		{"trailing data refuses", write(200, `{"allow": true} {"allow": true}`), "other than a JSON object"},
		{"a duplicated allow cannot turn a refusal into an allow", write(200, `{"allow": false, "allow": true}`), `duplicate member "allow"`},
		{"a duplicated allow in another case refuses too", write(200, `{"allow": false, "Allow": true}`), `duplicate member "Allow"`},
		{"an allow in another case refuses", write(200, `{"ALLOW": true}`), `answered member "ALLOW"; the answer's members are "allow" and "detail", in lower case`},
		{"a detail in another case refuses", write(200, `{"allow": true, "Detail": "ok"}`), `answered member "Detail"`},
		{"a non-2xx status refuses even with allow", write(500, `{"allow": true}`), "HTTP 500"},
		{"a 403 refuses", write(403, `{"allow": true}`), "HTTP 403"},
		{"a redirect is not followed and refuses", func(w http.ResponseWriter, r *http.Request, _ Body) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, "HTTP 302"},
		{"an oversized answer refuses", write(200, `{"allow": true, "detail": "`+strings.Repeat("x", 70<<10)+`"}`), "more than"},
		{"a timeout refuses", func(w http.ResponseWriter, r *http.Request, _ Body) {
			<-r.Context().Done()
		}, "did not answer within 300ms"},
		{"a detail is cut and cleaned", write(200, `{"allow": false, "detail": "bad\u0007`+strings.Repeat("y", 300)+`"}`), "bad y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := service(t, tt.handler)
			p, err := build(t, loopbackConfig(t, srv.URL))
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			err = p.CheckOrder(context.Background(), request())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckOrder: %v", err)
				}
				return
			}
			ae, ok := acme.AsError(err)
			if !ok || ae.Kind != acme.Unauthorized || !strings.Contains(ae.Detail, tt.wantErr) {
				t.Fatalf("CheckOrder: %v, want unauthorized saying %q", err, tt.wantErr)
			}
			if len(ae.Detail) > 600 {
				t.Errorf("detail of %d bytes reaches the client", len(ae.Detail))
			}
		})
	}
}

func TestRequestBodyAndSignature(t *testing.T) {
	srv, last := service(t, func(w http.ResponseWriter, _ *http.Request, _ Body) { io.WriteString(w, `{"allow": true}`) })
	p, err := build(t, loopbackConfig(t, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckOrder(context.Background(), request()); err != nil {
		t.Fatalf("CheckOrder (a bad signature would be answered 401): %v", err)
	}
	if last.Phase != "order" || last.Organisation != "1.2.246.10.12345678.10.0" || last.Profile != "sote-server" ||
		len(last.Identifiers) != 1 || last.Identifiers[0].Value != "www.example.fi" || last.CSR != "" {
		t.Fatalf("order body %+v", *last)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}}, key)
	csr, _ := x509.ParseCertificateRequest(der)
	r := request()
	r.CSR = csr
	if err := p.CheckCSR(context.Background(), r); err != nil {
		t.Fatalf("CheckCSR: %v", err)
	}
	if last.Phase != "finalize" || last.CSR != base64.RawURLEncoding.EncodeToString(der) {
		t.Fatalf("finalize body phase %q csr %q", last.Phase, last.CSR)
	}
}

func TestWrongSecretIsRefused(t *testing.T) {
	srv, _ := service(t, func(w http.ResponseWriter, _ *http.Request, _ Body) { io.WriteString(w, `{"allow": true}`) })
	c := loopbackConfig(t, srv.URL)
	c.SecretFile = secretFile(t, []byte("another secret of 32 bytes......"))
	p, err := build(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckOrder(context.Background(), request()); !acme.IsKind(err, acme.Unauthorized) {
		t.Fatalf("CheckOrder signed with the wrong secret: %v, want unauthorized", err)
	}
}

// The address rules apply where the connection is made: a name that resolves to
// loopback is refused without allow_networks.
func TestDialRefusesInternalAddresses(t *testing.T) {
	srv, _ := service(t, func(w http.ResponseWriter, _ *http.Request, _ Body) { io.WriteString(w, `{"allow": true}`) })
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	tests := []struct {
		name  string
		url   string
		allow []string
	}{
		{"https to a name resolving to loopback", "https://localhost:" + port + "/", nil},
		{"http to a name resolving to loopback", "http://localhost:" + port + "/", nil},
		{"http to loopback allowed for another network", "http://localhost:" + port + "/", []string{"10.0.0.0/8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := build(t, Config{URL: tt.url, SecretFile: secretFile(t, secret), AllowNetworks: tt.allow, Timeout: policy.Duration(2 * time.Second)})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			err = p.CheckOrder(context.Background(), request())
			if !acme.IsKind(err, acme.Unauthorized) || !strings.Contains(err.Error(), "could not be reached") {
				t.Fatalf("CheckOrder: %v, want a refusal: the address is internal", err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	sf := secretFile(t, secret)
	tests := []struct {
		name string
		raw  string
		want string // "" builds
	}{
		{"https to a public address builds", `{"url": "https://9.9.9.9/check", "secret_file": "` + sf + `"}`, ""},
		{"https to a host name builds", `{"url": "https://policy.example.fi/check", "secret_file": "` + sf + `"}`, ""},
		{"loopback with allow_networks builds", `{"url": "http://127.0.0.1:8080/", "secret_file": "` + sf + `", "allow_networks": ["127.0.0.0/8"]}`, ""},
		{"loopback without allow_networks is refused", `{"url": "https://127.0.0.1/", "secret_file": "` + sf + `"}`, "not a public address"},
		{"a private address is refused", `{"url": "https://10.1.2.3/", "secret_file": "` + sf + `"}`, "not a public address"},
		{"cloud metadata is refused", `{"url": "https://169.254.169.254/", "secret_file": "` + sf + `"}`, "not a public address"},
		{"an IPv4-mapped loopback is refused", `{"url": "https://[::ffff:127.0.0.1]/", "secret_file": "` + sf + `"}`, "not a public address"},
		{"plain http to a public address is refused", `{"url": "http://9.9.9.9/", "secret_file": "` + sf + `"}`, "use https"},
		{"another scheme is refused", `{"url": "ftp://policy.example.fi/", "secret_file": "` + sf + `"}`, "http or https"},
		{"user info is refused", `{"url": "https://u:p@policy.example.fi/", "secret_file": "` + sf + `"}`, "user info"},
		{"no url is refused", `{"secret_file": "` + sf + `"}`, "url is required"},
		{"no secret is refused", `{"url": "https://policy.example.fi/"}`, "secret_file is required"},
		{"a missing secret file is refused", `{"url": "https://policy.example.fi/", "secret_file": "/nonexistent/secret"}`, "secret_file"},
		{"a short secret is refused", `{"url": "https://policy.example.fi/", "secret_file": "` + secretFile(t, []byte("short")) + `"}`, "at least 16"},
		{"a bad network is refused", `{"url": "https://policy.example.fi/", "secret_file": "` + sf + `", "allow_networks": ["intranet"]}`, "not a CIDR"},
		{"a timeout over a minute is refused", `{"url": "https://policy.example.fi/", "secret_file": "` + sf + `", "timeout": "2m"}`, "timeout"},
		{"an unknown key is refused", `{"url": "https://policy.example.fi/", "secret_file": "` + sf + `", "secret": "x"}`, `unknown field "secret"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Build(PluginName, json.RawMessage(tt.raw), policy.Env{})
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Build: %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), string(secret)) {
				t.Fatalf("the error shows the secret")
			}
		})
	}
}
