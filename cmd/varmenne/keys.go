package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/varmenne/varmenne/signer/ceremony"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
)

// heldPIN is the HSM PIN main read from the pipe of the varmenne that ran it
// without the PIN in its environment (pin_linux.go); "" when there is none.
var heldPIN string

// hsmFlags adds the --pkcs11-* flags; roles are the keys the command uses. The
// returned function is the configuration they set, once parsed.
func hsmFlags(fs *flag.FlagSet, roles ...string) func() ceremony.HSM {
	var h ceremony.HSM
	fs.StringVar(&h.Module, "pkcs11-module", "", "PKCS#11 library of the HSM holding the root and issuer keys, e.g. /usr/lib/softhsm/libsofthsm2.so (empty: development file keys)")
	fs.StringVar(&h.Token, "pkcs11-token", "", "label of the HSM token holding the keys")
	fs.IntVar(&h.Slot, "pkcs11-slot", -1, "slot of the token, when its label is not unique")
	fs.StringVar(&h.PINFile, "pkcs11-pin-file", "", "file holding the token's user PIN, readable by its owner only (otherwise the PIN is read from $"+ceremony.PINEnv+", which varmenne drops from its environment by running itself again)")
	var shares stringList
	fs.Var(&shares, "pkcs11-pin-share", "activation share file that varmenne init wrote for one holder, its owner's only; give two, one from each holder, combined in memory into the token's PIN (serve takes no PIN whole) (repeatable; $VARMENNE_PKCS11_PIN_SHARE: FILE,FILE)")
	fs.IntVar(&h.Sessions, "pkcs11-sessions", pkcs11.DefaultSessions, "HSM sessions kept open; each runs one signature at a time")
	labels := map[string]*string{}
	for _, r := range roles {
		labels[r] = fs.String("pkcs11-"+r+"-key", "varmenne-"+r, "label of the "+r+" key in the token")
	}
	return func() ceremony.HSM {
		h.PINShares = shares
		h.Labels = map[string]string{}
		for r, l := range labels {
			h.Labels[r] = *l
		}
		if pin := heldPIN; pin != "" {
			h.PINFrom = func() (string, error) { return pin, nil }
		}
		return h
	}
}

// issuerKeys loads the root, the issuers and the listener's TLS certificate: from
// the HSM and the certificates `varmenne init` wrote when --pkcs11-module is given,
// otherwise the development PKI of file keys (made on first start). The returned
// function releases the HSM.
func issuerKeys(ctx context.Context, h ceremony.HSM, data, devKeyType string, names []string, log *slog.Logger) (*filekey.DevPKI, func(), error) {
	dir := filepath.Join(data, "pki")
	if h.Enabled() {
		pki, closeKeys, err := ceremony.OpenPKI(ctx, h, dir, names, time.Now(), log)
		if err == nil && pki.SharedTestRoot {
			log.Warn(sharedTestRootWarning, "dir", dir,
				"redo", "run a new key ceremony (varmenne init, which makes a test root of its own) with a new --data directory and move the organisations there")
		}
		return pki, closeKeys, err
	}
	pki, created, err := filekey.EnsureDevPKI(dir, devKeyType, names)
	if err != nil {
		return nil, nil, fmt.Errorf("development PKI: %w", err)
	}
	log.Warn("DEVELOPMENT PKI: the root and issuer keys are files in the data directory and are for development and testing only; production keeps issuer keys in an HSM (--pkcs11-module)",
		"dir", dir, "created", created)
	if pki.SharedTestRoot {
		log.Warn(sharedTestRootWarning, "dir", dir,
			"redo", "start with a new --data directory, or stop the server and remove test.pem, test.key, test-ocsp.pem and test-ocsp.key from "+dir+" so the next start makes a test root and a test issuer of their own (test certificates issued so far then lose their CRL and OCSP)")
	}
	return pki, func() {}, nil
}

// sharedTestRootWarning is said at every start of a PKI made before the test root:
// it keeps working as it is, and nothing is re-keyed or re-certified unasked.
const sharedTestRootWarning = "TEST ISSUER UNDER THE PRODUCTION ROOT: this PKI was made before varmenne gave test certificates a root of their own, so relying parties trusting roots.pem accept test certificates (and test-roots.pem holds the production root); make the PKI again as redo says"
