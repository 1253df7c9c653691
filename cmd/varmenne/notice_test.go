package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoticeFlags: serve's --smtp-* flags are checked before anything starts;
// the password file must be its owner's only, and the password is never shown.
func TestNoticeFlags(t *testing.T) {
	dir := t.TempDir()
	const password = "Salasana-1234"
	private := filepath.Join(dir, "private")
	open := filepath.Join(dir, "open")
	empty := filepath.Join(dir, "empty")
	for path, mode := range map[string]os.FileMode{private: 0o600, open: 0o644, empty: 0o600} {
		content := password + "\n"
		if path == empty {
			content = ""
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		args   []string
		detail string // "": accepted
	}{
		{"none: no notices", nil, ""},
		{"loopback in clear", []string{"--smtp-server", "127.0.0.1:2525", "--smtp-from", "varmenne@ca.example"}, ""},
		{"remote with STARTTLS and a private password file", []string{"--smtp-server", "mail.example.fi:587", "--smtp-starttls",
			"--smtp-from", "Varmenne <varmenne@ca.example>", "--smtp-username", "varmenne", "--smtp-password-file", private}, ""},
		{"remote in clear", []string{"--smtp-server", "mail.example.fi:25", "--smtp-from", "varmenne@ca.example"}, "give --smtp-starttls"},
		{"no sender", []string{"--smtp-server", "127.0.0.1:25"}, "--smtp-from is required"},
		{"sender without server", []string{"--smtp-from", "varmenne@ca.example"}, "need --smtp-server"},
		{"password file others may read", []string{"--smtp-server", "127.0.0.1:25", "--smtp-from", "varmenne@ca.example",
			"--smtp-username", "varmenne", "--smtp-password-file", open}, "chmod 600"},
		{"empty password file", []string{"--smtp-server", "127.0.0.1:25", "--smtp-from", "varmenne@ca.example",
			"--smtp-username", "varmenne", "--smtp-password-file", empty}, "is empty"},
		{"password without user", []string{"--smtp-server", "127.0.0.1:25", "--smtp-from", "varmenne@ca.example",
			"--smtp-password-file", private}, "give both or neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := addNoticeFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := f.validate()
			if (err == nil) != (tc.detail == "") || (err != nil && !strings.Contains(err.Error(), tc.detail)) {
				t.Fatalf("%v, want %q", err, tc.detail)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("the error shows the password: %v", err)
			}
			if tc.detail == "" && len(tc.args) > 0 && (f.mail == nil || (strings.Contains(strings.Join(tc.args, " "), "password") && f.mail.Password != password)) {
				t.Errorf("configuration %+v", f.mail)
			}
		})
	}
}
