// Package ceremony is the life of the CA's keys in an HSM: the key ceremony, which
// generates the production and test roots and the two issuer keys inside a PKCS#11
// token, makes their certificates and the ACME listener's, and records each step in
// the audit log; and, at every start, the pairing of those certificates with the
// token's issuer keys, which refuses a certificate whose key is not the HSM key, an
// issuer off its root, a key failing its self-test or an unusable listener
// certificate.
//
// It neither parses flags nor opens databases (cmd/varmenne does), but its messages
// name varmenne's flags, since an operator acts on them.
package ceremony

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
	"github.com/varmenne/varmenne/store"
)

// Lifetimes of what the ceremony makes, as the development PKI has them.
const (
	rootYears     = 10
	issuerYears   = 5
	listenerYears = 1
)

// Actor is the record's actor for the operators present: at least two different
// people, since SOTE's practice statement needs two for key activation.
func Actor(operators []string) (string, error) {
	var names []string
	for _, o := range operators {
		o = strings.TrimSpace(o)
		if o == "" {
			return "", errors.New("--operator needs a name")
		}
		if slices.Contains(names, o) {
			return "", fmt.Errorf("--operator %q is given twice: a ceremony needs two different people", o)
		}
		names = append(names, o)
	}
	if len(names) < 2 {
		return "", errors.New("a key ceremony needs two operators: give --operator NAME twice, one per person present")
	}
	return strings.Join(names, "+"), nil
}

// Recorder is where a ceremony's steps go: the audit log (*audit.Log).
type Recorder interface {
	Append(ctx context.Context, r audit.Record) (store.AuditEvent, error)
}

// Ceremony is one key ceremony: it generates the two root keys and the two issuer
// keys inside the HSM, makes their certificates and a certificate for the ACME
// listener signed by the production root, and records each step, by the operators
// present, in the audit log.
//
// The listener's TLS certificate is made here because the root keys should sign at
// ceremonies only: serve never asks a root to sign. Its key is a file (pki/tls.key):
// it protects the transport, not the PKI. When it is about to expire or a new
// listener name is needed, ListenerOnly makes a new one.
type Ceremony struct {
	Log   Recorder
	Actor string // Actor's answer for the operators present
	Pool  *pkcs11.Pool
	Dir   string // the data directory's pki/, where the certificates go
	Now   time.Time
	Out   io.Writer // what the operators read: one line per certificate
	// OperatorCA, when set, runs after the keys and certificates are made and before
	// the ceremony's closing record: varmenne makes the operator CA of the admin
	// listener's client certificates there.
	OperatorCA func(ctx context.Context) error
}

// record appends an event; a ceremony whose record cannot be written stops.
func (c *Ceremony) record(ctx context.Context, e audit.Event, err error) error {
	outcome := audit.OK
	if err != nil {
		outcome = audit.Failed + ": " + err.Error()
	}
	if _, aerr := c.Log.Append(ctx, audit.Record{Actor: c.Actor, Event: e, Outcome: outcome}); aerr != nil {
		return fmt.Errorf("init: writing the ceremony record: %w", aerr)
	}
	return err
}

func (c *Ceremony) generate(ctx context.Context, label, keyType string) (*pkcs11.Key, error) {
	k, err := c.Pool.Generate(ctx, label, keyType)
	e := audit.KeyGenerated{Label: label, Type: keyType}
	if err == nil {
		i := k.Info()
		e = audit.KeyGenerated{Label: i.Label, ID: i.ID, Type: i.Type, Sensitive: i.Sensitive, Extractable: i.Extractable, NeverExtractable: i.NeverExtractable}
	}
	if err := c.record(ctx, e, err); err != nil {
		return nil, err
	}
	return k, nil
}

// The ceremony's roles: the key label of each comes from HSM.Labels.
const (
	RoleRoot       = "root"       // the production root: the production issuer and the listener
	RoleTestRoot   = "test-root"  // the test root: the test issuer only
	RoleProduction = "production" // the production issuer
	RoleTest       = "test"       // the test issuer
)

// CeremonyRoles are the keys a ceremony generates, in that order.
var CeremonyRoles = []string{RoleRoot, RoleTestRoot, RoleProduction, RoleTest}

