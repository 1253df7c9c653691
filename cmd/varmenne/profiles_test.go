package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
