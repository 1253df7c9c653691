package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/audit"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/store"
)

const testOID = "1.2.246.10.12345678.10.0"

// isolate removes every VARMENNE_ variable for the test, so the caller's environment
// cannot change what a command does. Tests using it cannot run in parallel.
func isolate(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "VARMENNE_") {
			t.Setenv(k, "") // restores the value after the test
			os.Unsetenv(k)
		}
	}
}

// runCmd runs the command line and returns its error and outputs.
func runCmd(t *testing.T, args ...string) (err error, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return err, out.String(), errOut.String()
}

// newData makes a data directory with a database, as a first serve would.
func newData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := new(dbFlags).open(context.Background(), dir, creating)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer st.Close()
	// As the first start does: the first administrator, whose token the operator
	// commands use.
	set, err := loadProfiles("", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrap(context.Background(), dir, admin.New(adminServiceConfig(set, true), st, audit.New(st, nil), nil)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openData opens the data directory's database for checks.
func openData(t *testing.T, dir string) *store.SQL {
	t.Helper()
	st, err := new(dbFlags).open(context.Background(), dir, existing)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// wantOneLineError fails unless err is one line holding every one of wants.
func wantOneLineError(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", wants)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
}

func TestRunCommands(t *testing.T) {
	isolate(t)
	tests := []struct {
		name  string
		args  []string
		wants []string // in the error; nil means success
	}{
		{"no command is an error", nil, []string{"no command", "varmenne serve"}},
		{"an unknown command names the commands", []string{"frobnicate"}, []string{`"frobnicate"`, "serve", "org add", "eab create"}},
		{"org without a subcommand names add", []string{"org"}, []string{"add"}},
		{"org with an unknown subcommand names add", []string{"org", "remove"}, []string{"add"}},
		{"eab without a subcommand names create", []string{"eab"}, []string{"create"}},
		{"help succeeds", []string{"help"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, stdout, stderr := runCmd(t, tt.args...)
			if tt.wants == nil {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if !strings.Contains(stdout, "varmenne serve") {
					t.Errorf("stdout %q lacks the usage", stdout)
				}
				return
			}
			wantOneLineError(t, err, tt.wants...)
			if len(tt.args) == 0 && !strings.Contains(stderr, "Usage:") {
				t.Errorf("stderr %q lacks the usage", stderr)
			}
		})
	}
}

func TestCommandHelpGoesToStderr(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"serve", "-h"}, {"org", "add", "-h"}, {"eab", "create", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			err, _, stderr := runCmd(t, args...)
			if !errors.Is(err, flag.ErrHelp) {
				t.Errorf("error %v, want flag.ErrHelp", err)
			}
			if !strings.Contains(stderr, "-data") {
				t.Errorf("stderr %q lacks the flags", stderr)
			}
		})
	}
}

