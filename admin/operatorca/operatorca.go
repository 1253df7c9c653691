// Package operatorca is the operator CA: it issues the client certificates operators
// authenticate to the admin listener with. It certifies people of the CA, never
// services, and its key is a file in the data directory's pki/; it knows nothing of
// operators' roles beyond writing one into a certificate, and nothing of HTTP.
package operatorca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/varmenne/varmenne/signer/filekey"
)

// CA issues the client certificates operators authenticate to the admin listener
// with. It is separate from the certificate PKI.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Operator CA files in the pki directory.
const (
	certFile = "operator-ca.pem"
	keyFile  = "operator-ca.key"
)

// ClientCertLifetime is how long an operator client certificate is valid.
const ClientCertLifetime = 365 * 24 * time.Hour

// Ensure loads the operator CA from dir, or makes it (ECDSA P-256, 10
// years) when neither file exists; created says it was made now. A certificate
// without its key, or the reverse, is an error naming the file.
func Ensure(dir string) (ca *CA, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := Load(dir)
		return ca, false, err
	case certErr == nil || keyErr == nil:
		return nil, false, fmt.Errorf("admin: operator CA: only one of %s and %s exists; restore the other", certPath, keyPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("admin: operator CA: %w", err)
	}
	key, err := filekey.Generate("ecdsa-p256")
	if err != nil {
		return nil, false, fmt.Errorf("admin: operator CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "varmenne operator CA", Organization: []string{"varmenne"}, Country: []string{"FI"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, false, fmt.Errorf("admin: operator CA: %w", err)
	}
	if err := filekey.Save(keyPath, key); err != nil {
		return nil, false, fmt.Errorf("admin: operator CA: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, false, fmt.Errorf("admin: operator CA: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key}, true, nil
}

// Load loads the operator CA from dir.
func Load(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	cert, err := ReadCert(dir)
	if err != nil {
		return nil, err
	}
	key, err := filekey.Load(keyPath)
	if err != nil {
		return nil, fmt.Errorf("admin: operator CA key: %w", err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("admin: %s is not the key of %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ReadCert reads the operator CA certificate the admin listener trusts.
func ReadCert(dir string) (*x509.Certificate, error) {
	c, err := filekey.LoadCertificate(filepath.Join(dir, certFile))
	if err != nil {
		return nil, fmt.Errorf("admin: operator CA (made by varmenne init or the first varmenne serve): %w", err)
	}
	return c, nil
}

// IssueClientCert makes an operator's key and client certificate: CN the name,
// OU the role, extended key usage clientAuth only. It returns both as PEM.
func (ca *CA) IssueClientCert(name, role string, now time.Time) (cert *x509.Certificate, certPEM, keyPEM []byte, err error) {
	if ca == nil || ca.Key == nil {
		return nil, nil, nil, errors.New("admin: no operator CA")
	}
	key, err := filekey.Generate("ecdsa-p256")
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{role}, Organization: []string{"varmenne operators"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ClientCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, _ = x509.ParseCertificate(der)
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func randomSerial() *big.Int {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("operatorca: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	b[0] &= 0x7f
	b[0] |= 0x01
	return new(big.Int).SetBytes(b)
}
