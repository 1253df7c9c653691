package filekey

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/signer"
)

// DevPKI is a CA's PKI as serve uses it (the development PKI of file keys, or the
// HSM PKI paired by signer/ceremony): two hierarchies, a production root with the
// production issuer and the ACME listener's TLS certificate below it, and a test
// root with the test issuer below it, so that a relying party trusting the
// production root never accepts a test certificate (SOTE.md: test certificates
// chain to a separate test issuer).
type DevPKI struct {
	Root     *x509.Certificate // the production root
	TestRoot *x509.Certificate // the test root; Root itself when SharedTestRoot
	// SharedTestRoot: the test issuer was made under the production root, by a
	// varmenne from before the test root. Such a PKI keeps working, unchanged, but
	// relying parties trusting the production root accept its test certificates;
	// serve warns at every start.
	SharedTestRoot bool
	Production     *signer.Issuer
	Test           *signer.Issuer
	TLS            tls.Certificate // for the ACME listener: localhost, 127.0.0.1, ::1 (+ extra names given)
	RootsPEM       []byte          // roots.pem: the production root, which also verifies the TLS certificate
	TestRootsPEM   []byte          // test-roots.pem: the test root only
	// The issuers' delegated OCSP responders (id-kp-OCSPSigning, id-pkix-ocsp-nocheck).
	ProductionOCSP *Responder
	TestOCSP       *Responder
	// Generations are every issuer generation loaded, by hierarchy and number:
	// Production and Test (with their responders) are the first of each.
	Generations []Generation
}

// Generation is the loaded generation named so, or nil.
func (p *DevPKI) Generation(name string) *Generation {
	for i := range p.Generations {
		if p.Generations[i].Issuer.Name == name {
			return &p.Generations[i]
		}
	}
	return nil
}

// WithGenerations sets Generations: the first generation of each hierarchy
// (Production, Test) and then later, in hierarchy order.
func (p *DevPKI) WithGenerations(later []Generation) *DevPKI {
	p.Generations = []Generation{{Hierarchy: "production", Number: 1, Issuer: p.Production, OCSP: p.ProductionOCSP}}
	p.Generations = append(p.Generations, filterGenerations(later, "production")...)
	p.Generations = append(p.Generations, Generation{Hierarchy: "test", Number: 1, Issuer: p.Test, OCSP: p.TestOCSP})
	p.Generations = append(p.Generations, filterGenerations(later, "test")...)
	return p
}

func filterGenerations(gs []Generation, hierarchy string) []Generation {
	var out []Generation
	for _, g := range gs {
		if g.Hierarchy == hierarchy {
			out = append(out, g)
		}
	}
	return out
}

const (
	devOrg         = "varmenne development"
	defaultKeyType = "ecdsa-p384"
	tlsKeyType     = "ecdsa-p256"
	tlsRenewBefore = 30 * 24 * time.Hour
	// backdate keeps a fresh certificate valid on a machine whose clock is a little behind.
	backdate = time.Minute
)

// The files of the development PKI, by role.
type pkiFiles struct{ cert, key string }

func files(dir, name string) pkiFiles {
	return pkiFiles{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+".key")}
}

