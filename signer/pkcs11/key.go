package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"

	p11 "github.com/miekg/pkcs11"
	"github.com/varmenne/varmenne/signer"
)

// Key is a private key in the token, found by its label. It is a crypto.Signer and
// a signer.ContextSigner, safe for concurrent use.
type Key struct {
	pool  *Pool
	label string
	id    []byte
	pub   crypto.PublicKey
	info  KeyInfo

	mu     sync.Mutex
	obj    p11.ObjectHandle
	objGen uint64 // the pool generation obj was found in; 0: not yet
}

// KeyInfo is what the token says about a private key's protection.
type KeyInfo struct {
	Label            string
	ID               string // CKA_ID, hex
	Type             string // "rsa-4096", "ecdsa-p384", …
	Sensitive        bool   // CKA_SENSITIVE: the key value never leaves the token in clear
	Extractable      bool   // CKA_EXTRACTABLE: the key may be exported (wrapped)
	NeverExtractable bool   // CKA_NEVER_EXTRACTABLE: it never was exportable
}

// Public returns the key's public half, read from the token when the key was found.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Info returns the key's label, id and protection attributes.
func (k *Key) Info() KeyInfo { return k.info }

// Sign signs digest with the key; it is SignContext without a deadline.
func (k *Key) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(context.Background(), rand, digest, opts)
}

// SignContext signs digest: RSA keys with PKCS#1 v1.5 over a DigestInfo for
// SHA-256, SHA-384 or SHA-512; ECDSA keys returning an ASN.1 signature, as
// crypto.Signer promises. rand is not used: the token has its own.
//
// The deadline of ctx bounds the wait for a free session. PKCS#11 cannot cancel a
// C_Sign in progress, and running it in another goroutine would only leave that
// goroutine and its session behind, so the call runs in this goroutine; a
// signature that arrives after the deadline is discarded and the error is the
// context's. A failure that means sessions or the login are gone fails this call
// and makes the pool re-establish its sessions for the next one.
func (k *Key) SignContext(ctx context.Context, _ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	mech, input, err := k.mechanism(digest, opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pkcs11: key %q: %w: %w", k.label, signer.ErrUnsigned, err)
	}
	var sig []byte
	reached := false // whether C_Sign was called: only then may the token have signed
	err = k.pool.with(ctx, func(s *session) error {
		obj, err := k.object(s)
		if err != nil {
			return err
		}
		c := k.pool.mod.ctx
		if err := c.SignInit(s.h, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, obj); err != nil {
			return err
		}
		reached = true
		sig, err = c.Sign(s.h, input)
		return err
	})
	if err != nil && !reached {
		// No session, no login, no key handle, or a refused C_SignInit: the token
		// signed nothing, so the caller may close its issuance intent.
		return nil, fmt.Errorf("pkcs11: signing with key %q: %w: %w", k.label, signer.ErrUnsigned, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: signing with key %q: %w", k.label, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pkcs11: key %q: signature arrived after the deadline: %w", k.label, err)
	}
	if pub, ok := k.pub.(*ecdsa.PublicKey); ok {
		return ecdsaDER(sig, pub.Curve)
	}
	return sig, nil
}

// digestInfoPrefix is the DER of DigestInfo up to the digest (RFC 8017 section 9.2).
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

func (k *Key) mechanism(digest []byte, opts crypto.SignerOpts) (uint, []byte, error) {
	if opts == nil {
		return 0, nil, errors.New("pkcs11: no signer options")
	}
	h := opts.HashFunc()
	if h == 0 || !h.Available() || len(digest) != h.Size() {
		return 0, nil, fmt.Errorf("pkcs11: key %q: digest of %d bytes for %v; want a SHA-2 digest", k.label, len(digest), h)
	}
	switch k.pub.(type) {
	case *rsa.PublicKey:
		if _, ok := opts.(*rsa.PSSOptions); ok {
			return 0, nil, fmt.Errorf("pkcs11: key %q: RSA-PSS is not supported; issuers sign with PKCS#1 v1.5", k.label)
		}
		prefix, ok := digestInfoPrefix[h]
		if !ok {
			return 0, nil, fmt.Errorf("pkcs11: key %q: hash %v not supported; use SHA-256, SHA-384 or SHA-512", k.label, h)
		}
		return p11.CKM_RSA_PKCS, append(bytes.Clone(prefix), digest...), nil
	case *ecdsa.PublicKey:
		return p11.CKM_ECDSA, digest, nil
	}
	return 0, nil, fmt.Errorf("pkcs11: key %q: unsupported key type %T", k.label, k.pub)
}

// ecdsaDER turns the r‖s a token returns into the ASN.1 SEQUENCE Go expects.
func ecdsaDER(sig []byte, curve elliptic.Curve) ([]byte, error) {
	size := (curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return nil, fmt.Errorf("pkcs11: ECDSA signature of %d bytes, want %d", len(sig), 2*size)
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}

// object returns the key's handle, found again in every new pool generation:
// handles of private objects may not survive a lost login.
func (k *Key) object(s *session) (p11.ObjectHandle, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.objGen == s.gen {
		return k.obj, nil
	}
	objs, err := find(k.pool.mod.ctx, s.h, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_LABEL, k.label),
		p11.NewAttribute(p11.CKA_ID, k.id),
	})
	if err != nil {
		return 0, err
	}
	if len(objs) != 1 {
		return 0, fmt.Errorf("pkcs11: %d private keys labelled %q with id %x; want 1", len(objs), k.label, k.id)
	}
	k.obj, k.objGen = objs[0], s.gen
	return k.obj, nil
}

