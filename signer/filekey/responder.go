package filekey

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/varmenne/varmenne/signer"
)

// Responder is an issuer's delegated OCSP responder (RFC 6960 4.2.2.2): a
// certificate the issuer signed for id-kp-OCSPSigning, and its own key, so the
// issuer key is not needed for every OCSP answer.
type Responder struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Issued: the issuer key signed Cert just now (a first start or a renewal),
	// which the audit log records.
	Issued bool
}

const (
	// responderKeyType: OCSP answers are signed often; P-256 is fast and every
	// relying party verifies it.
	responderKeyType = "ecdsa-p256"
	// A responder certificate carries id-pkix-ocsp-nocheck, so its revocation is
	// never checked: it is kept short and replaced well before it ends.
	responderValidity    = 90 * 24 * time.Hour
	responderRenewBefore = 30 * 24 * time.Hour
)

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1); its value is NULL.
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// EnsureResponder loads or makes issuer's delegated OCSP responder in dir, in the
// files <issuer name>-ocsp.pem and <issuer name>-ocsp.key, as EnsureDevPKI does for
// the development issuers. serve uses it when the issuer keys are in an HSM: the
// responder certificate is signed by the issuer key (one HSM signature per renewal),
// while the responder's own key is a file key. That is acceptable because the key can
// only sign OCSP answers for this issuer (EKU id-kp-OCSPSigning, not a CA), its
// certificate lives at most 90 days and is replaced 30 days before it ends, and it
// carries id-pkix-ocsp-nocheck by design; keeping it out of the HSM keeps every OCSP
// answer from needing an HSM signature.
func EnsureResponder(dir string, issuer *signer.Issuer, now time.Time) (*Responder, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filekey: %w", err)
	}
	return ensureResponder(files(dir, issuer.Name+"-ocsp"), issuer, now)
}

// ensureResponder loads the issuer's responder from f, or makes a new key and
// certificate when they are missing, do not load, are not the issuer's, or end
// within responderRenewBefore. Nothing depends on an old responder key: relying
// parties find the responder certificate in each response.
func ensureResponder(f pkiFiles, issuer *signer.Issuer, now time.Time) (*Responder, error) {
	if c, err := loadCert(f.cert); err == nil {
		if key, err := Load(f.key); err == nil && responderUsable(c, key, issuer.Cert, now) {
			return &Responder{Cert: c, Key: key}, nil
		}
	}
	key, err := Generate(responderKeyType)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(responderValidity)
	if notAfter.After(issuer.Cert.NotAfter) {
		notAfter = issuer.Cert.NotAfter
	}
	subject := pkix.Name{CommonName: issuer.Cert.Subject.CommonName + " OCSP responder",
		Organization: issuer.Cert.Subject.Organization, Country: issuer.Cert.Subject.Country}
	tmpl := &x509.Certificate{
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: oidOCSPNoCheck, Value: asn1.NullBytes}},
	}
	cert, err := createCert(tmpl, issuer.Cert, key.Public(), issuer.Key, now)
	if err != nil {
		return nil, fmt.Errorf("filekey: making %s: %w", f.cert, err)
	}
	// Key first: a crash before the certificate is written leaves a pair that does
	// not load, which the next start replaces.
	if err := Save(f.key, key); err != nil {
		return nil, err
	}
	if err := saveCert(f.cert, cert); err != nil {
		return nil, err
	}
	return &Responder{Cert: cert, Key: key, Issued: true}, nil
}

func responderUsable(c *x509.Certificate, key crypto.Signer, issuer *x509.Certificate, now time.Time) bool {
	if !publicKeyEqual(key.Public(), c.PublicKey) || c.CheckSignatureFrom(issuer) != nil ||
		now.Before(c.NotBefore) || now.Add(responderRenewBefore).After(c.NotAfter) {
		return false
	}
	if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return false
	}
	return slices.ContainsFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oidOCSPNoCheck) })
}