func TestOrgAddRefusesBadFlags(t *testing.T) {
	isolate(t)
	data := newData(t)
	base := []string{"org", "add", "--data", data}
	tests := []struct {
		name  string
		flags []string
		wants []string
	}{
		{"missing --oid", []string{"--name", "Apteekki Oy", "--domain", "apteekki.example"}, []string{"--oid", "required", "1.2.246."}},
		{"an --oid with letters", []string{"--oid", "1.2.x.4", "--name", "Apteekki Oy", "--domain", "apteekki.example"}, []string{`"1.2.x.4"`, "not an OID"}},
		{"an --oid of one arc", []string{"--oid", "12345678", "--name", "Apteekki Oy", "--domain", "apteekki.example"}, []string{"not an OID"}},
		{"an --oid ending in a dot", []string{"--oid", "1.2.246.", "--name", "Apteekki Oy", "--domain", "apteekki.example"}, []string{"not an OID"}},
		{"missing --name", []string{"--oid", testOID, "--domain", "apteekki.example"}, []string{"--name", "required"}},
		{"a blank --name", []string{"--oid", testOID, "--name", "  ", "--domain", "apteekki.example"}, []string{"--name", "required"}},
		{"no --domain", []string{"--oid", testOID, "--name", "Apteekki Oy"}, []string{"--domain"}},
		{"a --domain with a space", []string{"--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki .example"}, []string{"domain", "not a valid domain"}},
		{"a wildcard --domain", []string{"--oid", testOID, "--name", "Apteekki Oy", "--domain", "*.apteekki.example"}, []string{"domain", "not a valid domain"}},
		{"a single-label --domain", []string{"--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki"}, []string{"domain", "not a valid domain"}},
		{"an IP address as --domain", []string{"--oid", testOID, "--name", "Apteekki Oy", "--domain", "192.0.2.1"}, []string{"domain", "not a valid domain"}},
		{"one bad --domain among good ones", []string{"--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example", "--domain", "bad_name.example"}, []string{"domain", `"bad_name.example"`}},
		{"an unknown flag", []string{"--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example", "--colour", "red"}, []string{"colour"}},
		{"a stray argument", []string{"--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example", "extra"}, []string{`"extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, stdout, _ := runCmd(t, append(slices.Clone(base), tt.flags...)...)
			wantOneLineError(t, err, tt.wants...)
			if stdout != "" {
				t.Errorf("stdout %q after an error", stdout)
			}
		})
	}
	if _, err := openData(t, data).GetOrganisation(context.Background(), testOID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an organisation was stored by a refused command (lookup: %v)", err)
	}
}

func TestOrgAdd(t *testing.T) {
	isolate(t)
	ctx := context.Background()

	t.Run("before the database exists it says to start serve once", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "fresh")
		err, _, _ := runCmd(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example")
		wantOneLineError(t, err, "varmenne serve", "once", data)
		if _, serr := os.Stat(data); !os.IsNotExist(serr) {
			t.Errorf("org add created %s (stat: %v)", data, serr)
		}
	})

	data := newData(t)
	t.Run("stores the organisation with normalised domains", func(t *testing.T) {
		err, stdout, _ := runCmd(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy",
			"--domain", "Apteekki.Example", "--domain", "palvelu.example,toinen.example")
		if err != nil {
			t.Fatalf("org add: %v", err)
		}
		if !strings.Contains(stdout, testOID) {
			t.Errorf("stdout %q does not name the organisation", stdout)
		}
		o, err := openData(t, data).GetOrganisation(ctx, testOID)
		if err != nil {
			t.Fatal(err)
		}
		if o.Name != "Apteekki Oy" || o.LongName != "Apteekki Oy" {
			t.Errorf("name %q long name %q, want the name for both", o.Name, o.LongName)
		}
		if want := []string{"apteekki.example", "palvelu.example", "toinen.example"}; !slices.Equal(o.Domains, want) {
			t.Errorf("domains %q, want %q", o.Domains, want)
		}
	})
	t.Run("a duplicate organisation is an error", func(t *testing.T) {
		err, _, _ := runCmd(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Toinen Oy", "--domain", "toinen.example")
		wantOneLineError(t, err, testOID, "already exists")
	})
	t.Run("a long name is kept", func(t *testing.T) {
		const oid = "1.2.246.10.87654321.10.0"
		err, _, _ := runCmd(t, "org", "add", "--data", data, "--oid", oid, "--name", "TK", "--long-name", "Terveyskeskus Oy", "--domain", "tk.example")
		if err != nil {
			t.Fatal(err)
		}
		if o, err := openData(t, data).GetOrganisation(ctx, oid); err != nil || o.LongName != "Terveyskeskus Oy" {
			t.Errorf("organisation %+v, %v; want long name Terveyskeskus Oy", o, err)
		}
	})
}

func TestEABCreate(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	data := newData(t)
	if err, _, _ := runCmd(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example"); err != nil {
		t.Fatal(err)
	}

	refusals := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"missing --org", []string{"eab", "create", "--data", data}, []string{"--org", "varmenne org add"}},
		{"an unknown organisation says how to add it", []string{"eab", "create", "--data", data, "--org", "1.2.246.10.99999999.10.0"}, []string{"1.2.246.10.99999999.10.0", "varmenne org add"}},
		{"a --domain outside the organisation", []string{"eab", "create", "--data", data, "--org", testOID, "--domain", "muu.example"}, []string{"domain", "muu.example", "apteekki.example"}},
		{"a --domain that merely ends like the organisation's", []string{"eab", "create", "--data", data, "--org", testOID, "--domain", "notapteekki.example"}, []string{"domain", "notapteekki.example"}},
		{"a wildcard --domain", []string{"eab", "create", "--data", data, "--org", testOID, "--domain", "*.apteekki.example"}, []string{"domain", "*.apteekki.example"}},
		{"a --domain with an empty label", []string{"eab", "create", "--data", data, "--org", testOID, "--domain", "a..apteekki.example"}, []string{"domain", "a..apteekki.example"}},
		{"a --domain with a leading dot", []string{"eab", "create", "--data", data, "--org", testOID, "--domain", ".apteekki.example"}, []string{"domain", ".apteekki.example"}},
		{"before the database exists", []string{"eab", "create", "--data", filepath.Join(t.TempDir(), "none"), "--org", testOID}, []string{"varmenne serve", "once"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name+" is an error", func(t *testing.T) {
			err, stdout, _ := runCmd(t, tt.args...)
			wantOneLineError(t, err, tt.wants...)
			if stdout != "" {
				t.Errorf("stdout %q after an error: no key may be shown", stdout)
			}
		})
	}

	t.Run("--json prints one object with a kid and a 32-byte key that is stored approved", func(t *testing.T) {
		err, stdout, _ := runCmd(t, "eab", "create", "--data", data, "--org", testOID, "--domain", "WWW.apteekki.example", "--json")
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		var got map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("stdout %q is not JSON: %v", stdout, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Errorf("stdout %q holds more than one JSON object", stdout)
		}
		kid, _ := got["kid"].(string)
		hmacKey, _ := got["hmac_key"].(string)
		if kid == "" || hmacKey == "" || len(got) != 2 {
			t.Fatalf("object %v, want exactly non-empty kid and hmac_key strings", got)
		}
		raw, err := base64.RawURLEncoding.DecodeString(hmacKey)
		if err != nil || len(raw) != 32 {
			t.Fatalf("hmac_key %q decodes to %d bytes (%v), want 32 bytes of base64url", hmacKey, len(raw), err)
		}
		k, err := openData(t, data).GetEAB(ctx, kid)
		if err != nil {
			t.Fatal(err)
		}
		if k.Status != store.EABApproved || k.OrgOID != testOID || !bytes.Equal(k.HMACKey, raw) || !slices.Equal(k.Domains, []string{"www.apteekki.example"}) {
			t.Errorf("stored key %+v, want approved for %s with the printed HMAC key and domain www.apteekki.example", k, testOID)
		}
	})
	t.Run("the text output shows the kid and key", func(t *testing.T) {
		err, stdout, _ := runCmd(t, "eab", "create", "--data", data, "--org", testOID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout, "kid:") || !strings.Contains(stdout, "hmac key:") {
			t.Errorf("stdout %q lacks the kid or the key", stdout)
		}
	})
}

func TestDataDirectoryFromEnvironment(t *testing.T) {
	isolate(t)
	envData, flagData := newData(t), newData(t)
	missing := filepath.Join(t.TempDir(), "missing")
	t.Setenv("VARMENNE_DATA", envData)

	add := func(oid string, extra ...string) error {
		err, _, _ := runCmd(t, append([]string{"org", "add", "--oid", oid, "--name", "Apteekki Oy", "--domain", "apteekki.example"}, extra...)...)
		return err
	}
	has := func(dir, oid string) bool {
		_, err := openData(t, dir).GetOrganisation(context.Background(), oid)
		return err == nil
	}

	t.Run("VARMENNE_DATA is used without --data", func(t *testing.T) {
		if err := add("1.2.3.1"); err != nil {
			t.Fatal(err)
		}
		if !has(envData, "1.2.3.1") {
			t.Error("the organisation is not in $VARMENNE_DATA")
		}
	})
	t.Run("--data beats VARMENNE_DATA", func(t *testing.T) {
		if err := add("1.2.3.2", "--data", flagData); err != nil {
			t.Fatal(err)
		}
		if !has(flagData, "1.2.3.2") || has(envData, "1.2.3.2") {
			t.Error("the organisation is not in --data alone")
		}
	})
	t.Run("a missing --data is not replaced by VARMENNE_DATA", func(t *testing.T) {
		wantOneLineError(t, add("1.2.3.3", "--data", missing), missing)
	})
	t.Run("other flags come from the environment too", func(t *testing.T) {
		t.Setenv("VARMENNE_ORG", "1.2.3.1")
		t.Setenv("VARMENNE_JSON", "true")
		err, stdout, _ := runCmd(t, "eab", "create")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stdout, "{") {
			t.Errorf("stdout %q, want JSON from VARMENNE_JSON", stdout)
		}
	})
	t.Run("a bad value in the environment names the variable", func(t *testing.T) {
		t.Setenv("VARMENNE_JSON", "maybe")
		err, _, _ := runCmd(t, "eab", "create", "--org", "1.2.3.1")
		wantOneLineError(t, err, "VARMENNE_JSON")
	})
}
