package ceremony

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
	"github.com/varmenne/varmenne/signer/pkcs11/softhsmtest"
	"github.com/varmenne/varmenne/store"
)

func TestActor(t *testing.T) {
	tests := []struct {
		name      string
		operators []string
		want      string // actor, or "" for a refusal
	}{
		{"two different people", []string{"Aino", "Eero"}, "Aino+Eero"},
		{"three people", []string{"Aino", "Eero", "Liisa"}, "Aino+Eero+Liisa"},
		{"one person", []string{"Aino"}, ""},
		{"the same person twice", []string{"Aino", " Aino "}, ""},
		{"an empty name", []string{"Aino", " "}, ""},
		{"nobody", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Actor(tt.operators)
			if tt.want == "" {
				if err == nil {
					t.Errorf("accepted %q as %q", tt.operators, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Actor(%q) = %q, %v; want %q", tt.operators, got, err, tt.want)
			}
		})
	}
}

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pin")
	if err := os.WriteFile(file, []byte("123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withMode := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("123456\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	readOnly, groupReadable, worldReadable := withMode("pin-0400", 0o400), withMode("pin-0640", 0o640), withMode("pin-0644", 0o644)
	held := func() (string, error) { return "777777", nil }
	tests := []struct {
		name    string
		pinFile string
		from    func() (string, error)
		env     string
		want    string // "" means an error
		errHas  string
	}{
		{"from the file, newline dropped", file, nil, "", "123456", ""},
		{"from a 0400 file", readOnly, nil, "", "123456", ""},
		{"the file wins over the environment", file, nil, "999999", "123456", ""},
		{"from the environment", "", nil, "654321", "654321", ""},
		{"held by the command (PINFrom) before the environment", "", held, "654321", "777777", ""},
		{"neither", "", nil, "", "", "--pkcs11-pin-file"},
		{"empty file", empty, nil, "", "", "empty"},
		{"missing file", filepath.Join(dir, "nope"), nil, "", "", "cannot read"},
		{"a file group may read", groupReadable, nil, "", "", groupReadable + " is readable by group or others (mode 0640); fix with: chmod 600 " + groupReadable},
		{"a file anyone may read", worldReadable, nil, "", "", "fix with: chmod 600 " + worldReadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(PINEnv, tt.env)
			} else {
				t.Setenv(PINEnv, "")
				os.Unsetenv(PINEnv)
			}
			got, err := HSM{PINFile: tt.pinFile, PINFrom: tt.from}.ReadPIN()
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("ReadPIN = %q, %v; want an error saying %q", got, err, tt.errHas)
				}
				if err != nil && strings.Contains(err.Error(), "123456") {
					t.Errorf("the error %q holds the PIN", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ReadPIN = %q, %v; want %q", got, err, tt.want)
			}
			if tt.pinFile == "" && tt.from == nil {
				if _, ok := os.LookupEnv(PINEnv); ok {
					t.Errorf("%s is still in the environment after reading it", PINEnv)
				}
			}
		})
	}
}

// memoryLog is an audit log store in memory.
type memoryLog struct {
	mu     sync.Mutex
	events []store.AuditEvent
	fail   bool
}

func (m *memoryLog) AppendAudit(_ context.Context, e store.AuditEvent, seal func(store.AuditEvent) (string, error)) (store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return store.AuditEvent{}, errors.New("the audit log is down")
	}
	e.Seq = int64(len(m.events) + 1)
	h, err := seal(e)
	if err != nil {
		return store.AuditEvent{}, err
	}
	e.Hash = h
	m.events = append(m.events, e)
	return e, nil
}

// Audited is unused: the ceremony appends its events one by one.
func (m *memoryLog) Audited(context.Context, store.Seal, func(*store.Tx) ([]store.AuditEvent, error)) ([]store.AuditEvent, error) {
	return nil, errors.New("memoryLog: no transactions")
}

