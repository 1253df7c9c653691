package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/varmenne/varmenne/signer/filekey"
)

// alternateChain is one --alternate-chain ISSUER=FILE: for issuer ISSUER (production
// or test), FILE holds PEM certificates served after the leaf as an alternate chain
// (RFC 8555 7.4.2, Link rel="alternate"), beginning with a certificate of the
// issuer's subject and key, e.g. the issuer then a root cross-signed by another CA.
type alternateChain struct {
	flag, issuer string
	pem          []byte
}

// readAlternateChains checks the flags' form and reads the files, before anything
// starts.
func readAlternateChains(flags []string) ([]alternateChain, error) {
	var out []alternateChain
	for _, f := range flags {
		name, file, ok := strings.Cut(f, "=")
		switch {
		case !ok || file == "":
			return nil, fmt.Errorf("--alternate-chain %q: give ISSUER=FILE, e.g. production=/etc/varmenne/cross-chain.pem", f)
		case name != "production" && name != "test":
			return nil, fmt.Errorf("--alternate-chain %q: the issuer is production or test, not %q", f, name)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--alternate-chain %s: %w", f, err)
		}
		out = append(out, alternateChain{flag: f, issuer: name, pem: b})
	}
	return out, nil
}

// addAlternateChains gives the issuers their alternate chains, refusing one the
// issuer's certificates would not verify through.
func addAlternateChains(pki *filekey.DevPKI, chains []alternateChain) error {
	for _, c := range chains {
		iss := pki.Production
		if c.issuer == "test" {
			iss = pki.Test
		}
		if err := iss.AddAlternate(c.pem); err != nil {
			return fmt.Errorf("--alternate-chain %s: %w", c.flag, err)
		}
	}
	return nil
}
