package main

import (
	"fmt"
	"log/slog"

	"github.com/varmenne/varmenne/policy/keys"
)

// readWeakKeys loads the --weak-keys files: Debian's weak RSA keys of 2006–2008
// (CVE-2008-0166) in the openssl-blacklist format (policy/keys/weakkeys.go). A file
// that cannot be read or is malformed stops the start with its name and line. No
// files: nil, and nothing is checked.
func readWeakKeys(files []string) (*keys.WeakKeys, error) {
	if len(files) == 0 {
		return nil, nil
	}
	weak, err := keys.ReadWeakKeys(files...)
	if err != nil {
		return nil, fmt.Errorf("--weak-keys %w", err)
	}
	return weak, nil
}

// logWeakKeys says at start what each --weak-keys file gave, or warns once that
// Debian's weak keys go unchecked and where operators get the lists.
func logWeakKeys(log *slog.Logger, weak *keys.WeakKeys) {
	files := weak.Files()
	if len(files) == 0 {
		log.Warn("Debian's weak RSA keys (CVE-2008-0166) are not checked: no --weak-keys file; " +
			"load the lists of Debian's openssl-blacklist package (blacklist.RSA-2048, blacklist.RSA-4096) " +
			"or of github.com/CVE-2008-0166/blocklists by Rob Stradling, which also has RSA-3072")
		return
	}
	for _, f := range files {
		log.Info("weak RSA keys loaded (CVE-2008-0166)", "file", f.Path, "entries", f.Entries)
	}
}
