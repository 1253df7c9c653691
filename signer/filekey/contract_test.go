package filekey

import (
	"crypto"
	"sync"
	"testing"

	"github.com/varmenne/varmenne/signer/signertest"
)

// TestSignerContract: file keys pass the contract every issuer-key backend must.
func TestSignerContract(t *testing.T) {
	var mu sync.Mutex
	keys := map[string]crypto.Signer{}
	signertest.Run(t, func(t *testing.T, kind string) crypto.Signer {
		mu.Lock()
		defer mu.Unlock()
		if k, ok := keys[kind]; ok {
			return k
		}
		k, err := Generate(kind)
		if err != nil {
			t.Fatal(err)
		}
		keys[kind] = k
		return k
	})
}
