package owneronly

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		paths []string
		want  string // "": no error
	}{
		{"0600 and 0400 files pass", []string{file("a", 0o600), file("b", 0o400)}, ""},
		{"a missing file is skipped", []string{filepath.Join(dir, "none")}, ""},
		{"a 0644 file", []string{file("c", 0o644)}, dir + "/c is readable by group or others (mode 0644); fix with: chmod 600 " + dir + "/c"},
		{"a 0620 file", []string{file("d", 0o620)}, dir + "/d is writable by group or others (mode 0620); fix with: chmod 600 " + dir + "/d"},
		{"a 0755 directory and two files", []string{sub, file("e", 0o640), file("f", 0o604)},
			sub + " (mode 0755), " + dir + "/e (mode 0640), " + dir + "/f (mode 0604) are open to group or others; fix with: chmod 700 " + sub + " && chmod 600 " + dir + "/e " + dir + "/f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.paths...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || err.Error() != tt.want {
				t.Fatalf("Check: %v\nwant %s", err, tt.want)
			}
		})
	}
}
