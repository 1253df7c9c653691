package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
)

// pinEnv is where the HSM PIN may come from when no PIN file is given. There is no
// PIN flag: a command line is visible to every user of the machine.
const pinEnv = "VARMENNE_PKCS11_PIN"

// hsmConfig is where the issuer keys live when they are in an HSM.
type hsmConfig struct {
	module   string
	token    string
	slot     int
	pinFile  string
	sessions int
	keys     map[string]*string // role (root, production, test) → key label
}

// hsmFlags adds the --pkcs11-* flags. roles are the keys the command uses.
func hsmFlags(fs *flag.FlagSet, roles ...string) *hsmConfig {
	h := &hsmConfig{keys: map[string]*string{}}
	fs.StringVar(&h.module, "pkcs11-module", "", "PKCS#11 library of the HSM holding the root and issuer keys, e.g. /usr/lib/softhsm/libsofthsm2.so (empty: development file keys)")
	fs.StringVar(&h.token, "pkcs11-token", "", "label of the HSM token holding the keys")
	fs.IntVar(&h.slot, "pkcs11-slot", -1, "slot of the token, when its label is not unique")
	fs.StringVar(&h.pinFile, "pkcs11-pin-file", "", "file holding the token's user PIN (otherwise the PIN is read from $"+pinEnv+")")
	fs.IntVar(&h.sessions, "pkcs11-sessions", pkcs11.DefaultSessions, "HSM sessions kept open; each runs one signature at a time")
	for _, r := range roles {
		h.keys[r] = fs.String("pkcs11-"+r+"-key", "varmenne-"+r, "label of the "+r+" key in the token")
	}
	return h
}

func (h *hsmConfig) enabled() bool { return h.module != "" }

// readPIN reads the PIN from the file, or from the environment, and removes it from
// the environment so no child process inherits it.
func (h *hsmConfig) readPIN() (string, error) {
	if h.pinFile != "" {
		b, err := os.ReadFile(h.pinFile)
		if err != nil {
			return "", fmt.Errorf("cannot read the PIN file: %w", err)
		}
		pin := strings.TrimRight(string(b), "\r\n")
		if pin == "" {
			return "", fmt.Errorf("the PIN file %s is empty", h.pinFile)
		}
		return pin, nil
	}
	pin, ok := os.LookupEnv(pinEnv)
	os.Unsetenv(pinEnv)
	if !ok || pin == "" {
		return "", fmt.Errorf("no HSM PIN: give --pkcs11-pin-file FILE or set %s", pinEnv)
	}
	return pin, nil
}

// open opens the session pool on the token.
func (h *hsmConfig) open() (*pkcs11.Pool, error) {
	if h.token == "" && h.slot < 0 {
		return nil, errors.New("--pkcs11-module needs --pkcs11-token LABEL (or --pkcs11-slot N)")
	}
	if h.sessions < 1 {
		return nil, fmt.Errorf("--pkcs11-sessions %d: give 1 or more", h.sessions)
	}
	pin, err := h.readPIN()
	if err != nil {
		return nil, err
	}
	cfg := pkcs11.Config{Module: h.module, TokenLabel: h.token, PIN: pin, Sessions: h.sessions}
	if h.slot >= 0 {
		slot := uint(h.slot)
		cfg.Slot = &slot
	}
	return pkcs11.Open(cfg)
}

// issuerKeys loads the root, the issuers and the listener's TLS certificate: from
// the HSM and the certificates `varmenne init` wrote when --pkcs11-module is given,
// otherwise the development PKI of file keys (made on first start). The returned
// function releases the HSM.
func issuerKeys(ctx context.Context, h *hsmConfig, data, devKeyType string, names []string, log *slog.Logger) (*filekey.DevPKI, func(), error) {
	dir := filepath.Join(data, "pki")
	if !h.enabled() {
		pki, created, err := filekey.EnsureDevPKI(dir, devKeyType, names)
		if err != nil {
			return nil, nil, fmt.Errorf("development PKI: %w", err)
		}
		log.Warn("DEVELOPMENT PKI: the root and issuer keys are files in the data directory and are for development and testing only; production keeps issuer keys in an HSM (--pkcs11-module)",
			"dir", dir, "created", created)
		return pki, func() {}, nil
	}
	pool, err := h.open()
	if err != nil {
		return nil, nil, fmt.Errorf("HSM: %w", err)
	}
	pki, err := hsmPKI(ctx, pool, h, dir, names, time.Now())
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	for _, iss := range []*signer.Issuer{pki.Production, pki.Test} {
		info := iss.Key.(*pkcs11.Key).Info()
		log.Info("issuer key in the HSM passed its self-test", "issuer", iss.Name, "label", info.Label, "id", info.ID,
			"type", info.Type, "certificate_sha256", filekey.Fingerprint(iss.Cert))
		if info.Extractable || !info.Sensitive {
			log.Warn("HSM issuer key can leave the token; make keys with varmenne init, which makes them sensitive and not extractable",
				"issuer", iss.Name, "label", info.Label)
		}
	}
	return pki, func() { pool.Close() }, nil
}