func (m *memoryLog) AuditedRows(ctx context.Context, seal store.Seal, change func(*store.Tx) ([]store.AuditEvent, error)) ([]store.AuditEvent, error) {
	return m.Audited(ctx, seal, change)
}

func (m *memoryLog) AuditEvents(_ context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.AuditEvent
	for _, e := range m.events {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memoryLog) actions() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.events {
		out = append(out, e.Action)
	}
	return out
}

// newToken is a private SoftHSM2 token; a missing softhsm2 fails the test.
func newToken(t *testing.T) HSM {
	t.Helper()
	if err := softhsmtest.Check(); err != nil {
		t.Fatal(err)
	}
	conf, err := softhsmtest.Config(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	tok, err := softhsmtest.NewToken(conf, "ceremony-test")
	if err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return HSM{Module: softhsmtest.Module, Token: tok.Label, Slot: -1, PINFile: pinFile, Sessions: 2,
		Labels: map[string]string{"root": "varmenne-root", "test-root": "varmenne-test-root", "production": "varmenne-production", "test": "varmenne-test"}}
}

// TestCeremonyAndPairing: a ceremony in SoftHSM2 makes the keys and certificates and
// records every step; the start pairs them, and refuses a certificate that is not
// its HSM key's and a listener certificate that is expired or lacks a name; a
// listener-only ceremony makes a certificate for a new name from the same root.
func TestCeremonyAndPairing(t *testing.T) {
	h := newToken(t)
	pool, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	data := t.TempDir()
	dir := filepath.Join(data, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mem := &memoryLog{}
	var out bytes.Buffer
	operatorCA := 0
	c := &Ceremony{Log: audit.New(mem, nil), Actor: "Aino+Eero", Pool: pool, Dir: dir, Now: time.Now(), Out: &out,
		OperatorCA: func(context.Context) error { operatorCA++; return nil }}
	if err := c.Run(ctx, h, "ecdsa-p256", "Testi", []string{"acme.example", "192.0.2.7"}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"key.generate", "key.generate", "key.generate", "key.generate", "key.selftest", "key.selftest",
		"certificate.create", "certificate.create", "certificate.create", "certificate.create", "certificate.create", "ceremony.init"}
	if got := mem.actions(); !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q", got, want)
	}
	if operatorCA != 1 {
		t.Errorf("the operator CA hook ran %d times, want once", operatorCA)
	}
	for _, f := range []string{"pki/root.pem", "pki/test-root.pem", "pki/production.pem", "pki/test.pem", "pki/tls.pem", "pki/tls.key", "roots.pem", "test-roots.pem"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("the ceremony made no %s: %v", f, err)
		}
	}
	for _, want := range []string{"Keys generated in token \"ceremony-test\" by Aino+Eero",
		"Production relying parties and ACME clients trust " + filepath.Join(data, "roots.pem") + " only; test environments trust " + filepath.Join(data, "test-roots.pem")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}

	pki, err := LoadPKI(ctx, pool, h.Labels, dir, []string{"localhost", "acme.example", "192.0.2.7"}, time.Now())
	if err != nil {
		t.Fatalf("LoadPKI: %v", err)
	}
	if err := pki.Production.Cert.CheckSignatureFrom(pki.Root); err != nil || pki.Test == nil || pki.ProductionOCSP == nil {
		t.Errorf("paired PKI %+v: %v", pki, err)
	}
	t.Run("two hierarchies: the test issuer chains to the test root only, and the roots files say so", func(t *testing.T) {
		testRoot, err := pool.Key(ctx, h.Labels["test-root"])
		if err != nil {
			t.Fatalf("no test root key in the HSM: %v", err)
		}
		if pki.SharedTestRoot || pki.TestRoot.Equal(pki.Root) || !testRoot.Public().(*ecdsa.PublicKey).Equal(pki.TestRoot.PublicKey) {
			t.Fatal("the test root is not a root of its own made from the HSM's test root key")
		}
		if !strings.Contains(pki.TestRoot.Subject.CommonName, "TEST root") || !strings.Contains(pki.Root.Subject.CommonName, "production root") {
			t.Errorf("roots named %q and %q", pki.Root.Subject.CommonName, pki.TestRoot.Subject.CommonName)
		}
		for _, tt := range []struct {
			issuer      *x509.Certificate
			own, other  *x509.Certificate
			description string
		}{
			{pki.Test.Cert, pki.TestRoot, pki.Root, "test issuer"},
			{pki.Production.Cert, pki.Root, pki.TestRoot, "production issuer"},
			{pki.TLS.Leaf, pki.Root, pki.TestRoot, "listener certificate"},
		} {
			own, other := x509.NewCertPool(), x509.NewCertPool()
			own.AddCert(tt.own)
			other.AddCert(tt.other)
			opts := x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
			opts.Roots = own
			if _, err := tt.issuer.Verify(opts); err != nil {
				t.Errorf("the %s does not verify to its root: %v", tt.description, err)
			}
			opts.Roots = other
			if _, err := tt.issuer.Verify(opts); err == nil {
				t.Errorf("the %s verifies to the other hierarchy's root", tt.description)
			}
		}
		for _, f := range []struct {
			name string
			want *x509.Certificate
		}{{"roots.pem", pki.Root}, {"test-roots.pem", pki.TestRoot}} {
			got, err := os.ReadFile(filepath.Join(data, f.name))
			if err != nil || !bytes.Equal(got, filekey.CertPEM(f.want)) {
				t.Errorf("%s does not hold exactly %s: %v", f.name, f.want.Subject, err)
			}
		}
	})

	swapped := map[string]string{"production": "varmenne-test", "test": "varmenne-test"}
	refusals := []struct {
		name   string
		labels map[string]string
		names  []string
		now    time.Time
		want   string
	}{
		{"an issuer certificate of another HSM key", swapped, nil, time.Now(), "the public keys differ; give the right --pkcs11-production-key"},
		{"a listener certificate without a name asked for", h.Labels, []string{"other.example"}, time.Now(), "does not name other.example"},
		{"an expired listener certificate", h.Labels, nil, time.Now().AddDate(2, 0, 0), "expired on"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadPKI(ctx, pool, tt.labels, dir, tt.names, tt.now)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadPKI = %v, want an error saying %q", err, tt.want)
			}
		})
	}

	t.Run("a new listener certificate for a new name", func(t *testing.T) {
		if err := c.ListenerOnly(ctx, h.Labels["root"], []string{"new.example"}); err != nil {
			t.Fatalf("ListenerOnly: %v", err)
		}
		if _, err := LoadPKI(ctx, pool, h.Labels, dir, []string{"new.example"}, time.Now()); err != nil {
			t.Errorf("LoadPKI after ListenerOnly: %v", err)
		}
		if err := c.ListenerOnly(ctx, h.Labels["test"], nil); err == nil || !strings.Contains(err.Error(), "give the right --pkcs11-root-key") {
			t.Errorf("ListenerOnly with the test issuer's key = %v, want a refusal", err)
		}
	})

	t.Run("serve pairs the issuer keys without the root keys' labels", func(t *testing.T) {
		if _, err := LoadPKI(ctx, pool, map[string]string{"production": "varmenne-production", "test": "varmenne-test"}, dir, nil, time.Now()); err != nil {
			t.Errorf("LoadPKI with the issuer labels only: %v", err)
		}
	})

	t.Run("OpenPKI logs each issuer's self-test", func(t *testing.T) {
		var logs bytes.Buffer
		var events []string
		h := h
		h.OnEvent = func(e audit.Event, err error) error {
			events = append(events, fmt.Sprintf("%s %s %v", e.Action(), audit.Object(e), err))
			return nil
		}
		pki, closeKeys, err := OpenPKI(ctx, h, dir, []string{"new.example"}, time.Now(), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatalf("OpenPKI: %v", err)
		}
		defer closeKeys()
		if _, ok := pki.Production.Key.(*pkcs11.Key); !ok {
			t.Errorf("the production issuer signs with %T, not the HSM key", pki.Production.Key)
		}
		if n := strings.Count(logs.String(), "passed its self-test"); n != 2 || strings.Contains(logs.String(), "can leave the token") {
			t.Errorf("log:\n%s", logs.String())
		}
		st, err := pkcs11.Inspect(pkcs11.Config{Module: h.Module, TokenLabel: h.Token})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"hsm.login token=ceremony-test serial=" + st.Serial + " <nil>",
			"hsm.selftest token=ceremony-test key=varmenne-production <nil>", "hsm.selftest token=ceremony-test key=varmenne-test <nil>"}
		if !slices.Equal(events, want) {
			t.Errorf("OpenPKI recorded %q, want %q", events, want)
		}
	})
}

