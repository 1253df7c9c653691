// Package keyfile writes the secret key files varmenne keeps outside its database
// (the EAB secret, the audit key): once, whole, durably and readable by their
// owner only. What a file holds and how it is read is its caller's.
package keyfile

import (
	"os"
	"path/filepath"
)

// Create writes text to path, which must not exist (else an error satisfying
// errors.Is(err, fs.ErrExist)), with mode 0600 whatever the umask, and durably:
// a key that a crash lost after the database used it would leave records that
// nothing opens or checks. The file appears whole or not at all (written beside,
// then linked), so a second process starting at once reads either nothing or the
// whole key.
func Create(path string, text []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	// CreateTemp makes it 0600; Chmod states it whatever the umask did.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// A link, unlike a rename, never replaces an existing file.
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
