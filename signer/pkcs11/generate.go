package pkcs11

import (
	"context"
	"crypto/rand"
	"encoding/asn1"
	"fmt"
	"slices"

	p11 "github.com/miekg/pkcs11"
)

// KeyTypes are the key types Generate makes.
var KeyTypes = []string{"rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384"}

// Generate makes a key pair inside the token: the private key is a token object,
// private, sensitive and not extractable, usable only to sign; the public key is a
// token object that can verify. Both carry label and a new random CKA_ID. A label
// already in use on the token is refused, so a second run of a ceremony can never
// shadow a key that certificates were made for.
func (p *Pool) Generate(ctx context.Context, label, keyType string) (*Key, error) {
	if label == "" {
		return nil, fmt.Errorf("pkcs11: no key label")
	}
	if !slices.Contains(KeyTypes, keyType) {
		return nil, fmt.Errorf("pkcs11: unknown key type %q (supported: %q)", keyType, KeyTypes)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	mech, pubAttrs, err := keyGenParams(keyType)
	if err != nil {
		return nil, err
	}
	common := func(class uint) []*p11.Attribute {
		return []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, class),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_LABEL, label),
			p11.NewAttribute(p11.CKA_ID, id),
		}
	}
	pubTmpl := append(common(p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_VERIFY, true),
		p11.NewAttribute(p11.CKA_ENCRYPT, false),
		p11.NewAttribute(p11.CKA_WRAP, false),
	)
	pubTmpl = append(pubTmpl, pubAttrs...)
	privTmpl := append(common(p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_SIGN, true),
		p11.NewAttribute(p11.CKA_DECRYPT, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
	)
	err = p.with(ctx, func(s *session) error {
		c := p.mod.ctx
		existing, err := find(c, s.h, []*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, label)})
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			return fmt.Errorf("pkcs11: token %q already holds an object labelled %q; choose another label or remove it with the HSM's tools", p.cfg.TokenLabel, label)
		}
		// Token objects need a read-write session; the pool's sessions are read-only.
		p.mu.Lock()
		slot := p.slot
		p.mu.Unlock()
		rw, err := c.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
		if err != nil {
			return err
		}
		defer c.CloseSession(rw)
		_, _, err = c.GenerateKeyPair(rw, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, pubTmpl, privTmpl)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: generating %s key %q: %w", keyType, label, err)
	}
	return p.Key(ctx, label)
}

func keyGenParams(keyType string) (uint, []*p11.Attribute, error) {
	switch keyType {
	case "rsa-2048", "rsa-3072", "rsa-4096":
		bits := map[string]int{"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}[keyType]
		return p11.CKM_RSA_PKCS_KEY_PAIR_GEN, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_RSA),
			p11.NewAttribute(p11.CKA_MODULUS_BITS, bits),
			p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		}, nil
	case "ecdsa-p256", "ecdsa-p384":
		oid := oidP256
		if keyType == "ecdsa-p384" {
			oid = oidP384
		}
		params, err := asn1.Marshal(oid)
		if err != nil {
			return 0, nil, err
		}
		return p11.CKM_EC_KEY_PAIR_GEN, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
			p11.NewAttribute(p11.CKA_EC_PARAMS, params),
		}, nil
	}
	return 0, nil, fmt.Errorf("pkcs11: unknown key type %q", keyType)
}
