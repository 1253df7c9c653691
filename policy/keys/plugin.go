package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
)

// PluginName is the name profiles list this plugin by.
const PluginName = "keys"

// KeyTypes are the subscriber key types SOTE certificates may carry; a profile
// certifies all of them or fewer.
var KeyTypes = []string{"rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384"}

func init() { policy.Register(PluginName, NewPlugin) }

// Plugin holds the SOTE key rules of a profile at finalize: the key's type is one of
// the profile's key types, and the key was never certified before (SOTE issues one
// certificate per key; the store's unique key hash enforces it too, this refuses
// before the order starts processing). It has no configuration of its own: the key
// types are the profile's.
//
// What every key must pass whatever the profile — its quality (CheckCertificateKey)
// and not being reported compromised — acme/authority checks before any plugin runs.
type Plugin struct {
	profile string
	types   []string
	store   policy.KeyLookup
}

// NewPlugin is the plugin's policy.Factory.
func NewPlugin(config json.RawMessage, env policy.Env) (policy.Plugin, error) {
	var none struct{}
	if err := policy.DecodeConfig(config, &none); err != nil {
		return nil, err
	}
	if env.Keys == nil {
		return nil, errors.New("needs the store's certified and blocked keys (Env.Keys)")
	}
	types := env.Profile.KeyTypes
	if len(types) == 0 {
		types = KeyTypes
	}
	for _, t := range types {
		if !slices.Contains(KeyTypes, t) {
			return nil, fmt.Errorf("key type %q of profile %q is not one of %s", t, env.Profile.Name, strings.Join(KeyTypes, ", "))
		}
	}
	return &Plugin{profile: env.Profile.Name, types: slices.Clone(types), store: env.Keys}, nil
}

// Name is PluginName.
func (p *Plugin) Name() string { return PluginName }

// CheckOrder allows: an order carries no key.
func (p *Plugin) CheckOrder(ctx context.Context, r *policy.Request) error { return nil }

// CheckCSR refuses a key type the profile does not certify and a key certified
// before.
func (p *Plugin) CheckCSR(ctx context.Context, r *policy.Request) error {
	if r.CSR == nil {
		return acme.Errorf(acme.BadCSR, "the finalize request carries no CSR")
	}
	pub := r.CSR.PublicKey
	switch t := TypeOf(pub); {
	case t == "":
		return acme.Errorf(acme.BadCSR, "profile %s certifies %s keys only; generate a key of one of those types", p.profile, strings.Join(p.types, ", "))
	case !slices.Contains(p.types, t):
		return acme.Errorf(acme.BadCSR, "profile %s certifies %s keys, not %s; generate a key of one of those types", p.profile, strings.Join(p.types, ", "), t)
	}
	hash := r.KeyHash
	if hash == "" {
		h, err := Hash(pub)
		if err != nil {
			return acme.Errorf(acme.BadCSR, "the CSR's public key cannot be encoded")
		}
		hash = h
	}
	certified, err := p.store.KeyCertified(ctx, hash)
	if err != nil {
		return fmt.Errorf("keys: looking up certified keys: %w", err)
	}
	if certified {
		return acme.Errorf(acme.BadCSR, "this public key was certified before; SOTE certificates are never issued twice for one key: generate a new key pair")
	}
	return nil
}

// TypeOf names a key as profiles list key types ("rsa-2048", "ecdsa-p256"); "" for
// anything else.
func TypeOf(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return ""
		}
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		if k == nil {
			return ""
		}
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256"
		case elliptic.P384():
			return "ecdsa-p384"
		}
	}
	return ""
}

// Hash is the lower-case hex SHA-256 of the key's SubjectPublicKeyInfo DER, the
// key's identity in the store (the same as signer.KeyHash).
func Hash(pub crypto.PublicKey) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:]), nil
}
