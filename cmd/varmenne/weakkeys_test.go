package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/policy/keys"
)

// TestServeRefusesBadWeakKeyFiles: a --weak-keys file that is missing or malformed,
// given as a flag or as VARMENNE_WEAK_KEYS, stops the start with one line naming the
// file and the line, before anything is made.
func TestServeRefusesBadWeakKeyFiles(t *testing.T) {
	isolate(t)
	good := writeTemp(t, "# list\n0123456789abcdef0123\n")
	bad := writeTemp(t, "# list\n0123456789abcdef0123\n0123456789ABCDEF0123\n")
	missing := filepath.Join(t.TempDir(), "blacklist.RSA-2048")
	tests := []struct {
		name  string
		flags []string
		env   string
		wants []string
	}{
		{"a malformed file", []string{"--weak-keys", good, "--weak-keys", bad}, "", []string{"--weak-keys", bad + " line 3", "upper case"}},
		{"a missing file", []string{"--weak-keys", missing}, "", []string{"--weak-keys", missing, "cannot be read"}},
		{"a malformed file from the environment", nil, good + "," + bad, []string{"--weak-keys", bad + " line 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("VARMENNE_WEAK_KEYS", tt.env)
			}
			serveRefuses(t, tt.flags, tt.wants...)
		})
	}
}

// TestServeLogsWeakKeys: the start says how many entries each file gave; without a
// file it warns once that Debian's weak keys are not checked and where the lists are.
func TestServeLogsWeakKeys(t *testing.T) {
	first := writeTemp(t, "# RSA-2048\n0123456789abcdef0123\n00000000000000000001\n")
	second := writeTemp(t, "# RSA-4096\nffffffffffffffffffff\n")
	weak, err := keys.ReadWeakKeys(first, second)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("two files", func(t *testing.T) {
		var out syncBuffer
		logWeakKeys(slog.New(slog.NewTextHandler(&out, nil)), weak)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("%d log lines, want one per file:\n%s", len(lines), out.String())
		}
		for i, want := range []string{"file=" + first + " entries=2", "file=" + second + " entries=1"} {
			if !strings.Contains(lines[i], "level=INFO") || !strings.Contains(lines[i], want) {
				t.Errorf("line %q does not say %q", lines[i], want)
			}
		}
	})
	t.Run("no file", func(t *testing.T) {
		var out syncBuffer
		logWeakKeys(slog.New(slog.NewTextHandler(&out, nil)), nil)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 1 {
			t.Fatalf("%d log lines, want one warning:\n%s", len(lines), out.String())
		}
		for _, want := range []string{"level=WARN", "CVE-2008-0166", "not checked", "openssl-blacklist", "blacklist.RSA-2048", "github.com/CVE-2008-0166/blocklists", "RSA-3072"} {
			if !strings.Contains(lines[0], want) {
				t.Errorf("warning %q does not say %q", lines[0], want)
			}
		}
	})
}
