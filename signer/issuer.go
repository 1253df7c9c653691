package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
)

// Issuer is one issuing CA: its certificate, the key that signs for it, and the
// certificates between it and the root.
type Issuer struct {
	Name  string              // configuration name: "production" or "test"
	Cert  *x509.Certificate   // the issuing CA certificate
	Key   crypto.Signer       // its private key (file key now; PKCS#11 later)
	Chain []*x509.Certificate // certificates above Cert up to but excluding the root (may be empty)
	// Alternates are further chains served after the leaf (RFC 8555 7.4.2, Link
	// rel="alternate"), e.g. through a root cross-signed by another CA. Each begins
	// with a certificate of this issuer's subject and key. See AddAlternate.
	Alternates [][]*x509.Certificate
}

// AddAlternate adds an alternate chain from PEM: the certificates that follow the leaf
// in it, beginning with one of the issuer's subject and key (the issuer itself or a
// cross-signed copy), each signed by the next. Anything else is refused, so a client
// never gets a chain its leaf does not verify through.
func (i *Issuer) AddAlternate(pemBytes []byte) error {
	var chain []*x509.Certificate
	for rest := pemBytes; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("a %q PEM block where only CERTIFICATE blocks belong", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return fmt.Errorf("certificate %d: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return errors.New("no PEM certificate in it")
	}
	first := chain[0]
	pub, ok := first.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !bytes.Equal(first.RawSubject, i.Cert.RawSubject) || !ok || !pub.Equal(i.Cert.PublicKey) {
		return fmt.Errorf("its first certificate %q is not of issuer %q's subject and key %q", first.Subject, i.Name, i.Cert.Subject)
	}
	for k := 0; k+1 < len(chain); k++ {
		if err := chain[k].CheckSignatureFrom(chain[k+1]); err != nil {
			return fmt.Errorf("certificate %d %q is not signed by certificate %d %q: %w", k+1, chain[k].Subject, k+2, chain[k+1].Subject, err)
		}
	}
	i.Alternates = append(i.Alternates, chain)
	return nil
}

// ChainPEM is the PEM the ACME certificate URL serves after the leaf: Cert then Chain.
func (i *Issuer) ChainPEM() []byte {
	var out []byte
	for _, c := range append([]*x509.Certificate{i.Cert}, i.Chain...) {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Check makes sure the issuer can sign certificates: its certificate is a CA allowed
// to sign certificates, and its key is the certificate's key and signs a test message
// that verifies. Run it at start, so a mismatched key or a broken HSM stops the
// process instead of failing the first order.
func (i *Issuer) Check() error {
	if i.Cert == nil || i.Key == nil {
		return fmt.Errorf("signer: issuer %q: certificate and key are required", i.Name)
	}
	if !i.Cert.BasicConstraintsValid || !i.Cert.IsCA {
		return fmt.Errorf("signer: issuer %q: certificate %q is not a CA certificate", i.Name, i.Cert.Subject)
	}
	if i.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("signer: issuer %q: certificate %q lacks the certSign key usage", i.Name, i.Cert.Subject)
	}
	pub, ok := i.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(i.Cert.PublicKey) {
		return fmt.Errorf("signer: issuer %q: key does not match certificate %q", i.Name, i.Cert.Subject)
	}
	alg, hash, err := signatureParams(i.Key.Public())
	if err != nil {
		return fmt.Errorf("signer: issuer %q: %w", i.Name, err)
	}
	msg := []byte("varmenne issuer self-test")
	sig, err := crypto.SignMessage(i.Key, rand.Reader, msg, hash)
	if err != nil {
		return fmt.Errorf("signer: issuer %q: self-test signature: %w", i.Name, err)
	}
	if err := i.Cert.CheckSignature(alg, msg, sig); err != nil {
		return fmt.Errorf("signer: issuer %q: self-test signature does not verify: %w", i.Name, err)
	}
	return nil
}

// signatureParams picks the signature algorithm for an issuer key. SOTE issuers sign
// with sha512WithRSAEncryption; EC keys use the hash that matches the curve size.
func signatureParams(pub crypto.PublicKey) (x509.SignatureAlgorithm, crypto.Hash, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return x509.SHA512WithRSA, crypto.SHA512, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return x509.ECDSAWithSHA256, crypto.SHA256, nil
		case elliptic.P384():
			return x509.ECDSAWithSHA384, crypto.SHA384, nil
		}
		return 0, 0, fmt.Errorf("unsupported issuer curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return x509.PureEd25519, crypto.Hash(0), nil
	}
	return 0, 0, fmt.Errorf("unsupported issuer key type %T", pub)
}

// Throw-away keys of each issuer key kind, made once per process. They sign the
// pre-certificate whose TBS is recorded and later compared with the real one; the
// TBS depends only on the signature algorithm, never on the key's size. So the RSA
// one is as small as crypto/rsa allows (1024 bits): its signature, which nobody
// verifies but x509.CreateCertificate itself, costs a sixth of a 2048-bit one's
// (about 1.3 ms less per certificate beside an RSA issuer key), and zlint judges
// the certificate's own key and fields, never the size of its signature.
var (
	throwawayRSA     = sync.OnceValues(func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 1024) })
	throwawayP256    = sync.OnceValues(func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	throwawayP384    = sync.OnceValues(func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) })
	throwawayEd25519 = sync.OnceValues(func() (crypto.Signer, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	})
)

func throwawayKey(issuerPub crypto.PublicKey) (crypto.Signer, error) {
	switch k := issuerPub.(type) {
	case *rsa.PublicKey:
		return throwawayRSA()
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return throwawayP256()
		case elliptic.P384():
			return throwawayP384()
		}
	case ed25519.PublicKey:
		return throwawayEd25519()
	}
	return nil, errors.New("no throw-away key for this issuer key type")
}