// TestLoadPKIBeforeTheTestRoot: a data directory from a ceremony before the test
// root (test.pem signed by root.pem, no test-root.pem) is paired as it is and
// reported; a test issuer whose root is lost is refused.
func TestLoadPKIBeforeTheTestRoot(t *testing.T) {
	h := newToken(t)
	pool, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &Ceremony{Log: audit.New(&memoryLog{}, nil), Actor: "Aino+Eero", Pool: pool, Dir: dir, Now: time.Now(), Out: &bytes.Buffer{}}
	if err := c.Run(ctx, h, "ecdsa-p256", "Testi", nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The test issuer as the old ceremony made it: signed by the production root.
	root, err := readCert(filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	rootKey, err := pool.Key(ctx, h.Labels["root"])
	if err != nil {
		t.Fatal(err)
	}
	test, err := readCert(filepath.Join(dir, "test.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := caTemplate(test.Subject, time.Now(), test.NotAfter, 0)
	old, err := c.sign(tmpl, root, &publicOnly{test.PublicKey}, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeCertPEM(filepath.Join(dir, "test.pem"), old); err != nil {
		t.Fatal(err)
	}
	testRootPEM, err := os.ReadFile(filepath.Join(dir, "test-root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "test-root.pem")); err != nil {
		t.Fatal(err)
	}

	pki, err := LoadPKI(ctx, pool, h.Labels, dir, nil, time.Now())
	if err != nil {
		t.Fatalf("LoadPKI of an old directory: %v", err)
	}
	if !pki.SharedTestRoot || !pki.TestRoot.Equal(pki.Root) || !pki.Test.Cert.Equal(old) {
		t.Errorf("SharedTestRoot %v: want the old test issuer under the production root, reported", pki.SharedTestRoot)
	}

	t.Run("a test issuer signed by neither root is refused", func(t *testing.T) {
		// test.pem back under its test root, whose certificate is gone.
		if err := os.WriteFile(filepath.Join(dir, "test.pem"), filekey.CertPEM(test), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPKI(ctx, pool, h.Labels, dir, nil, time.Now())
		if want := filepath.Join(dir, "test-root.pem") + " is missing"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadPKI = %v, want an error saying %q", err, want)
		}
	})
	t.Run("with its test root back, the test issuer is under it again", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "test-root.pem"), testRootPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		pki, err := LoadPKI(ctx, pool, h.Labels, dir, nil, time.Now())
		if err != nil || pki.SharedTestRoot {
			t.Errorf("LoadPKI = %v, SharedTestRoot %v", err, pki != nil && pki.SharedTestRoot)
		}
	})
}

// publicOnly is a public key standing in as the subject's crypto.Signer for
// Ceremony.sign, which uses only its public half.
type publicOnly struct{ pub crypto.PublicKey }

func (p *publicOnly) Public() crypto.PublicKey { return p.pub }
func (p *publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("publicOnly does not sign")
}

// TestCeremonyStopsWithoutARecord: a ceremony whose audit log cannot be written stops
// before it makes a second key.
func TestCeremonyStopsWithoutARecord(t *testing.T) {
	h := newToken(t)
	pool, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	dir := t.TempDir()
	c := &Ceremony{Log: audit.New(&memoryLog{fail: true}, nil), Actor: "Aino+Eero", Pool: pool, Dir: dir, Now: time.Now(), Out: &bytes.Buffer{}}
	err = c.Run(context.Background(), h, "ecdsa-p256", "Testi", nil)
	if err == nil || !strings.Contains(err.Error(), "writing the ceremony record") {
		t.Fatalf("Run = %v, want a refusal for the unwritten record", err)
	}
	if _, err := pool.Key(context.Background(), "varmenne-production"); err == nil {
		t.Error("the production key was made after the first record failed")
	}
	if _, err := os.Stat(filepath.Join(dir, "root.pem")); err == nil {
		t.Error("root.pem was written")
	}
}

// TestNewGenerationInTheHSM: after a ceremony, NewGeneration makes the production
// hierarchy's second issuer generation inside the token — a key that cannot
// leave it, labelled varmenne-production-2, certified by the production root key
// in the token, self-tested, each step recorded — and LoadPKI pairs it at the
// next start beside the first, both verifying to the production root only.
func TestNewGenerationInTheHSM(t *testing.T) {
	h := newToken(t)
	pool, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mem := &memoryLog{}
	var out bytes.Buffer
	c := &Ceremony{Log: audit.New(mem, nil), Actor: "Aino+Eero", Pool: pool, Dir: dir, Now: time.Now(), Out: &out}
	if err := c.Run(ctx, h, "ecdsa-p256", "Testi", nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	before := len(mem.actions())
	name, err := c.NewGeneration(ctx, h, RoleProduction)
	if err != nil || name != "production-2" {
		t.Fatalf("NewGeneration: %q, %v", name, err)
	}
	if got, want := mem.actions()[before:], []string{"key.generate", "key.selftest", "certificate.create"}; !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q", got, want)
	}
	if _, err := c.NewGeneration(ctx, h, "staging"); err == nil || !strings.Contains(err.Error(), "give production or test") {
		t.Errorf("a hierarchy that does not exist: %v", err)
	}

	pki, err := LoadPKI(ctx, pool, h.Labels, dir, []string{"localhost"}, time.Now())
	if err != nil {
		t.Fatalf("LoadPKI with a second generation: %v", err)
	}
	g := pki.Generation("production-2")
	if g == nil || g.Hierarchy != RoleProduction || g.Number != 2 || g.OCSP == nil {
		t.Fatalf("LoadPKI did not load production-2 with its responder: %+v", pki.Generations)
	}
	info := g.Issuer.Key.(*pkcs11.Key).Info()
	if info.Label != "varmenne-production-2" || info.Extractable || !info.Sensitive {
		t.Errorf("the new key is %+v: want label varmenne-production-2, sensitive, not extractable", info)
	}
	if !strings.HasSuffix(g.Issuer.Cert.Subject.CommonName, " G2") || g.Issuer.Cert.Subject.CommonName == pki.Production.Cert.Subject.CommonName {
		t.Errorf("second generation named %q beside %q", g.Issuer.Cert.Subject.CommonName, pki.Production.Cert.Subject.CommonName)
	}
	own, other := x509.NewCertPool(), x509.NewCertPool()
	own.AddCert(pki.Root)
	other.AddCert(pki.TestRoot)
	opts := x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, Roots: own}
	if _, err := g.Issuer.Cert.Verify(opts); err != nil {
		t.Errorf("production-2 does not verify to the production root: %v", err)
	}
	opts.Roots = other
	if _, err := g.Issuer.Cert.Verify(opts); err == nil {
		t.Error("production-2 verifies to the test root")
	}
	if end := g.Issuer.Cert.NotAfter; end.Before(time.Now().AddDate(5, 0, -1)) || end.After(pki.Root.NotAfter) {
		t.Errorf("production-2 ends %s: want five years from now, within its root's life (%s)", end, pki.Root.NotAfter)
	}
}
