package pkcs11

import (
	"crypto"
	"testing"

	"github.com/varmenne/varmenne/signer/signertest"
)

// TestSignerContract: keys in SoftHSM2 pass the contract every issuer-key backend must.
func TestSignerContract(t *testing.T) {
	p := openPool(t, 4)
	signertest.Run(t, func(t *testing.T, kind string) crypto.Signer { return key(t, p, kind) })
}
