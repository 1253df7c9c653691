package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// startServe runs serve on data in this process until it prints its directory;
// the returned function stops it and returns its error.
func startServe(t *testing.T, data string, extra ...string) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	args := append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--ops-listen", "", "--public-listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--dev-key-type", "ecdsa-p256", "--log-format", "text"}, extra...)
	go func() {
		done <- run(ctx, args, pw, &stderr)
		pw.Close()
	}()
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ACME directory: ") {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case err := <-done:
		cancel()
		t.Fatalf("serve returned %v before it started; stderr: %s", err, stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve did not start in 30 s; stderr: %s", stderr.String())
	}
	var once bool
	stop = func() error {
		if once {
			return nil
		}
		once = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not stop in 20 s")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return stop
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestFirstStartUnderUmask022 is the review's finding: under the usual umask 022,
// in a data directory that already existed with mode 0755, the first start made
// the database 0644, and any local user could read an unbound EAB key from it.
func TestFirstStartUnderUmask022(t *testing.T) {
	isolate(t)
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	data := filepath.Join(t.TempDir(), "varmenne-data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	stop := startServe(t, data)

	t.Run("while serve runs, the directory is 0700 and every secret 0600", func(t *testing.T) {
		if m := mode(t, data); m != 0o700 {
			t.Errorf("%s: mode %04o, want 0700", data, m)
		}
		secrets := []string{"varmenne.db", "varmenne.db-wal", "varmenne.db-shm", "eab-secret.key", "operator.token"}
		keys, _ := filepath.Glob(filepath.Join(data, "pki", "*.key"))
		if len(keys) < 4 {
			t.Fatalf("pki holds %d key files, want the development PKI's", len(keys))
		}
		for _, k := range keys {
			secrets = append(secrets, strings.TrimPrefix(k, data+"/"))
		}
		for _, f := range secrets {
			if m := mode(t, filepath.Join(data, f)); m != 0o600 {
				t.Errorf("%s: mode %04o, want 0600", f, m)
			}
		}
	})
	t.Run("the database files hold no HMAC key in clear", func(t *testing.T) {
		if err, _, _ := runCmd(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example"); err != nil {
			t.Fatal(err)
		}
		err, out, _ := runCmd(t, "eab", "create", "--data", data, "--org", testOID, "--json")
		if err != nil {
			t.Fatalf("eab create: %v", err)
		}
		var k struct {
			KID     string `json:"kid"`
			HMACKey string `json:"hmac_key"`
		}
		if err := json.Unmarshal([]byte(out), &k); err != nil {
			t.Fatalf("eab create printed %q: %v", out, err)
		}
		key, err := base64.RawURLEncoding.DecodeString(k.HMACKey)
		if err != nil || len(key) < 16 {
			t.Fatalf("hmac_key %q: %v", k.HMACKey, err)
		}
		for _, f := range []string{"varmenne.db", "varmenne.db-wal"} {
			b, err := os.ReadFile(filepath.Join(data, f))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, key) || bytes.Contains(b, []byte(k.HMACKey)) {
				t.Errorf("%s holds the HMAC key of %s in clear", f, k.KID)
			}
		}
	})
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Run("and it starts again on what it made", func(t *testing.T) {
		if err := startServe(t, data)(); err != nil {
			t.Fatalf("second start: %v", err)
		}
	})
}

// TestStartRefusesAnExposedStore: serve and the operator commands refuse a data
// directory, or a secret in it, that group or others may use, with the fix.
func TestStartRefusesAnExposedStore(t *testing.T) {
	isolate(t)
	tests := []struct {
		name   string
		path   string // in the data directory; made if missing
		mode   os.FileMode
		extra  func(data string) []string
		wantIs string // what the message says of it
	}{
		{"a 0644 database", "varmenne.db", 0o644, nil, "is readable by group or others (mode 0644); fix with: chmod 600 "},
		{"a 0644 write-ahead log", "varmenne.db-wal", 0o644, nil, "is readable by group or others (mode 0644); fix with: chmod 600 "},
		{"a 0640 EAB secret", "eab-secret.key", 0o640, nil, "is readable by group or others (mode 0640); fix with: chmod 600 "},
		{"a 0644 operator token", "operator.token", 0o644, nil, "is readable by group or others (mode 0644); fix with: chmod 600 "},
		{"a 0644 key in pki", "pki/root.key", 0o644, nil, "is readable by group or others (mode 0644); fix with: chmod 600 "},
		{"a 0755 data directory", ".", 0o755, nil, "is readable by group or others (mode 0755); fix with: chmod 700 "},
		{"a 0711 data directory", ".", 0o711, nil, "is searchable by group or others (mode 0711); fix with: chmod 700 "},
		{"a 0604 --eab-secret-file", "../shared/eab.key", 0o604, func(data string) []string {
			return []string{"--eab-secret-file", filepath.Join(data, "../shared/eab.key")}
		}, "is readable by group or others (mode 0604); fix with: chmod 600 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := newData(t)
			path := filepath.Clean(filepath.Join(data, tt.path))
			var extra []string
			if tt.extra != nil {
				extra = tt.extra(data)
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(data, eabSecretFile), path); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Stat(path); os.IsNotExist(err) {
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte("secret"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(path, 0o700) // t.TempDir's cleanup needs to enter it
			for _, cmd := range [][]string{
				append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--ops-listen", ""}, extra...),
				append([]string{"org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example"}, extra...),
				append([]string{"audit", "verify", "--data", data}, extra...),
			} {
				done := make(chan error, 1)
				var stdout syncBuffer
				go func() { done <- run(context.Background(), cmd, &stdout, io.Discard) }()
				var err error
				select {
				case err = <-done:
				case <-time.After(20 * time.Second):
					t.Fatalf("%s started instead of refusing", cmd[0])
				}
				name := strings.Join(cmd[:2], " ")
				if cmd[0] == "serve" {
					name = "serve"
				}
				wantOneLineError(t, err, name+": "+path+" "+tt.wantIs+path)
				if stdout.String() != "" {
					t.Errorf("%s printed %q before refusing", name, stdout.String())
				}
			}
		})
	}
}

// TestEABSecretFile: the key file that unseals the EAB keys is the database's
// own; a missing or another one is refused with what to do.
func TestEABSecretFile(t *testing.T) {
	isolate(t)
	orgAdd := func(data string, extra ...string) error {
		err, _, _ := runCmd(t, append([]string{"org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example"}, extra...)...)
		return err
	}
	t.Run("another key file is refused", func(t *testing.T) {
		data := newData(t)
		other := filepath.Join(t.TempDir(), "other.key")
		if _, err := store.CreateEABSecretFile(other); err != nil {
			t.Fatal(err)
		}
		wantOneLineError(t, orgAdd(data, "--eab-secret-file", other), "org add: the EAB secret in "+other, "is not the one", "--eab-secret-file")
	})
	t.Run("an operator command without the key file is refused", func(t *testing.T) {
		data := newData(t)
		os.Remove(filepath.Join(data, eabSecretFile))
		wantOneLineError(t, orgAdd(data), "org add: no EAB secret: "+filepath.Join(data, eabSecretFile)+" is missing", "--eab-secret-file")
		if _, err := os.Stat(filepath.Join(data, eabSecretFile)); !os.IsNotExist(err) {
			t.Errorf("an operator command made a key file: %v", err)
		}
	})
	t.Run("a start without the key file of an existing database makes none", func(t *testing.T) {
		data := newData(t)
		os.Remove(filepath.Join(data, eabSecretFile))
		err, _, _ := runCmd(t, "operator", "bootstrap", "--data", data)
		wantOneLineError(t, err, "operator bootstrap: "+filepath.Join(data, eabSecretFile)+" was missing", "restore that key file")
		if _, err := os.Stat(filepath.Join(data, eabSecretFile)); !os.IsNotExist(err) {
			t.Errorf("the refused start left a key file: %v", err)
		}
	})
	t.Run("an --operator-token-file group may read is refused", func(t *testing.T) {
		data := newData(t)
		token := filepath.Join(t.TempDir(), "other.token")
		b, err := os.ReadFile(filepath.Join(data, operatorTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(token, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(token, 0o640); err != nil {
			t.Fatal(err)
		}
		wantOneLineError(t, orgAdd(data, "--operator-token-file", token), "org add: "+token+" is readable by group or others (mode 0640); fix with: chmod 600 "+token)
	})
	t.Run("VARMENNE_EAB_SECRET_FILE names a key file outside the data directory", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		shared := filepath.Join(t.TempDir(), "eab-secret.key")
		t.Setenv("VARMENNE_EAB_SECRET_FILE", shared)
		if err, _, _ := runCmd(t, "operator", "bootstrap", "--data", data); err != nil {
			t.Fatal(err)
		}
		if m := mode(t, shared); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", shared, m)
		}
		if _, err := os.Stat(filepath.Join(data, eabSecretFile)); !os.IsNotExist(err) {
			t.Errorf("a key file was made in the data directory besides: %v", err)
		}
		if err := orgAdd(data); err != nil {
			t.Fatalf("org add with the same variable: %v", err)
		}
	})
}