// Run is the whole ceremony: keys of keyType labelled as h says, for organisation
// org (O of the roots and issuers), and a listener certificate for localhost and
// tlsExtra. There are two hierarchies: the production root signs the production
// issuer and the listener, the test root signs the test issuer, so a relying party
// trusting the production root never accepts a test certificate.
func (c *Ceremony) Run(ctx context.Context, h HSM, keyType, org string, tlsExtra []string) error {
	for _, role := range CeremonyRoles {
		if h.Labels[role] == "" {
			return fmt.Errorf("init: no key label for the %s key: give --pkcs11-%s-key LABEL", role, role)
		}
	}
	keys := map[string]*pkcs11.Key{}
	for _, role := range CeremonyRoles {
		k, err := c.generate(ctx, h.Labels[role], keyType)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		keys[role] = k
	}
	subject := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{org}, Country: []string{"FI"}}
	}
	certs := map[string]*x509.Certificate{}
	for _, r := range []struct{ role, cn string }{{RoleRoot, org + " production root"}, {RoleTestRoot, org + " TEST root"}} {
		tmpl := caTemplate(subject(r.cn), c.Now, c.Now.AddDate(rootYears, 0, 0), 1)
		cert, err := c.sign(tmpl, nil, keys[r.role], keys[r.role])
		if err != nil {
			return err
		}
		certs[r.role] = cert
	}
	for _, r := range []struct{ role, parent, cn string }{
		{RoleProduction, RoleRoot, org + " production issuer"},
		{RoleTest, RoleTestRoot, org + " TEST issuer"},
	} {
		tmpl := caTemplate(subject(r.cn), c.Now, c.Now.AddDate(issuerYears, 0, 0), 0)
		cert, err := c.sign(tmpl, certs[r.parent], keys[r.role], keys[r.parent])
		if err != nil {
			return err
		}
		iss := &signer.Issuer{Name: r.role, Cert: cert, Key: keys[r.role]}
		if err := c.record(ctx, audit.KeySelfTest{Label: keys[r.role].Info().Label}, iss.Check()); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		certs[r.role] = cert
	}
	for _, role := range CeremonyRoles {
		path := filepath.Join(c.Dir, role+".pem")
		if err := writeCertPEM(path, certs[role]); err != nil {
			return err
		}
		fp := filekey.Fingerprint(certs[role])
		if err := c.record(ctx, audit.CertificateMade{Role: role, Key: keys[role].Info().Label, SHA256: fp, Subject: certs[role].Subject.String()}, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.Out, "%-10s %s  SHA-256 %s\n", role, path, fp)
	}
	roots, testRoots, err := filekey.WriteRoots(filepath.Dir(c.Dir), certs[RoleRoot], certs[RoleTestRoot])
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := c.listener(ctx, certs[RoleRoot], keys[RoleRoot], tlsExtra); err != nil {
		return err
	}
	if c.OperatorCA != nil {
		if err := c.OperatorCA(ctx); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	if err := c.record(ctx, audit.CeremonyDone{Token: h.Token, Root: filekey.Fingerprint(certs[RoleRoot]),
		Production: filekey.Fingerprint(certs[RoleProduction]), Test: filekey.Fingerprint(certs[RoleTest]),
		TestRoot: filekey.Fingerprint(certs[RoleTestRoot])}, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "Production relying parties and ACME clients trust %s only; test environments trust %s.\n", roots, testRoots)
	fmt.Fprintf(c.Out, "Keys generated in token %q by %s; the ceremony is recorded in the audit log.\nStart the server with: varmenne serve --data %s --pkcs11-module %s --pkcs11-token %q --pkcs11-pin-share SHARE --pkcs11-pin-share SHARE (one share from each holder)\n",
		h.Token, c.Actor, filepath.Dir(c.Dir), h.Module, h.Token)
	return nil
}

// ListenerOnly makes a new listener certificate for localhost and tlsExtra, signed
// by the existing root, whose HSM key is labelled rootLabel.
func (c *Ceremony) ListenerOnly(ctx context.Context, rootLabel string, tlsExtra []string) error {
	root, err := readCert(filepath.Join(c.Dir, "root.pem"))
	if err != nil {
		return err
	}
	key, err := c.Pool.Key(ctx, rootLabel)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(root.PublicKey) {
		return fmt.Errorf("HSM key %q is not the key of %s; give the right --pkcs11-root-key", rootLabel, filepath.Join(c.Dir, "root.pem"))
	}
	return c.listener(ctx, root, key, tlsExtra)
}

// listener makes the ACME listener's key (a file) and its certificate, signed by
// the root.
func (c *Ceremony) listener(ctx context.Context, root *x509.Certificate, rootKey crypto.Signer, extra []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	dnsNames, ips := listenerNames(extra)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: dnsNames[0], Organization: root.Subject.Organization, Country: []string{"FI"}},
		NotBefore:             c.Now.Add(-time.Minute),
		NotAfter:              c.Now.AddDate(listenerYears, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	cert, err := c.sign(tmpl, root, key, rootKey)
	if err != nil {
		return err
	}
	if err := filekey.Save(filepath.Join(c.Dir, "tls.key"), key); err != nil {
		return err
	}
	path := filepath.Join(c.Dir, "tls.pem")
	if err := writeCertPEM(path, cert); err != nil {
		return err
	}
	fp := filekey.Fingerprint(cert)
	if err := c.record(ctx, audit.CertificateMade{Role: "listener", SHA256: fp, Names: append(dnsNames, ipStrings(ips)...)}, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "%-10s %s  SHA-256 %s\n", "listener", path, fp)
	return nil
}

