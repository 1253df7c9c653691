package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/store"
)

func TestCheckEABProfiles(t *testing.T) {
	org := &store.Organisation{OID: "1.2.246.10.1.10.0"}
	testOnly := &store.Organisation{OID: "1.2.246.10.2.10.0", TestOnly: true}
	tests := []struct {
		name     string
		org      *store.Organisation
		profiles []string
		want     string // "" accepted
	}{
		{"no profiles: every profile", org, nil, ""},
		{"test profiles", org, []string{"sote-server-test", "sote-system-signature-test"}, ""},
		{"an unknown profile", org, []string{"sote-client"}, `"sote-client" is not offered`},
		{"a profile twice", org, []string{"sote-server", "sote-server"}, "twice"},
		{"a production profile for a test-only organisation", testOnly, []string{"sote-server"}, "test profiles only"},
		{"a test profile for a test-only organisation", testOnly, []string{"sote-server-test"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkEABProfiles(tt.profiles, tt.org, "")
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("checkEABProfiles: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLoadProfiles(t *testing.T) {
	set, err := loadProfiles("", true)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range set.Profiles {
		if wild := strings.HasPrefix(name, "sote-server"); p.AllowWildcards != wild {
			t.Errorf("--allow-wildcards: profile %s allows wildcards %v, want %v", name, p.AllowWildcards, wild)
		}
	}
	file := filepath.Join(t.TempDir(), "varmenne.json")
	if err := os.WriteFile(file, []byte(`{"profiles": {"x": {"kind": "server", "descripton": "typo"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadProfiles(file, false); err == nil || !strings.Contains(err.Error(), `unknown key "descripton"`) {
		t.Fatalf("a typo in the file: %v, want the key named", err)
	}
}
