package ceremony

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/internal/owneronly"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
)

// PINEnv is where the HSM PIN may come from when no PIN file is given. There is no
// PIN flag: a command line is visible to every user of the machine. A PIN file is
// better still: the environment a process started with stays readable in
// /proc/PID/environ (to its user and root) whatever the process unsets, so the
// varmenne command runs itself again without it (cmd/varmenne, pin_linux.go), and
// the environment of whatever started varmenne may keep it.
const PINEnv = "VARMENNE_PKCS11_PIN"

// HSM is where the keys live when they are in an HSM: varmenne's --pkcs11-* flags.
type HSM struct {
	Module   string            // PKCS#11 library; "" means no HSM (development file keys)
	Token    string            // token label
	Slot     int               // token slot when the label is not unique; -1: by label
	PINFile  string            // file holding the user PIN, its owner's only; "": PINFrom, else PINEnv
	Sessions int               // sessions kept open, each running one operation at a time
	Labels   map[string]string // role (CeremonyRoles; serve needs production and test only) → key label
	// PINFrom, when set, gives the PIN the command holds already (read from the pipe
	// of a varmenne that ran itself again without PINEnv).
	PINFrom func() (string, error)
	// OnRelogin hears of every login after the first (pkcs11.Config.OnRelogin).
	OnRelogin func(err error)
	// OnEvent, when set, records what OpenPKI does with the keys: the login and
	// each issuer key's self-test, with their outcome (err nil: done). Its error
	// stops the start: what cannot be recorded is not done.
	OnEvent func(e audit.Event, err error) error
	// PINShares are the files of two holders' activation shares (shares.go),
	// combined in memory into the PIN; given, no PIN may be given whole.
	PINShares []string
	// SharesOnly: only two activation shares open the token (serve); a PIN file,
	// PINFrom or PINEnv is refused, since one person would hold it whole.
	SharesOnly bool
	// ActivationRecord is the file naming the token's current split (pki/activation,
	// ActivationRecordFile); shares of another split are refused. "": not checked.
	ActivationRecord string
}

// Enabled reports whether the keys are in an HSM.
func (h HSM) Enabled() bool { return h.Module != "" }

// ReadPIN reads the PIN from the file, which group and others may not use, or from
// PINFrom, or from PINEnv, which it removes from the environment so no child
// process inherits it.
func (h HSM) ReadPIN() (string, error) {
	if h.PINFile != "" {
		if err := owneronly.Check(h.PINFile); err != nil {
			return "", fmt.Errorf("the PIN file: %w", err)
		}
		b, err := os.ReadFile(h.PINFile)
		if err != nil {
			return "", fmt.Errorf("cannot read the PIN file: %w", err)
		}
		pin := strings.TrimRight(string(b), "\r\n")
		if pin == "" {
			return "", fmt.Errorf("the PIN file %s is empty", h.PINFile)
		}
		return pin, nil
	}
	if h.PINFrom != nil {
		return h.PINFrom()
	}
	pin, ok := os.LookupEnv(PINEnv)
	os.Unsetenv(PINEnv)
	if !ok || pin == "" {
		return "", fmt.Errorf("no HSM PIN: give --pkcs11-pin-file FILE or set %s", PINEnv)
	}
	return pin, nil
}

// Open opens the session pool on the token.
func (h HSM) Open() (*pkcs11.Pool, error) {
	pool, _, err := h.Activate()
	return pool, err
}

// Activate opens the session pool on the token with the PIN the configuration
// gives: two activation shares combined in memory, or (unless SharesOnly) the PIN
// whole. Every refusal of what was given comes before anything is sent to the
// token; the pool logs in again with the same PIN, from memory, after a lost
// session, so the holders are needed only at start.
func (h HSM) Activate() (*pkcs11.Pool, Activation, error) {
	if h.Token == "" && h.Slot < 0 {
		return nil, Activation{}, errors.New("--pkcs11-module needs --pkcs11-token LABEL (or --pkcs11-slot N)")
	}
	if h.Sessions < 1 {
		return nil, Activation{}, fmt.Errorf("--pkcs11-sessions %d: give 1 or more", h.Sessions)
	}
	act, err := h.activation()
	if err != nil {
		return nil, Activation{}, err
	}
	cfg := pkcs11.Config{Module: h.Module, TokenLabel: h.Token, PIN: act.PIN, Serial: act.Serial, Sessions: h.Sessions, OnRelogin: h.OnRelogin}
	if h.Slot >= 0 {
		slot := uint(h.Slot)
		cfg.Slot = &slot
	}
	pool, err := pkcs11.Open(cfg)
	if err != nil {
		return nil, act, err
	}
	act.Serial = pool.Serial()
	return pool, act, nil
}

