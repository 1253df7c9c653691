package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/varmenne/varmenne/signer/filekey"
)

// addAlternateChains reads the --alternate-chain NAME=FILE flags: for issuer NAME
// (production or test), FILE holds PEM certificates served after the leaf as an
// alternate chain (RFC 8555 7.4.2, Link rel="alternate"), beginning with a
// certificate of the issuer's subject and key, e.g. the issuer then a root
// cross-signed by another CA. A flag may be repeated for several chains.
func addAlternateChains(pki *filekey.DevPKI, flags []string) error {
	for _, f := range flags {
		name, file, ok := strings.Cut(f, "=")
		if !ok || file == "" {
			return fmt.Errorf("--alternate-chain %q: give ISSUER=FILE, e.g. production=/etc/varmenne/cross-chain.pem", f)
		}
		iss := pki.Production
		switch name {
		case "production":
		case "test":
			iss = pki.Test
		default:
			return fmt.Errorf("--alternate-chain %q: the issuer is production or test, not %q", f, name)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--alternate-chain %s: %w", f, err)
		}
		if err := iss.AddAlternate(b); err != nil {
			return fmt.Errorf("--alternate-chain %s: %w", f, err)
		}
	}
	return nil
}