// hsmPKI pairs the certificates in dir with the HSM keys and refuses to start when
// a certificate's public key is not its HSM key, an issuer does not chain to the
// root, a key fails its sign-and-verify self-test, or the listener certificate is
// missing, expiring or lacks a name.
func hsmPKI(ctx context.Context, pool *pkcs11.Pool, h *hsmConfig, dir string, names []string, now time.Time) (*filekey.DevPKI, error) {
	root, err := readCert(filepath.Join(dir, "root.pem"))
	if err != nil {
		return nil, err
	}
	issuer := func(role string) (*signer.Issuer, error) {
		path := filepath.Join(dir, role+".pem")
		cert, err := readCert(path)
		if err != nil {
			return nil, err
		}
		label := *h.keys[role]
		key, err := pool.Key(ctx, label)
		if err != nil {
			return nil, fmt.Errorf("HSM: %w", err)
		}
		if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
			return nil, fmt.Errorf("the %s issuer certificate %s is not for HSM key %q: the public keys differ; give the right --pkcs11-%s-key or restore the certificate", role, path, label, role)
		}
		if err := cert.CheckSignatureFrom(root); err != nil {
			return nil, fmt.Errorf("%s is not signed by the root in %s: %v", path, filepath.Join(dir, "root.pem"), err)
		}
		iss := &signer.Issuer{Name: role, Cert: cert, Key: key}
		if err := iss.Check(); err != nil {
			return nil, fmt.Errorf("HSM key %q failed its self-test: %w", label, err)
		}
		return iss, nil
	}
	prod, err := issuer("production")
	if err != nil {
		return nil, err
	}
	test, err := issuer("test")
	if err != nil {
		return nil, err
	}
	tlsCert, err := loadListenerCert(dir, root, names, now)
	if err != nil {
		return nil, err
	}
	// Each issuer's delegated OCSP responder: its certificate is signed here by the
	// issuer key in the HSM, made on first start and renewed within 30 days of its
	// end; its own key is a file (pki/<issuer>-ocsp.key), see filekey.EnsureResponder.
	prodOCSP, err := filekey.EnsureResponder(dir, prod, now)
	if err != nil {
		return nil, fmt.Errorf("OCSP responder of the production issuer: %w", err)
	}
	testOCSP, err := filekey.EnsureResponder(dir, test, now)
	if err != nil {
		return nil, fmt.Errorf("OCSP responder of the test issuer: %w", err)
	}
	return &filekey.DevPKI{
		Root: root, Production: prod, Test: test, TLS: tlsCert,
		RootsPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}),
		ProductionOCSP: prodOCSP, TestOCSP: testOCSP,
	}, nil
}

// loadListenerCert loads pki/tls.pem and tls.key, which `varmenne init` made and
// signed with the HSM root. serve never asks the root key to sign: a root signs at
// ceremonies, not on every start.
func loadListenerCert(dir string, root *x509.Certificate, names []string, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls.key")
	const renew = "make a new one with: varmenne init --tls-only --tls-name NAME… (same --pkcs11-* flags and --data)"
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("listener certificate %s: %v; %s", certPath, err, renew)
	}
	leaf := c.Leaf
	if err := leaf.CheckSignatureFrom(root); err != nil {
		return tls.Certificate{}, fmt.Errorf("listener certificate %s is not signed by the root; %s", certPath, renew)
	}
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("listener certificate %s expired on %s; %s", certPath, leaf.NotAfter.Format(time.DateOnly), renew)
	}
	for _, n := range names {
		ok := leaf.VerifyHostname(n) == nil
		if ip := net.ParseIP(n); ip != nil {
			ok = slices.ContainsFunc(leaf.IPAddresses, ip.Equal)
		}
		if !ok {
			return tls.Certificate{}, fmt.Errorf("listener certificate %s does not name %s; %s", certPath, n, renew)
		}
	}
	return c, nil
}

// readCert reads an issuer certificate that varmenne init made.
func readCert(path string) (*x509.Certificate, error) {
	c, err := filekey.LoadCertificate(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%v; the HSM PKI is made by varmenne init --pkcs11-module …", err)
	}
	return c, err
}