// Key finds the private key labelled label and its public key (same CKA_ID) in the
// token. Exactly one private key may carry the label.
func (p *Pool) Key(ctx context.Context, label string) (*Key, error) {
	if label == "" {
		return nil, errors.New("pkcs11: no key label")
	}
	k := &Key{pool: p, label: label}
	err := p.with(ctx, func(s *session) error {
		c := p.mod.ctx
		privs, err := find(c, s.h, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_LABEL, label),
		})
		if err != nil {
			return err
		}
		switch len(privs) {
		case 0:
			return fmt.Errorf("pkcs11: no private key labelled %q on token %q; run varmenne init or check the label", label, p.cfg.TokenLabel)
		case 1:
		default:
			return fmt.Errorf("pkcs11: %d private keys labelled %q on token %q; labels must be unique", len(privs), label, p.cfg.TokenLabel)
		}
		attrs, err := c.GetAttributeValue(s.h, privs[0], []*p11.Attribute{
			p11.NewAttribute(p11.CKA_ID, nil),
			p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
			p11.NewAttribute(p11.CKA_SENSITIVE, nil),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
			p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
		})
		if err != nil {
			return fmt.Errorf("pkcs11: reading key %q: %w", label, err)
		}
		k.id = attrs[0].Value
		k.info = KeyInfo{Label: label, ID: hex.EncodeToString(k.id),
			Sensitive: boolAttr(attrs[2]), Extractable: boolAttr(attrs[3]), NeverExtractable: boolAttr(attrs[4])}
		pubs, err := find(c, s.h, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
			p11.NewAttribute(p11.CKA_ID, k.id),
		})
		if err != nil {
			return err
		}
		if len(pubs) != 1 {
			return fmt.Errorf("pkcs11: %d public keys with the id %x of key %q; want 1", len(pubs), k.id, label)
		}
		k.pub, k.info.Type, err = readPublic(c, s.h, pubs[0], ulongAttr(attrs[1]))
		if err != nil {
			return fmt.Errorf("pkcs11: public key of %q: %w", label, err)
		}
		k.obj, k.objGen = privs[0], s.gen
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Curve object identifiers as CKA_EC_PARAMS carries them.
var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
)

func readPublic(c *p11.Ctx, sh p11.SessionHandle, obj p11.ObjectHandle, keyType uint) (crypto.PublicKey, string, error) {
	switch keyType {
	case p11.CKK_RSA:
		a, err := c.GetAttributeValue(sh, obj, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_MODULUS, nil),
			p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, "", err
		}
		n := new(big.Int).SetBytes(a[0].Value)
		e := new(big.Int).SetBytes(a[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31-1 || e.Int64() < 3 {
			return nil, "", fmt.Errorf("RSA exponent %v out of range", e)
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, fmt.Sprintf("rsa-%d", n.BitLen()), nil
	case p11.CKK_EC:
		a, err := c.GetAttributeValue(sh, obj, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_EC_PARAMS, nil),
			p11.NewAttribute(p11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, "", err
		}
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(a[0].Value, &oid); err != nil {
			return nil, "", fmt.Errorf("EC parameters are not a named curve: %w", err)
		}
		var curve elliptic.Curve
		var name string
		switch {
		case oid.Equal(oidP256):
			curve, name = elliptic.P256(), "ecdsa-p256"
		case oid.Equal(oidP384):
			curve, name = elliptic.P384(), "ecdsa-p384"
		default:
			return nil, "", fmt.Errorf("curve %v not supported; use P-256 or P-384", oid)
		}
		// The standard wraps the point in an OCTET STRING; some modules do not.
		point := a[1].Value
		var inner []byte
		if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
			point = inner
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, "", fmt.Errorf("EC point: %w", err)
		}
		return pub, name, nil
	}
	return nil, "", fmt.Errorf("key type %#x not supported; use RSA or EC", keyType)
}

func find(c *p11.Ctx, sh p11.SessionHandle, tmpl []*p11.Attribute) ([]p11.ObjectHandle, error) {
	if err := c.FindObjectsInit(sh, tmpl); err != nil {
		return nil, err
	}
	var all []p11.ObjectHandle
	for {
		objs, _, err := c.FindObjects(sh, 16)
		if err != nil {
			_ = c.FindObjectsFinal(sh)
			return nil, err
		}
		all = append(all, objs...)
		if len(objs) == 0 {
			break
		}
	}
	return all, c.FindObjectsFinal(sh)
}

func boolAttr(a *p11.Attribute) bool { return len(a.Value) > 0 && a.Value[0] != 0 }

// ulongAttr decodes a CK_ULONG attribute, which the module writes in the
// machine's byte order and size.
func ulongAttr(a *p11.Attribute) uint {
	switch len(a.Value) {
	case 8:
		return uint(binary.NativeEndian.Uint64(a.Value))
	case 4:
		return uint(binary.NativeEndian.Uint32(a.Value))
	}
	return ^uint(0)
}

// Sessions is Pool.Sessions of the pool the key signs through.
func (k *Key) Sessions() (inUse, size int) { return k.pool.Sessions() }
