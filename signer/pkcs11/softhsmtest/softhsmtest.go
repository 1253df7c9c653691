// Package softhsmtest makes SoftHSM2 tokens for tests: a private token directory
// and configuration, so tests never touch the machine's tokens. softhsm2 comes from
// Debian's package (scripts/install-test-deps installs it).
package softhsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Module is where Debian's softhsm2 package puts the PKCS#11 library.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// Token is an initialised SoftHSM2 token.
type Token struct {
	Label string
	PIN   string
	SOPIN string
	Conf  string // the softhsm2.conf to point SOFTHSM2_CONF at
}

// Env is the environment entry a process needs to see the token.
func (t *Token) Env() string { return "SOFTHSM2_CONF=" + t.Conf }

// Check reports what is missing for SoftHSM2 tests, or nil.
func Check() error {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return fmt.Errorf("softhsm2-util not found: run scripts/install-test-deps (installs Debian's softhsm2)")
	}
	if _, err := os.Stat(Module); err != nil {
		return fmt.Errorf("%s not found: run scripts/install-test-deps (installs Debian's softhsm2)", Module)
	}
	return nil
}

// Config writes a softhsm2.conf with its own token directory under dir and returns
// its path.
func Config(dir string) (string, error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", err
	}
	return conf, nil
}

// NewToken initialises a token labelled label in the configuration conf, with new
// random user and SO PINs.
func NewToken(conf, label string) (*Token, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	t := &Token{Label: label, PIN: randomPIN(), SOPIN: randomPIN(), Conf: conf}
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", t.PIN, "--so-pin", t.SOPIN)
	cmd.Env = append(os.Environ(), t.Env())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return t, nil
}

func randomPIN() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
