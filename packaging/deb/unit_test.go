package deb

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// unit is a systemd unit file read as systemd reads the subset varmenne's unit uses:
// sections, KEY=VALUE lines, "#" and ";" comments; a key may repeat, and an empty
// value resets what came before (CapabilityBoundingSet=).
type unit map[string][]string // "Service.User" → values in order

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: %q is not a KEY=VALUE line of a section (continuation lines are not used here)", path, n, line)
			}
			key := section + "." + strings.TrimSpace(k)
			if v = strings.TrimSpace(v); v == "" {
				u[key] = []string{} // an empty assignment resets the list
			} else {
				u[key] = append(u[key], v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one is the single value of key; the test fails if the key is missing or repeated.
func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	v, ok := u[key]
	if !ok || len(v) != 1 {
		t.Fatalf("the unit has %s %v; want exactly one value", key, v)
	}
	return v[0]
}

// readEnvFile reads an EnvironmentFile in the subset the packaged file promises:
// KEY=VALUE lines without quotes, backslashes or spaces around "=", and comment
// lines. A line outside it fails the test, since systemd could read it otherwise.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(line, "\"'\\") || strings.TrimSpace(k) != k || strings.TrimSpace(v) != v {
			t.Fatalf("%s:%d: %q is not a plain KEY=VALUE line", path, n+1, line)
		}
		if _, dup := env[k]; dup {
			t.Fatalf("%s:%d: %s is set twice", path, n+1, k)
		}
		env[k] = v
	}
	return env
}

// setEnvFile changes the values of keys in the environment file, as an operator
// edits it, keeping every other line; each key must be there already.
func setEnvFile(t *testing.T, path string, values map[string]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	done := map[string]bool{}
	for i, line := range lines {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			if v, set := values[k]; set {
				lines[i] = k + "=" + v
				done[k] = true
			}
		}
	}
	for k := range values {
		if !done[k] {
			t.Fatalf("%s has no %s line to set", path, k)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), fi.Mode()); err != nil {
		t.Fatal(err)
	}
}

func TestUnitFileReader(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/x.service"
	if err := os.WriteFile(p, []byte("[Service]\n# c\nUser=a\nCapabilityBoundingSet=CAP_X\nCapabilityBoundingSet=\nX=1\nX=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := readUnit(t, p)
	if got := fmt.Sprint(u["Service.User"], u["Service.CapabilityBoundingSet"], u["Service.X"]); got != "[a] [] [1 2]" {
		t.Errorf("read %s", got)
	}
}
