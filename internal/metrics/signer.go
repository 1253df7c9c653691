package metrics

import (
	"context"
	"crypto"
	"io"
	"time"
)

// contextSigner is a key that honours a request's deadline (signer.ContextSigner,
// as signer/pkcs11 keys are).
type contextSigner interface {
	crypto.Signer
	SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// TimedKey returns key timing each signature it makes (varmenne_signature_duration_seconds)
// and counting those that fail (varmenne_signature_errors_total), labelled with the
// issuer's name and the key's backend ("file", "pkcs11"). A key that honours a
// context keeps doing so; Unwrap (UnwrapKey) gives key back.
func (m *Metrics) TimedKey(key crypto.Signer, issuer, backend string) crypto.Signer {
	if m == nil || key == nil {
		return key
	}
	t := timedKey{Signer: key, took: m.signDuration.WithLabelValues(issuer, backend), errors: m.signErrors.WithLabelValues(issuer, backend)}
	if cs, ok := key.(contextSigner); ok {
		return timedContextKey{timedKey: t, cs: cs}
	}
	return t
}

type timedKey struct {
	crypto.Signer
	took   interface{ Observe(float64) }
	errors interface{ Inc() }
}

// Unwrap is the key being timed, for what asks what kind of key it is.
func (k timedKey) Unwrap() crypto.Signer { return k.Signer }

func (k timedKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.observe(func() ([]byte, error) { return k.Signer.Sign(rand, digest, opts) })
}

func (k timedKey) observe(sign func() ([]byte, error)) ([]byte, error) {
	start := time.Now()
	sig, err := sign()
	k.took.Observe(time.Since(start).Seconds())
	if err != nil {
		k.errors.Inc()
	}
	return sig, err
}

type timedContextKey struct {
	timedKey
	cs contextSigner
}

func (k timedContextKey) SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.observe(func() ([]byte, error) { return k.cs.SignContext(ctx, rand, digest, opts) })
}

// UnwrapKey is the key TimedKey wrapped in k, or k itself.
func UnwrapKey(k crypto.Signer) crypto.Signer {
	if u, ok := k.(interface{ Unwrap() crypto.Signer }); ok {
		return u.Unwrap()
	}
	return k
}