// activation is the PIN from the shares or, where a PIN may be given whole, from
// ReadPIN; it refuses shares and a whole PIN together, one share, and a whole PIN
// where only shares open the token.
func (h HSM) activation() (Activation, error) {
	inEnv := os.Getenv(PINEnv) != ""
	whole := ""
	switch {
	case h.PINFile != "":
		whole = "--pkcs11-pin-file"
	case h.PINFrom != nil || inEnv:
		whole = "$" + PINEnv
	}
	switch {
	case len(h.PINShares) > 0 && whole != "":
		os.Unsetenv(PINEnv)
		return Activation{}, fmt.Errorf("both activation shares and a PIN (%s) given: give the two holders' --pkcs11-pin-share files and no PIN", whole)
	case len(h.PINShares) == 0 && h.SharesOnly:
		os.Unsetenv(PINEnv)
		why := "no activation shares given"
		if whole != "" {
			why = "a PIN given whole (" + whole + ") would let one person activate them"
		}
		return Activation{}, fmt.Errorf("the issuer keys in the HSM are activated by two people and %s: give --pkcs11-pin-share FILE twice, each holder's share that varmenne init wrote", why)
	case len(h.PINShares) == 0:
		pin, err := h.ReadPIN()
		return Activation{PIN: pin}, err
	}
	return readShares(h.PINShares, h.Token, h.ActivationRecord)
}

// OpenPKI opens the token and pairs it with the certificates a ceremony wrote in dir
// (LoadPKI), logging each issuer key's self-test and warning of a key that can leave
// the token. The returned function closes the token.
func OpenPKI(ctx context.Context, h HSM, dir string, names []string, now time.Time, log *slog.Logger) (*filekey.DevPKI, func(), error) {
	event := func(e audit.Event, err error) error {
		if h.OnEvent == nil {
			return nil
		}
		if rerr := h.OnEvent(e, err); rerr != nil {
			return fmt.Errorf("cannot write the audit log: %w", rerr)
		}
		return nil
	}
	if h.ActivationRecord == "" {
		h.ActivationRecord = filepath.Join(dir, ActivationRecordFile)
	}
	pool, act, err := h.Activate()
	if rerr := event(audit.HSMLogin{Token: h.Token, Serial: act.Serial, Holders: act.Holders}, err); rerr != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, nil, rerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("HSM: %w", err)
	}
	pki, err := LoadPKI(ctx, pool, h.Labels, dir, names, now)
	var failed *SelfTestError
	if errors.As(err, &failed) {
		if rerr := event(audit.HSMSelfTest{Token: h.Token, Key: failed.Label}, failed.Err); rerr != nil {
			err = rerr
		}
	}
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	for _, g := range pki.Generations {
		iss := g.Issuer
		info := iss.Key.(*pkcs11.Key).Info()
		if err := event(audit.HSMSelfTest{Token: h.Token, Key: info.Label}, nil); err != nil {
			pool.Close()
			return nil, nil, err
		}
		log.Info("issuer key in the HSM passed its self-test", "issuer", iss.Name, "label", info.Label, "id", info.ID,
			"type", info.Type, "certificate_sha256", filekey.Fingerprint(iss.Cert))
		if info.Extractable || !info.Sensitive {
			log.Warn("HSM issuer key can leave the token; make keys with varmenne init, which makes them sensitive and not extractable",
				"issuer", iss.Name, "label", info.Label)
		}
	}
	return pki, func() { pool.Close() }, nil
}

