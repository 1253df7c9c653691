package deb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The package's files as dpkg-deb -c lists them: type and mode, owner/group. The
// directories nfpm adds on the way (/usr, /usr/bin, …) are root's, 0755.
var wantContents = []struct {
	path, mode, owner string
}{
	{BinaryPath, "-rwxr-xr-x", "root/root"},
	{UnitPath, "-rw-r--r--", "root/root"},
	{ConfigDir + "/", "drwxr-x---", "root/varmenne"},                 // the service reads it, others do not
	{EnvFilePath, "-rw-r-----", "root/varmenne"},                     // may hold a database password
	{StateDir + "/", "drwx------", "varmenne/varmenne"},              // the CA's database, keys and audit log
	{DocDir + "/install.md", "-rw-r--r--", "root/root"},              // docs/install.md
	{DropInExample, "-rw-r--r--", "root/root"},                       // the ports drop-in
	{"/usr/lib/systemd/system/", "drwxr-xr-x", "root/root"},          // an implicit directory
	{"/usr/share/doc/varmenne/examples/", "drwxr-xr-x", "root/root"}, // likewise
}

var built struct {
	once   sync.Once
	dir    string
	binary string
	err    error
	out    []byte
}

// binary builds cmd/varmenne once for the package's tests, as make build does.
func binary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "varmenne-deb-test")
		if built.err != nil {
			return
		}
		built.binary = filepath.Join(built.dir, "varmenne")
		built.out, built.err = exec.Command("go", "build", "-o", built.binary, "../../cmd/varmenne").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build ./cmd/varmenne: %v\n%s", built.err, built.out)
	}
	return built.binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildDeb builds the package of the test binary with the given version ("": the
// commit's), once per version for the package's tests.
func buildDeb(t *testing.T, version string) (string, Package) {
	t.Helper()
	bin := binary(t)
	debs.Lock()
	defer debs.Unlock()
	if d, ok := debs.built[version]; ok {
		return d.path, d.pkg
	}
	out := filepath.Join(built.dir, "varmenne-"+strconv.Itoa(len(debs.built))+".deb")
	pkg, err := Build(Options{Repo: "../..", Binary: bin, Version: version, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if debs.built == nil {
		debs.built = map[string]builtDeb{}
	}
	debs.built[version] = builtDeb{out, pkg}
	return out, pkg
}

type builtDeb struct {
	path string
	pkg  Package
}

var debs struct {
	sync.Mutex
	built map[string]builtDeb
}

// need fails the test when a program the tests run is missing.
func need(t *testing.T, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed: run ./scripts/install-test-deps (make test does)", p)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPackage builds the package and reads it back with dpkg-deb: its control
// fields, its maintainer scripts and conffiles, and each file's type, mode and
// owner.
func TestPackage(t *testing.T) {
	need(t, "dpkg-deb")
	path, pkg := buildDeb(t, "")
	if !regexp.MustCompile(`^0\.0\.0~git\d{14}\.[0-9a-f]{12}(\+modified)?$`).MatchString(pkg.Version) {
		t.Errorf("version %q is not made from the commit (0.0.0~git<time>.<commit>)", pkg.Version)
	}

	t.Run("control", func(t *testing.T) {
		info := run(t, "dpkg-deb", "-I", path)
		for _, want := range []string{
			"Package: varmenne\n",
			"Version: " + pkg.Version + "\n",
			"Architecture: " + pkg.Arch + "\n",
			"Pre-Depends: passwd\n", // preinst runs useradd
		} {
			if !strings.Contains(info, want) {
				t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
			}
		}
		// The libc6 dependency is the newest glibc symbol version the binary uses.
		if !regexp.MustCompile(`(?m)^ Depends: libc6 \(>= 2\.\d+\)$`).MatchString(info) {
			t.Errorf("dpkg-deb -I has no libc6 (>= 2.N) dependency:\n%s", info)
		}
		for _, script := range []string{"preinst", "postinst", "prerm", "postrm"} {
			if !regexp.MustCompile(`(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+` + script + `\s+#!/bin/sh$`).MatchString(info) {
				t.Errorf("dpkg-deb -I shows no executable %s shell script:\n%s", script, info)
			}
		}
		if got := run(t, "dpkg-deb", "-f", path, "Package"); got != "varmenne\n" {
			t.Errorf("dpkg-deb -f Package: %q", got)
		}
		dir := t.TempDir()
		run(t, "dpkg-deb", "-e", path, dir)
		b, err := os.ReadFile(filepath.Join(dir, "conffiles"))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != EnvFilePath+"\n" {
			t.Errorf("conffiles = %q; want the environment file only (an upgrade keeps the operator's settings)", b)
		}
	})

	t.Run("files", func(t *testing.T) {
		listed := map[string][2]string{}
		for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", path)), "\n") {
			f := strings.Fields(line) // mode owner/group size date time ./path
			if len(f) < 6 {
				t.Fatalf("dpkg-deb -c line %q", line)
			}
			listed[strings.TrimPrefix(f[len(f)-1], ".")] = [2]string{f[0], f[1]}
		}
		for _, w := range wantContents {
			got, ok := listed[w.path]
			switch {
			case !ok:
				t.Errorf("%s is not in the package", w.path)
			case got != [2]string{w.mode, w.owner}:
				t.Errorf("%s is %s %s; want %s %s", w.path, got[0], got[1], w.mode, w.owner)
			}
		}
		for p, got := range listed {
			if strings.HasPrefix(got[1], "varmenne/") && p != StateDir+"/" {
				t.Errorf("%s belongs to the service user; only the state directory may", p)
			}
			if m := got[0]; m[5] == 'w' || m[8] == 'w' {
				t.Errorf("%s is %s: writable by group or others", p, m)
			}
		}
	})
}

// TestUnitVerifies runs systemd-analyze verify on the unit as the package installs
// it: the package unpacked into a root of its own (dpkg-deb -x), beside a copy of
// this machine's system units (the targets it refers to). verify exits 0 even for
// unknown keys or bad values, which it only prints, so its output must be empty too;
// the last row proves the check catches such a line.
func TestUnitVerifies(t *testing.T) {
	need(t, "dpkg-deb", "systemd-analyze")
	path, _ := buildDeb(t, "")
	dropIn, err := os.ReadFile("files/bind-low-ports.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		dropIn []byte // put in /etc/systemd/system/varmenne.service.d/
		edit   func(unit string) string
		ok     bool
	}{
		{name: "as shipped", ok: true},
		{name: "with the bind-low-ports drop-in", dropIn: dropIn, ok: true},
		{name: "a misspelt key is caught", edit: func(u string) string {
			return strings.Replace(u, "ProtectSystem=strict", "ProtectSytem=strict", 1)
		}},
		{name: "a drop-in's bad value is caught", dropIn: []byte("[Service]\nRestrictAddressFamilies=AF_BOGUS\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := systemRoot(t, path)
			if tc.edit != nil {
				p := filepath.Join(root, UnitPath)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(tc.edit(string(b))), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.dropIn != nil {
				d := filepath.Join(root, "etc/systemd/system/varmenne.service.d")
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "test.conf"), tc.dropIn, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command("systemd-analyze", "verify", "--root="+root, UnitPath).CombinedOutput()
			clean := err == nil && len(bytes.TrimSpace(out)) == 0
			if clean != tc.ok {
				t.Errorf("systemd-analyze verify: clean = %v (err %v), want %v:\n%s", clean, err, tc.ok, out)
			}
		})
	}
}

// systemRoot unpacks the package into a new directory with a copy of this
// machine's system units beside it.
func systemRoot(t *testing.T, deb string) string {
	t.Helper()
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	units := filepath.Join(root, "usr/lib/systemd/system")
	for _, dir := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Type().IsRegular() && e.Name() != "varmenne.service" {
				if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
					if err := os.WriteFile(filepath.Join(units, e.Name()), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(units, "multi-user.target")); err != nil {
		t.Fatal("this machine has no system units to verify against (multi-user.target): install systemd (scripts/install-test-deps)")
	}
	return root
}

// TestUnitHardening reads the shipped unit for the settings docs/install.md
// promises, a row per setting, and asks systemd-analyze security for its overall
// exposure.
func TestUnitHardening(t *testing.T) {
	u := readUnit(t, "files/varmenne.service")
	for _, tc := range []struct{ key, want string }{
		{"Service.User", User},
		{"Service.Group", User},
		{"Service.ExecStart", BinaryPath + " serve --data " + StateDir},
		{"Service.EnvironmentFile", EnvFilePath},
		{"Service.StateDirectory", strings.TrimPrefix(StateDir, "/var/lib/")},
		{"Service.StateDirectoryMode", "0700"}, // serve refuses a data directory open to others
		{"Service.UMask", "0077"},
		{"Service.NoNewPrivileges", "yes"},
		{"Service.ProtectSystem", "strict"},
		{"Service.ProtectHome", "yes"},
		{"Service.PrivateTmp", "yes"},
		{"Service.RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"Install.WantedBy", "multi-user.target"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := u.one(t, tc.key); got != tc.want {
				t.Errorf("%s=%s; want %s", tc.key, got, tc.want)
			}
		})
	}
	for _, key := range []string{"Service.CapabilityBoundingSet", "Service.AmbientCapabilities"} {
		if v, ok := u[key]; !ok || len(v) != 0 {
			t.Errorf("%s=%v; want it empty: no capability unless the bind-low-ports drop-in adds one", key, v)
		}
	}
	d := readUnit(t, "files/bind-low-ports.conf")
	for _, key := range []string{"Service.CapabilityBoundingSet", "Service.AmbientCapabilities"} {
		if got := d.one(t, key); got != "CAP_NET_BIND_SERVICE" {
			t.Errorf("the drop-in has %s=%s; want CAP_NET_BIND_SERVICE alone", key, got)
		}
	}

	need(t, "dpkg-deb", "systemd-analyze")
	path, _ := buildDeb(t, "")
	root := systemRoot(t, path)
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--root="+root, UnitPath).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for varmenne\.service: (\d+\.\d)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	// systemd rates 0 to 10; below 2 is its "OK", the best band short of a unit
	// that has no network at all.
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level >= 2 {
		t.Errorf("systemd-analyze security rates the unit's exposure %s; want below 2.0 (OK):\n%s", m[1], out)
	}
	t.Logf("systemd-analyze security: exposure %s", m[1])
}

// TestEnvFile checks the shipped /etc/varmenne/varmenne.env: every line is one
// systemd and the tests read alike, and every VARMENNE_ name in it, set or in a
// comment, is a flag of varmenne serve (flagenv ignores a name that is not, so a
// misspelt one would silently do nothing).
func TestEnvFile(t *testing.T) {
	env := readEnvFile(t, "files/varmenne.env")
	if env["VARMENNE_DATA"] != StateDir {
		t.Errorf("VARMENNE_DATA=%s; want %s, the unit's state directory, for the operator commands", env["VARMENNE_DATA"], StateDir)
	}
	cmd := exec.Command(binary(t), "serve", "-h")
	cmd.Env = []string{} // no VARMENNE_* of the test's environment
	out, _ := cmd.CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllSubmatch(out, -1) {
		flags["VARMENNE_"+strings.ToUpper(strings.ReplaceAll(string(m[1]), "-", "_"))] = true
	}
	if !flags["VARMENNE_LISTEN"] {
		t.Fatalf("varmenne serve -h lists no --listen:\n%s", out)
	}
	b, err := os.ReadFile("files/varmenne.env")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`(?m)^#?(VARMENNE_[A-Z0-9_]+)=`).FindAllSubmatch(b, -1)
	if len(names) < len(env) {
		t.Fatalf("found %d names, fewer than the %d set", len(names), len(env))
	}
	for _, m := range names {
		if !flags[string(m[1])] {
			t.Errorf("%s in varmenne.env is no flag of varmenne serve", m[1])
		}
	}
	if !slices.Contains([]string{"json", "text"}, env["VARMENNE_LOG_FORMAT"]) {
		t.Errorf("VARMENNE_LOG_FORMAT=%q", env["VARMENNE_LOG_FORMAT"])
	}
}
