package filekey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/varmenne/varmenne/signer"
)

// Hierarchies are the PKI's two hierarchies, each with a root and generations of
// its issuer.
var Hierarchies = []string{"production", "test"}

// Generation is one generation of a hierarchy's issuer (practice statement 6.6):
// the first is named as the hierarchy, later ones "production-2", "production-3", …
// Each signs, and answers for, its own certificates; one per hierarchy issues new
// ones (which one, the database says).
type Generation struct {
	Hierarchy string
	Number    int
	Issuer    *signer.Issuer
	OCSP      *Responder
}

// GenerationName is the name of generation n of hierarchy: the files of the PKI
// directory (NAME.pem), the HSM key label's suffix, the URLs and the database use it.
func GenerationName(hierarchy string, n int) string {
	if n <= 1 {
		return hierarchy
	}
	return hierarchy + "-" + strconv.Itoa(n)
}

var generationFile = regexp.MustCompile(`^(production|test)-([1-9][0-9]{0,3})\.pem$`)

// ParseGenerationName is GenerationName's inverse; ok is false for a name that is
// no generation of a hierarchy.
func ParseGenerationName(name string) (hierarchy string, n int, ok bool) {
	if slices.Contains(Hierarchies, name) {
		return name, 1, true
	}
	m := generationFile.FindStringSubmatch(name + ".pem")
	if m == nil {
		return "", 0, false
	}
	n, _ = strconv.Atoi(m[2])
	return m[1], n, n >= 2
}

// LaterGenerations lists the numbers of the generations after the first whose
// certificates are in dir, for hierarchy, in order.
func LaterGenerations(dir, hierarchy string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("filekey: %w", err)
	}
	var out []int
	for _, e := range entries {
		if h, n, ok := ParseGenerationName(trimPEM(e.Name())); ok && h == hierarchy && n >= 2 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func trimPEM(name string) string {
	if filepath.Ext(name) != ".pem" {
		return ""
	}
	return name[:len(name)-len(".pem")]
}

// NextGeneration is the number of hierarchy's next generation in dir: one after the
// last whose certificate is there, 2 when there is only the first.
func NextGeneration(dir, hierarchy string) (int, error) {
	ns, err := LaterGenerations(dir, hierarchy)
	if err != nil || len(ns) == 0 {
		return 2, err
	}
	return ns[len(ns)-1] + 1, nil
}

// loadLaterGenerations loads the file-key generations after the first of each
// hierarchy, each checked against its root and given its OCSP responder.
func loadLaterGenerations(dir string, roots map[string]*x509.Certificate, now time.Time) ([]Generation, error) {
	var out []Generation
	for _, h := range Hierarchies {
		ns, err := LaterGenerations(dir, h)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			name := GenerationName(h, n)
			f := files(dir, name)
			cert, key, err := loadCA(f, roots[h], now)
			if err != nil {
				return nil, err
			}
			iss := &signer.Issuer{Name: name, Cert: cert, Key: key}
			if err := iss.Check(); err != nil {
				return nil, fmt.Errorf("filekey: %s: %w", f.cert, err)
			}
			r, err := ensureResponder(files(dir, name+"-ocsp"), iss, now)
			if err != nil {
				return nil, err
			}
			out = append(out, Generation{Hierarchy: h, Number: n, Issuer: iss, OCSP: r})
		}
	}
	return out, nil
}

// NextGenerationTemplate is the certificate of a hierarchy's generation n, whose
// first generation's certificate is first, under root: the first's subject with
// " G<n>" on its common name, five years (no longer than the root), path length
// 0, certSign and crlSign. The key ceremony (HSM keys) and NewGeneration (file
// keys) both sign it.
func NextGenerationTemplate(first *x509.Certificate, n int, root *x509.Certificate, now time.Time) *x509.Certificate {
	subject := pkix.Name{CommonName: fmt.Sprintf("%s G%d", first.Subject.CommonName, n),
		Organization: first.Subject.Organization, OrganizationalUnit: first.Subject.OrganizationalUnit, Country: first.Subject.Country}
	notAfter := now.AddDate(5, 0, 0)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	return &x509.Certificate{
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		Policies:              first.Policies,
		PolicyIdentifiers:     first.PolicyIdentifiers,
	}
}

// KeyTypeOf names the key type of an issuer's public key as Generate takes it, so
// that a new generation has the key type of the first.
func KeyTypeOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256", nil
		case elliptic.P384():
			return "ecdsa-p384", nil
		}
	case *rsa.PublicKey:
		if t := fmt.Sprintf("rsa-%d", k.N.BitLen()); slices.Contains(KeyTypes, t) {
			return t, nil
		}
	}
	return "", fmt.Errorf("filekey: no key type for an issuer key of type %T", pub)
}

// NewGeneration makes the next issuer generation of hierarchy in the development
// PKI in dir: a file key of the first generation's type and its certificate from
// the hierarchy's root key file. It returns the new generation's name and
// certificate. A server loads it at its next start; an operator then makes it the
// active one.
func NewGeneration(dir, hierarchy string, now time.Time) (string, *x509.Certificate, error) {
	if !slices.Contains(Hierarchies, hierarchy) {
		return "", nil, fmt.Errorf("filekey: no hierarchy %q (there are %q)", hierarchy, Hierarchies)
	}
	rootName := "root"
	if hierarchy == "test" && exists(files(dir, "test-root").cert) {
		rootName = "test-root"
	}
	root, rootKey, err := loadCA(files(dir, rootName), nil, now)
	if err != nil {
		return "", nil, err
	}
	first, err := loadCert(files(dir, hierarchy).cert)
	if err != nil {
		return "", nil, err
	}
	n, err := NextGeneration(dir, hierarchy)
	if err != nil {
		return "", nil, err
	}
	name := GenerationName(hierarchy, n)
	f := files(dir, name)
	if exists(f.key) {
		return "", nil, fmt.Errorf("filekey: %s exists without its certificate; remove it (nothing was issued with it) and run the command again", f.key)
	}
	keyType, err := KeyTypeOf(first.PublicKey)
	if err != nil {
		return "", nil, err
	}
	key, err := Generate(keyType)
	if err != nil {
		return "", nil, err
	}
	cert, err := createCert(NextGenerationTemplate(first, n, root, now), root, key.Public(), rootKey, now)
	if err != nil {
		return "", nil, fmt.Errorf("filekey: making %s: %w", f.cert, err)
	}
	if err := Save(f.key, key); err != nil {
		return "", nil, err
	}
	if err := saveCert(f.cert, cert); err != nil {
		return "", nil, err
	}
	return name, cert, nil
}
