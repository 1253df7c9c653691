package main

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
)

// Lifetimes of what the ceremony makes, as the development PKI has them.
const (
	rootYears     = 10
	issuerYears   = 5
	listenerYears = 1
)

// initCmd is the key ceremony: it generates the root and issuer keys inside the
// HSM, makes their certificates, a certificate for the ACME listener signed by the
// root, and records who did it in the audit log.
//
// The listener's TLS certificate is made here because the root key should sign at
// ceremonies only: serve never asks the root to sign. Its key is a file (pki/tls.key):
// it protects the transport, not the PKI. When it is about to expire or a new
// listener name is needed, `varmenne init --tls-only` makes a new one.
func initCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	h := hsmFlags(fs, "root", "production", "test")
	var operators, tlsExtra stringList
	fs.Var(&operators, "operator", "name of an operator present at the ceremony; at least two different people (repeatable)")
	keyType := fs.String("key-type", "rsa-4096", "type of the root and issuer keys: "+strings.Join(pkcs11.KeyTypes, ", "))
	org := fs.String("organisation", "varmenne", "organisation (O) in the root and issuer names")
	fs.Var(&tlsExtra, "tls-name", "DNS name or IP address of the ACME listener, besides localhost, 127.0.0.1 and ::1 (repeatable)")
	tlsOnly := fs.Bool("tls-only", false, "only make a new listener certificate, signed by the existing HSM root")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !h.enabled() {
		return errors.New("init makes keys inside an HSM: give --pkcs11-module PATH and --pkcs11-token LABEL (the development PKI of file keys is made by serve on first start)")
	}
	actor, err := ceremonyActor(operators)
	if err != nil {
		return err
	}
	if !slices.Contains(pkcs11.KeyTypes, *keyType) {
		return fmt.Errorf("--key-type %q: use one of %s", *keyType, strings.Join(pkcs11.KeyTypes, ", "))
	}
	dir := filepath.Join(*data, "pki")
	if !*tlsOnly {
		for _, f := range []string{"root.pem", "production.pem", "test.pem"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return fmt.Errorf("%s already exists: this data directory has a PKI; use another --data, or --tls-only for a new listener certificate", filepath.Join(dir, f))
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// The record is opened before any key exists, so no key is made unrecorded.
	st, err := openStore(ctx, *db, *data)
	if err != nil {
		return fmt.Errorf("init: opening the database for the ceremony record: %w", err)
	}
	defer st.Close()
	log := audit.New(st, nil)
	pool, err := h.open()
	if err != nil {
		_, _ = log.Append(ctx, actor, "hsm.login", h.token, audit.Failed+": "+err.Error())
		return fmt.Errorf("init: HSM: %w", err)
	}
	defer pool.Close()

	c := &ceremony{ctx: ctx, log: log, actor: actor, pool: pool, dir: dir, now: time.Now(), out: stdout}
	if *tlsOnly {
		return c.listenerOnly(*h.keys["root"], tlsExtra)
	}
	return c.run(h, *keyType, *org, tlsExtra)
}

// ceremonyActor is the record's actor for the operators present: at least two
// different people, since SOTE's practice statement needs two for key activation.
func ceremonyActor(operators []string) (string, error) {
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

type ceremony struct {
	ctx   context.Context
	log   *audit.Log
	actor string
	pool  *pkcs11.Pool
	dir   string
	now   time.Time
	out   io.Writer
}

// record appends an event; a ceremony whose record cannot be written stops.
func (c *ceremony) record(action, object string, err error) error {
	outcome := audit.OK
	if err != nil {
		outcome = audit.Failed + ": " + err.Error()
	}
	if _, aerr := c.log.Append(c.ctx, c.actor, action, object, outcome); aerr != nil {
		return fmt.Errorf("init: writing the ceremony record: %w", aerr)
	}
	return err
}

func (c *ceremony) generate(label, keyType string) (*pkcs11.Key, error) {
	k, err := c.pool.Generate(c.ctx, label, keyType)
	object := "label=" + label + " type=" + keyType
	if err == nil {
		i := k.Info()
		object = fmt.Sprintf("label=%s id=%s type=%s sensitive=%t extractable=%t never_extractable=%t",
			i.Label, i.ID, i.Type, i.Sensitive, i.Extractable, i.NeverExtractable)
	}
	if err := c.record("key.generate", object, err); err != nil {
		return nil, err
	}
	return k, nil
}

func (c *ceremony) run(h *hsmConfig, keyType, org string, tlsExtra []string) error {
	keys := map[string]*pkcs11.Key{}
	for _, role := range []string{"root", "production", "test"} {
		k, err := c.generate(*h.keys[role], keyType)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		keys[role] = k
	}
	subject := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{org}, Country: []string{"FI"}}
	}
	rootTmpl := caTemplate(subject(org+" root"), c.now, c.now.AddDate(rootYears, 0, 0), 1)
	root, err := c.sign(rootTmpl, nil, keys["root"], keys["root"])
	if err != nil {
		return err
	}
	certs := map[string]*x509.Certificate{"root": root}
	for _, role := range []string{"production", "test"} {
		cn := org + " production issuer"
		if role == "test" {
			cn = org + " TEST issuer"
		}
		tmpl := caTemplate(subject(cn), c.now, c.now.AddDate(issuerYears, 0, 0), 0)
		cert, err := c.sign(tmpl, root, keys[role], keys["root"])
		if err != nil {
			return err
		}
		iss := &signer.Issuer{Name: role, Cert: cert, Key: keys[role]}
		if err := c.record("key.selftest", "label="+keys[role].Info().Label, iss.Check()); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		certs[role] = cert
	}
	for _, role := range []string{"root", "production", "test"} {
		path := filepath.Join(c.dir, role+".pem")
		if err := writeCertPEM(path, certs[role]); err != nil {
			return err
		}
		fp := filekey.Fingerprint(certs[role])
		if err := c.record("certificate.create", fmt.Sprintf("%s key=%s sha256=%s subject=%q", role, keys[role].Info().Label, fp, certs[role].Subject), nil); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "%-10s %s  SHA-256 %s\n", role, path, fp)
	}
	rootsPath := filepath.Join(filepath.Dir(c.dir), "roots.pem")
	if err := writeCertPEM(rootsPath, root); err != nil {
		return err
	}
	if err := c.listener(root, keys["root"], tlsExtra); err != nil {
		return err
	}
	// The operator CA of the admin listener's client certificates (operators.go).
	if _, err := ensureOperatorCA(c.ctx, filepath.Dir(c.dir), c.log, c.actor); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := c.record("ceremony.init", fmt.Sprintf("token=%q root=%s production=%s test=%s", h.token,
		filekey.Fingerprint(root), filekey.Fingerprint(certs["production"]), filekey.Fingerprint(certs["test"])), nil); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "Keys generated in token %q by %s; the ceremony is recorded in the audit log.\nStart the server with: varmenne serve --data %s --pkcs11-module %s --pkcs11-token %q\n",
		h.token, c.actor, filepath.Dir(c.dir), h.module, h.token)
	return nil
}