// sign makes a certificate for key's public half, signed by parentKey; parent nil
// means self-signed. RSA parents sign sha512WithRSAEncryption as SOTE issuers do.
func (c *Ceremony) sign(tmpl, parent *x509.Certificate, key crypto.Signer, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := signer.NewSerial(c.Now, rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = new(big.Int).SetBytes(serial)
	switch k := parentKey.Public().(type) {
	case *rsa.PublicKey:
		tmpl.SignatureAlgorithm = x509.SHA512WithRSA
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			tmpl.SignatureAlgorithm = x509.ECDSAWithSHA384
		}
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("init: signing %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(parent); err != nil && parent != tmpl {
		return nil, fmt.Errorf("init: the signature on %q does not verify: %w", tmpl.Subject.CommonName, err)
	}
	return cert, nil
}

func caTemplate(subject pkix.Name, now, notAfter time.Time, maxPathLen int) *x509.Certificate {
	return &x509.Certificate{
		Subject:               subject,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
}

// listenerNames are localhost, 127.0.0.1 and ::1 and the extra names.
func listenerNames(extra []string) ([]string, []net.IP) {
	dnsNames := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, n := range extra {
		n = strings.ToLower(strings.Trim(strings.TrimSpace(n), "[]"))
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if n != "" && !slices.Contains(dnsNames, n) {
			dnsNames = append(dnsNames, n)
		}
	}
	return dnsNames, ips
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

func writeCertPEM(path string, c *x509.Certificate) error {
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return nil
}

// GenerationLabel is the HSM key label of generation n of a hierarchy whose first
// issuer key is labelled first: first itself, then first-2, first-3, …
func GenerationLabel(first string, n int) string {
	if n <= 1 {
		return first
	}
	return fmt.Sprintf("%s-%d", first, n)
}

// rootRoleOf is the role of the root that signs a hierarchy's issuers: the test
// root, or the production root for the test hierarchy of a PKI made before the
// test root.
func (c *Ceremony) rootRoleOf(hierarchy string) string {
	if hierarchy == RoleTest {
		if _, err := os.Stat(filepath.Join(c.Dir, RoleTestRoot+".pem")); err == nil {
			return RoleTestRoot
		}
	}
	return RoleRoot
}

// NewGeneration is the key ceremony of a hierarchy's next issuer generation
// (practice statement 6.6): a key of the first generation's type generated in the
// HSM (label GenerationLabel of the first issuer's), its certificate signed by the
// hierarchy's root key in the HSM (filekey.NextGenerationTemplate), its
// self-test, each step recorded. It writes NAME.pem beside the others and
// returns NAME ("production-2", …). Servers load it at their next start; an
// operator then makes it the active one.
func (c *Ceremony) NewGeneration(ctx context.Context, h HSM, hierarchy string) (string, error) {
	if hierarchy != RoleProduction && hierarchy != RoleTest {
		return "", fmt.Errorf("issuer new: no hierarchy %q: give production or test", hierarchy)
	}
	rootRole := c.rootRoleOf(hierarchy)
	root, err := readCert(filepath.Join(c.Dir, rootRole+".pem"))
	if err != nil {
		return "", err
	}
	first, err := readCert(filepath.Join(c.Dir, hierarchy+".pem"))
	if err != nil {
		return "", err
	}
	n, err := filekey.NextGeneration(c.Dir, hierarchy)
	if err != nil {
		return "", err
	}
	name := filekey.GenerationName(hierarchy, n)
	rootKey, err := c.Pool.Key(ctx, h.Labels[rootRole])
	if err != nil {
		return "", fmt.Errorf("issuer new: %w", err)
	}
	if !rootKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(root.PublicKey) {
		return "", fmt.Errorf("issuer new: HSM key %q is not the key of %s; give the right --pkcs11-%s-key", h.Labels[rootRole], filepath.Join(c.Dir, rootRole+".pem"), rootRole)
	}
	keyType, err := filekey.KeyTypeOf(first.PublicKey)
	if err != nil {
		return "", fmt.Errorf("issuer new: %w", err)
	}
	label := GenerationLabel(h.Labels[hierarchy], n)
	key, err := c.generate(ctx, label, keyType)
	if err != nil {
		return "", fmt.Errorf("issuer new: %w", err)
	}
	cert, err := c.sign(filekey.NextGenerationTemplate(first, n, root, c.Now), root, key, rootKey)
	if err != nil {
		return "", err
	}
	iss := &signer.Issuer{Name: name, Cert: cert, Key: key}
	if err := c.record(ctx, audit.KeySelfTest{Label: label}, iss.Check()); err != nil {
		return "", fmt.Errorf("issuer new: %w", err)
	}
	path := filepath.Join(c.Dir, name+".pem")
	if err := writeCertPEM(path, cert); err != nil {
		return "", err
	}
	fp := filekey.Fingerprint(cert)
	if err := c.record(ctx, audit.CertificateMade{Role: name, Key: label, SHA256: fp, Subject: cert.Subject.String()}, nil); err != nil {
		return "", err
	}
	fmt.Fprintf(c.Out, "%-10s %s  SHA-256 %s  key %q\n", name, path, fp, label)
	return name, nil
}
