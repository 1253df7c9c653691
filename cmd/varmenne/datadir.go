package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/varmenne/varmenne/internal/owneronly"
)

// The data directory holds secrets: the SQLite database (organisations, accounts,
// operator token hashes, sealed EAB keys), the EAB secret that unseals them, the
// first administrator's token and the file keys of pki/. It is its owner's only
// (0700) and so is every secret in it (0600): made so whatever the umask, and
// checked at every start, because a mode changed since, or an old directory, must
// not go unnoticed.

// makeDataDir makes the data directory 0700. An existing empty directory, which
// this start makes into the store, is made 0700 too; an existing directory with
// anything in it keeps its mode, for checkDataDir to judge (it may be a wrong
// --data that is not ours to change).
func makeDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the data directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cannot read the data directory: %w", err)
	}
	if len(entries) == 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("cannot make the data directory %s its owner's only: %w", dir, err)
		}
	}
	return nil
}

// secretFiles are the data directory's files that hold secrets (besides pki's
// keys, *.key): the SQLite database with its journal files, the first
// administrator's token, the EAB secret, the audit key and the audit anchors.
var secretFiles = []string{"varmenne.db", "varmenne.db-wal", "varmenne.db-shm", "varmenne.db-journal", operatorTokenFile, eabSecretFile,
	auditKeyFile, auditAnchorsFile}

// checkDataDir refuses a data directory, or a secret in it or at extra (a key file
// given by flag), that group or others may use, with the chmod that fixes it. A
// data directory that does not exist is nothing to check (an operator command on
// PostgreSQL may run without one).
func checkDataDir(dir string, extra ...string) error {
	paths := []string{dir}
	for _, f := range secretFiles {
		paths = append(paths, filepath.Join(dir, f))
	}
	keys, err := filepath.Glob(filepath.Join(dir, "pki", "*.key"))
	if err != nil {
		return err
	}
	paths = append(paths, keys...)
	for _, p := range extra {
		if p != "" && !containsPath(paths, p) {
			paths = append(paths, p)
		}
	}
	err = owneronly.Check(paths...)
	if err != nil && !errors.As(err, new(*owneronly.Error)) {
		return fmt.Errorf("checking the modes of the data directory: %w", err)
	}
	return err
}

func containsPath(paths []string, p string) bool {
	for _, q := range paths {
		if filepath.Clean(q) == filepath.Clean(p) {
			return true
		}
	}
	return false
}