// listenerOnly makes a new listener certificate with the existing root.
func (c *ceremony) listenerOnly(rootLabel string, tlsExtra []string) error {
	root, err := readCert(filepath.Join(c.dir, "root.pem"))
	if err != nil {
		return err
	}
	key, err := c.pool.Key(c.ctx, rootLabel)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(root.PublicKey) {
		return fmt.Errorf("HSM key %q is not the key of %s; give the right --pkcs11-root-key", rootLabel, filepath.Join(c.dir, "root.pem"))
	}
	return c.listener(root, key, tlsExtra)
}

// listener makes the ACME listener's key (a file) and its certificate, signed by
// the root.
func (c *ceremony) listener(root *x509.Certificate, rootKey crypto.Signer, extra []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	dnsNames, ips := listenerNames(extra)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: dnsNames[0], Organization: root.Subject.Organization, Country: []string{"FI"}},
		NotBefore:             c.now.Add(-time.Minute),
		NotAfter:              c.now.AddDate(listenerYears, 0, 0),
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
	if err := filekey.Save(filepath.Join(c.dir, "tls.key"), key); err != nil {
		return err
	}
	path := filepath.Join(c.dir, "tls.pem")
	if err := writeCertPEM(path, cert); err != nil {
		return err
	}
	fp := filekey.Fingerprint(cert)
	if err := c.record("certificate.create", fmt.Sprintf("listener names=%v sha256=%s", append(dnsNames, ipStrings(ips)...), fp), nil); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%-10s %s  SHA-256 %s\n", "listener", path, fp)
	return nil
}

// sign makes a certificate for key's public half, signed by parentKey; parent nil
// means self-signed. RSA parents sign sha512WithRSAEncryption as SOTE issuers do.
func (c *ceremony) sign(tmpl, parent *x509.Certificate, key crypto.Signer, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := signer.NewSerial(c.now, rand.Reader)
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