// LoadPKI pairs the certificates in dir with the HSM keys labelled by role and
// refuses when a certificate's public key is not its HSM key, an issuer does not
// chain to its root (production to root.pem, test to test-root.pem), a key fails
// its sign-and-verify self-test, or the listener certificate is missing, expiring
// or lacks one of names. The root keys are not used: roots sign at ceremonies only.
//
// A directory from a ceremony before the test root (no test-root.pem, test.pem
// signed by root.pem) is paired as it is, with SharedTestRoot set.
func LoadPKI(ctx context.Context, pool *pkcs11.Pool, labels map[string]string, dir string, names []string, now time.Time) (*filekey.DevPKI, error) {
	rootPath, testRootPath := filepath.Join(dir, RoleRoot+".pem"), filepath.Join(dir, RoleTestRoot+".pem")
	root, err := readCert(rootPath)
	if err != nil {
		return nil, err
	}
	testRoot, shared := root, false
	if _, err := os.Stat(testRootPath); errors.Is(err, os.ErrNotExist) {
		// Before the test root, the ceremony signed the test issuer with the root.
		testPath := filepath.Join(dir, RoleTest+".pem")
		test, err := readCert(testPath)
		if err != nil {
			return nil, err
		}
		if test.CheckSignatureFrom(root) != nil {
			return nil, fmt.Errorf("%s is missing and %s is not signed by the root in %s: restore %[1]s", testRootPath, testPath, rootPath)
		}
		shared = true
	} else if testRoot, err = readCert(testRootPath); err != nil {
		return nil, err
	}
	issuer := func(role string, root *x509.Certificate, rootPath string) (*signer.Issuer, error) {
		return loadIssuer(ctx, pool, dir, role, labels[role], role, root, rootPath)
	}
	prod, err := issuer(RoleProduction, root, rootPath)
	if err != nil {
		return nil, err
	}
	if shared {
		testRootPath = rootPath
	}
	test, err := issuer(RoleTest, testRoot, testRootPath)
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
	// The later issuer generations (NewGeneration), each under its hierarchy's root.
	var later []filekey.Generation
	for _, h := range []struct {
		role, rootPath string
		root           *x509.Certificate
	}{{RoleProduction, rootPath, root}, {RoleTest, testRootPath, testRoot}} {
		ns, err := filekey.LaterGenerations(dir, h.role)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			name := filekey.GenerationName(h.role, n)
			iss, err := loadIssuer(ctx, pool, dir, name, GenerationLabel(labels[h.role], n), h.role, h.root, h.rootPath)
			if err != nil {
				return nil, err
			}
			r, err := filekey.EnsureResponder(dir, iss, now)
			if err != nil {
				return nil, fmt.Errorf("OCSP responder of issuer %s: %w", name, err)
			}
			later = append(later, filekey.Generation{Hierarchy: h.role, Number: n, Issuer: iss, OCSP: r})
		}
	}
	return (&filekey.DevPKI{
		Root: root, TestRoot: testRoot, SharedTestRoot: shared,
		Production: prod, Test: test, TLS: tlsCert,
		RootsPEM: filekey.CertPEM(root), TestRootsPEM: filekey.CertPEM(testRoot),
		ProductionOCSP: prodOCSP, TestOCSP: testOCSP,
	}).WithGenerations(later), nil
}

// loadIssuer pairs the issuer certificate NAME.pem in dir with the HSM key
// labelled label, and checks it against its root and by a self-test. role names
// the --pkcs11-ROLE-key flag an operator would correct.
func loadIssuer(ctx context.Context, pool *pkcs11.Pool, dir, name, label, role string, root *x509.Certificate, rootPath string) (*signer.Issuer, error) {
	path := filepath.Join(dir, name+".pem")
	cert, err := readCert(path)
	if err != nil {
		return nil, err
	}
	key, err := pool.Key(ctx, label)
	if err != nil {
		return nil, fmt.Errorf("HSM: %w", err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		return nil, fmt.Errorf("the %s issuer certificate %s is not for HSM key %q: the public keys differ; give the right --pkcs11-%s-key or restore the certificate", role, path, label, role)
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("%s is not signed by the root in %s: %v", path, rootPath, err)
	}
	iss := &signer.Issuer{Name: name, Cert: cert, Key: key}
	if err := iss.Check(); err != nil {
		return nil, &SelfTestError{Label: label, Err: err}
	}
	return iss, nil
}

// SelfTestError is an HSM key that failed its sign-and-verify self-test.
type SelfTestError struct {
	Label string
	Err   error
}

func (e *SelfTestError) Error() string {
	return fmt.Sprintf("HSM key %q failed its self-test: %v", e.Label, e.Err)
}

func (e *SelfTestError) Unwrap() error { return e.Err }

// loadListenerCert loads pki/tls.pem and tls.key, which the ceremony made and signed
// with the HSM root. serve never asks the root key to sign: a root signs at
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

// readCert reads a certificate a ceremony made.
func readCert(path string) (*x509.Certificate, error) {
	c, err := filekey.LoadCertificate(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%v; the HSM PKI is made by varmenne init --pkcs11-module …", err)
	}
	return c, err
}