// EnsureDevPKI loads the development PKI from dir, or makes what is missing on first
// use: a production root and a test root (10 years), a production issuer signed by
// the production root and a test issuer signed by the test root (5 years, path
// length 0, certSign and crlSign), and a TLS certificate signed by the production
// root for localhost, 127.0.0.1, ::1 and tlsNames (1 year), re-issued when it
// expires within 30 days, lacks a requested name, or does not load.
//
// keyType is used for the root and the issuers when they are made ("" means
// "ecdsa-p384"); existing keys are kept whatever their type. The TLS key is always
// ecdsa-p256. Each issuer also gets a delegated OCSP responder (90 days, ecdsa-p256,
// re-issued like the TLS certificate when it ends within 30 days). Files in dir:
// root.pem root.key test-root.pem test-root.key production.pem production.key
// test.pem test.key tls.pem tls.key production-ocsp.pem production-ocsp.key
// test-ocsp.pem test-ocsp.key (keys 0600). created reports whether CA keys were
// made now.
//
// A directory made before the test root (no test-root files, test.pem signed by
// root.pem) is loaded as it is, with SharedTestRoot set: its CA is never re-keyed
// or re-certified behind the operator's back.
//
// A CA certificate whose key file is missing, a key that does not match its
// certificate, or an issuer that does not chain to the root is an error naming the
// file: the development CA is never silently replaced.
func EnsureDevPKI(dir, keyType string, tlsNames []string) (pki *DevPKI, created bool, err error) {
	if keyType == "" {
		keyType = defaultKeyType
	}
	if !slices.Contains(KeyTypes, keyType) {
		return nil, false, fmt.Errorf("filekey: unknown key type %q (supported: %q)", keyType, KeyTypes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("filekey: %w", err)
	}
	now := time.Now()

	rootFiles := files(dir, "root")
	if !exists(rootFiles.key) {
		// A new root would orphan issuers made under the old one.
		for _, name := range []string{"production", "test"} {
			for _, p := range []string{files(dir, name).cert, files(dir, name).key} {
				if exists(p) {
					return nil, false, fmt.Errorf("filekey: %s is missing but %s exists; restore it or remove %s to make a new development PKI", rootFiles.key, p, dir)
				}
			}
		}
	}
	rootCA := func(f pkiFiles, cn string) (*x509.Certificate, crypto.Signer, error) {
		subject := pkix.Name{CommonName: cn, Organization: []string{devOrg}, Country: []string{"FI"}}
		cert, key, made, err := ensureCA(f, keyType, subject, nil, nil, now.AddDate(10, 0, 0), 1, now)
		created = created || made
		return cert, key, err
	}
	root, rootKey, err := rootCA(rootFiles, "varmenne development production root")
	if err != nil {
		return nil, false, err
	}
	shared, err := sharesProductionRoot(dir, root)
	if err != nil {
		return nil, false, err
	}
	testRoot, testRootKey := root, rootKey
	if !shared {
		if testRoot, testRootKey, err = rootCA(files(dir, "test-root"), "varmenne development TEST root"); err != nil {
			return nil, false, err
		}
	}

	issuer := func(name, cn string, parent *x509.Certificate, parentKey crypto.Signer) (*signer.Issuer, error) {
		f := files(dir, name)
		subject := pkix.Name{CommonName: cn, Organization: []string{devOrg}, Country: []string{"FI"}}
		cert, key, made, err := ensureCA(f, keyType, subject, parent, parentKey, now.AddDate(5, 0, 0), 0, now)
		if err != nil {
			return nil, err
		}
		created = created || made
		iss := &signer.Issuer{Name: name, Cert: cert, Key: key}
		if err := iss.Check(); err != nil {
			return nil, fmt.Errorf("filekey: %s: %w", f.cert, err)
		}
		return iss, nil
	}
	prod, err := issuer("production", "varmenne development production issuer", root, rootKey)
	if err != nil {
		return nil, false, err
	}
	test, err := issuer("test", "varmenne development TEST issuer", testRoot, testRootKey)
	if err != nil {
		return nil, false, err
	}

	tlsCert, err := ensureTLS(files(dir, "tls"), root, rootKey, tlsNames, now)
	if err != nil {
		return nil, false, err
	}
	prodOCSP, err := ensureResponder(files(dir, "production-ocsp"), prod, now)
	if err != nil {
		return nil, false, err
	}
	testOCSP, err := ensureResponder(files(dir, "test-ocsp"), test, now)
	if err != nil {
		return nil, false, err
	}
	later, err := loadLaterGenerations(dir, map[string]*x509.Certificate{"production": root, "test": testRoot}, now)
	if err != nil {
		return nil, false, err
	}
	return (&DevPKI{
		Root:           root,
		TestRoot:       testRoot,
		SharedTestRoot: shared,
		Production:     prod,
		Test:           test,
		TLS:            tlsCert,
		RootsPEM:       CertPEM(root),
		TestRootsPEM:   CertPEM(testRoot),
		ProductionOCSP: prodOCSP,
		TestOCSP:       testOCSP,
	}).WithGenerations(later), created, nil
}

// sharesProductionRoot reports whether dir holds a PKI from before the test root:
// no test-root files, and a test issuer signed by the production root. A test
// issuer without its test root that the production root did not sign is an error:
// its root was lost.
func sharesProductionRoot(dir string, root *x509.Certificate) (bool, error) {
	testRoot, test := files(dir, "test-root"), files(dir, "test")
	if exists(testRoot.cert) || exists(testRoot.key) || !exists(test.cert) {
		return false, nil
	}
	c, err := loadCert(test.cert)
	if err != nil {
		return false, err
	}
	if c.CheckSignatureFrom(root) != nil {
		return false, fmt.Errorf("filekey: %s is missing but %s exists; restore it or remove %s to make a new development PKI", testRoot.key, test.cert, dir)
	}
	return true, nil
}

// ensureCA loads a CA certificate and its key, or makes them. parent nil means a
// self-signed root. A key without its certificate (a crash between the two writes)
// gets a new certificate; a certificate without its key is an error.
func ensureCA(f pkiFiles, keyType string, subject pkix.Name, parent *x509.Certificate, parentKey crypto.Signer,
	notAfter time.Time, maxPathLen int, now time.Time) (*x509.Certificate, crypto.Signer, bool, error) {
	certExists, keyExists := exists(f.cert), exists(f.key)
	if certExists && !keyExists {
		return nil, nil, false, fmt.Errorf("filekey: %s is missing for %s; restore it or remove both to make new ones", f.key, f.cert)
	}
	if certExists {
		cert, key, err := loadCA(f, parent, now)
		return cert, key, false, err
	}

	var key crypto.Signer
	var err error
	made := false
	if keyExists {
		key, err = Load(f.key)
	} else {
		key, err = Generate(keyType)
		made = true
		if err == nil {
			err = Save(f.key, key)
		}
	}
	if err != nil {
		return nil, nil, false, err
	}
	tmpl := &x509.Certificate{
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	cert, err := createCert(tmpl, parent, key.Public(), parentKey, now)
	if err != nil {
		return nil, nil, false, fmt.Errorf("filekey: making %s: %w", f.cert, err)
	}
	if err := saveCert(f.cert, cert); err != nil {
		return nil, nil, false, err
	}
	return cert, key, made, nil
}

// loadCA loads a CA pair and checks that the key is the certificate's, that the
// certificate is signed by parent (itself for a root) and that it has not expired.
func loadCA(f pkiFiles, parent *x509.Certificate, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	cert, err := loadCert(f.cert)
	if err != nil {
		return nil, nil, err
	}
	key, err := Load(f.key)
	if err != nil {
		return nil, nil, err
	}
	if !publicKeyEqual(key.Public(), cert.PublicKey) {
		return nil, nil, fmt.Errorf("filekey: %s does not match the certificate in %s", f.key, f.cert)
	}
	if parent == nil {
		parent = cert
	}
	if err := cert.CheckSignatureFrom(parent); err != nil {
		return nil, nil, fmt.Errorf("filekey: %s is not signed by %q: %w", f.cert, parent.Subject, err)
	}
	if now.After(cert.NotAfter) {
		return nil, nil, fmt.Errorf("filekey: %s expired on %s; remove the development PKI directory to make a new one", f.cert, cert.NotAfter.Format(time.DateOnly))
	}
	return cert, key, nil
}

// ensureTLS returns the listener's certificate from f if it is still good for the
// names, and otherwise makes a new key and certificate. Nothing depends on the old
// TLS key, so replacing it is always safe.
func ensureTLS(f pkiFiles, root *x509.Certificate, rootKey crypto.Signer, extra []string, now time.Time) (tls.Certificate, error) {
	dnsNames, ips := tlsSubjectNames(extra)
	if c, err := tls.LoadX509KeyPair(f.cert, f.key); err == nil && tlsUsable(c.Leaf, root, dnsNames, ips, now) {
		return c, nil
	}
	key, err := Generate(tlsKeyType)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: dnsNames[0], Organization: []string{devOrg}, Country: []string{"FI"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	cert, err := createCert(tmpl, root, key.Public(), rootKey, now)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("filekey: making %s: %w", f.cert, err)
	}
	// Key first: a crash before the certificate is written leaves a pair that does
	// not load, which the next start replaces.
	if err := Save(f.key, key); err != nil {
		return tls.Certificate{}, err
	}
	if err := saveCert(f.cert, cert); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// tlsSubjectNames splits the listener names into DNS names and IPs, always with
// localhost, 127.0.0.1 and ::1, lower-cased and without duplicates.
func tlsSubjectNames(extra []string) ([]string, []net.IP) {
	dnsNames := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, n := range extra {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(n), "["), "]"))
		if n == "" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			if ip4 := ip.To4(); ip4 != nil {
				ip = ip4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(dnsNames, n) {
			dnsNames = append(dnsNames, n)
		}
	}
	return dnsNames, ips
}

func tlsUsable(c, root *x509.Certificate, dnsNames []string, ips []net.IP, now time.Time) bool {
	if c == nil || c.CheckSignatureFrom(root) != nil || now.Add(tlsRenewBefore).After(c.NotAfter) || now.Before(c.NotBefore) {
		return false
	}
	for _, n := range dnsNames {
		if !slices.ContainsFunc(c.DNSNames, func(have string) bool { return strings.EqualFold(have, n) }) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer, now time.Time) (*x509.Certificate, error) {
	serial, err := signer.NewSerial(now, rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = new(big.Int).SetBytes(serial)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func saveCert(path string, c *x509.Certificate) error {
	return writeAtomic(path, CertPEM(c), 0o644)
}

// CertPEM is c as one PEM CERTIFICATE block.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// The roots files in a data directory, which serve (and the key ceremony) write
// for relying parties and clients to trust.
const (
	// RootsFile is the production root: what a production relying party trusts,
	// and what ACME clients trust for the listener's TLS certificate.
	RootsFile = "roots.pem"
	// TestRootsFile is the test root only: what a test environment trusts for test
	// certificates, never a production relying party.
	TestRootsFile = "test-roots.pem"
)

// WriteRoots writes RootsFile with root and TestRootsFile with testRoot into the
// data directory and returns their paths.
func WriteRoots(data string, root, testRoot *x509.Certificate) (roots, testRoots string, err error) {
	roots, testRoots = filepath.Join(data, RootsFile), filepath.Join(data, TestRootsFile)
	if err := writeAtomic(roots, CertPEM(root), 0o644); err != nil {
		return "", "", err
	}
	if err := writeAtomic(testRoots, CertPEM(testRoot), 0o644); err != nil {
		return "", "", err
	}
	return roots, testRoots, nil
}

// LoadCertificate reads one PEM CERTIFICATE from path.
func LoadCertificate(path string) (*x509.Certificate, error) { return loadCert(path) }

func loadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("filekey: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("filekey: %s: no PEM CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("filekey: %s: %w", path, err)
	}
	return c, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// Fingerprint is the lower-case hex SHA-256 of a certificate's DER, as operators
// compare roots.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return fmt.Sprintf("%x", sum)
}
