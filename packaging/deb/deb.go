// Package deb builds varmenne's Debian package through nfpm's Go API: the binary,
// the hardened systemd unit, the default configuration in /etc/varmenne, the state
// directory /var/lib/varmenne, and the maintainer scripts that make the service
// user. The packaged files themselves are in files/ beside this package and
// docs/install.md says what each is for; this package only lays them out. It
// installs nothing.
package deb

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	nfpmdeb "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// The installed layout. The unit's ExecStart, User and StateDirectory repeat these
// (files/varmenne.service); the tests read both and compare.
const (
	Name        = "varmenne"
	User        = "varmenne" // system user and group the service runs as
	BinaryPath  = "/usr/bin/varmenne"
	UnitPath    = "/usr/lib/systemd/system/varmenne.service"
	ConfigDir   = "/etc/varmenne"
	EnvFilePath = "/etc/varmenne/varmenne.env"
	StateDir    = "/var/lib/varmenne"
	DocDir      = "/usr/share/doc/varmenne"
	// DropInExample is the drop-in that lets the service bind ports below 1024.
	DropInExample = DocDir + "/examples/bind-low-ports.conf"
)

// Options say what to package and where to write it.
type Options struct {
	// Repo is the repository checkout: packaging/deb/files and docs/install.md are
	// read from it.
	Repo string
	// Binary is the varmenne binary to package. Its ELF header gives the package's
	// architecture and its glibc symbols the libc6 dependency.
	Binary string
	// Version is the Debian version; empty: made from the commit the binary was built
	// from (its build info), 0.0.0~git<commit time>.<commit>[+modified].
	Version string
	// Out is the .deb file to write.
	Out string
}

// Package is what Build made.
type Package struct {
	Version, Arch string
}

// FileName is the package's conventional file name, varmenne_VERSION_ARCH.deb.
func (p Package) FileName() string { return Name + "_" + p.Version + "_" + p.Arch + ".deb" }

// Build writes the package to o.Out.
func Build(o Options) (Package, error) {
	if o.Binary == "" || o.Out == "" {
		return Package{}, errors.New("deb: the binary and the output file are required")
	}
	arch, libc, err := binaryNeeds(o.Binary)
	if err != nil {
		return Package{}, err
	}
	version, mtime, err := versionOf(o.Binary, o.Repo, o.Version)
	if err != nil {
		return Package{}, err
	}
	src := func(name string) string { return filepath.Join(o.Repo, "packaging", "deb", "files", name) }
	info := &nfpm.Info{
		Name:          Name,
		Arch:          arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none", // the version is Debian's already, not semver
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "varmenne <varmenne@varmenne.example>",
		Description: "ACME server for SOTE service certificates\n" +
			"varmenne issues the Finnish social- and healthcare (SOTE) service certificates\n" +
			"over ACME (RFC 8555) to organisations in THL's register, through an\n" +
			"operator-approved external account binding, with issuer keys in an HSM.\n" +
			"This package runs it as the systemd service varmenne.",
		Homepage: "https://varmenne.example/",
		MTime:    mtime,
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				file(o.Binary, BinaryPath, files.TypeFile, "root", "root", 0o755),
				file(src("varmenne.service"), UnitPath, files.TypeFile, "root", "root", 0o644),
				dir(ConfigDir, "root", User, 0o750),
				file(src("varmenne.env"), EnvFilePath, files.TypeConfigNoReplace, "root", User, 0o640),
				dir(StateDir, User, User, 0o700),
				file(filepath.Join(o.Repo, "docs", "install.md"), DocDir+"/install.md", files.TypeFile, "root", "root", 0o644),
				file(src("bind-low-ports.conf"), DropInExample, files.TypeFile, "root", "root", 0o644),
			},
			Scripts: nfpm.Scripts{
				PreInstall:  src("preinst"),
				PostInstall: src("postinst"),
				PreRemove:   src("prerm"),
				PostRemove:  src("postrm"),
			},
			// preinst makes the user with useradd and groupadd, before the files land.
			Deb: nfpm.Deb{Predepends: []string{"passwd"}},
		},
	}
	if libc != "" {
		info.Depends = []string{"libc6 (>= " + libc + ")"}
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return Package{}, fmt.Errorf("deb: %w", err)
	}
	f, err := os.Create(o.Out)
	if err != nil {
		return Package{}, fmt.Errorf("deb: %w", err)
	}
	if err := nfpmdeb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(o.Out)
		return Package{}, fmt.Errorf("deb: %w", err)
	}
	if err := f.Close(); err != nil {
		return Package{}, fmt.Errorf("deb: %w", err)
	}
	return Package{Version: version, Arch: arch}, nil
}

func file(src, dst, typ, owner, group string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, Type: typ,
		FileInfo: &files.ContentFileInfo{Owner: owner, Group: group, Mode: mode}}
}

func dir(dst, owner, group string, mode os.FileMode) *files.Content {
	return &files.Content{Destination: dst, Type: files.TypeDir,
		FileInfo: &files.ContentFileInfo{Owner: owner, Group: group, Mode: mode | os.ModeDir}}
}

// binaryNeeds reads the binary's Debian architecture and the newest glibc symbol
// version it links (e.g. "2.34"; "" for a static binary).
func binaryNeeds(path string) (arch, libc string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("deb: %s is not an ELF binary: %w", path, err)
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		arch = "amd64"
	case elf.EM_AARCH64:
		arch = "arm64"
	default:
		return "", "", fmt.Errorf("deb: %s is for %s; the package is made for amd64 and arm64", path, f.Machine)
	}
	syms, err := f.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return "", "", fmt.Errorf("deb: reading the symbols of %s: %w", path, err)
	}
	var newest []int
	for _, s := range syms {
		v, ok := strings.CutPrefix(s.Version, "GLIBC_")
		if !ok || s.Section != elf.SHN_UNDEF {
			continue
		}
		if n := parseDotted(v); n != nil && newer(n, newest) {
			newest, libc = n, v
		}
	}
	return arch, libc, nil
}

func parseDotted(v string) []int {
	var n []int
	for _, p := range strings.Split(v, ".") {
		i, err := strconv.Atoi(p)
		if err != nil {
			return nil
		}
		n = append(n, i)
	}
	return n
}

func newer(a, b []int) bool {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return i >= len(b) || a[i] > b[i]
		}
	}
	return false
}

// versionOf is the package version: the one given, or one made from the commit the
// binary was built from (its build info, or else the checkout's HEAD), so that a
// later commit makes a later version: 0.0.0~git<commit time>.<commit>[+modified].
// The package's file times are the commit's time, so one commit makes one package.
func versionOf(binary, repo, given string) (string, time.Time, error) {
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("deb: reading the build info of %s: %w", binary, err)
	}
	var c commit
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			c.rev = s.Value
		case "vcs.time":
			c.at, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			c.modified = s.Value == "true"
		}
	}
	if c.rev == "" || c.at.IsZero() {
		// Built with -buildvcs=false: the checkout's HEAD, which make deb built.
		c, err = headOf(repo)
		if err != nil && given == "" {
			return "", time.Time{}, fmt.Errorf("deb: %s names no commit and %w; give the version", binary, err)
		}
	}
	if c.at.IsZero() {
		c.at = time.Now()
	}
	if given != "" {
		return given, c.at.UTC(), nil
	}
	v := "0.0.0~git" + c.at.UTC().Format("20060102150405") + "." + c.rev[:min(12, len(c.rev))]
	if c.modified {
		v += "+modified"
	}
	return v, c.at.UTC(), nil
}

type commit struct {
	rev      string
	at       time.Time
	modified bool
}

// headOf is the commit checked out in repo, and whether tracked files differ from it.
func headOf(repo string) (commit, error) {
	out, err := exec.Command("git", "-C", repo, "log", "-1", "--format=%H %ct").Output()
	if err != nil {
		return commit{}, fmt.Errorf("git log in %s failed: %v", repo, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return commit{}, fmt.Errorf("git log in %s said %q", repo, out)
	}
	secs, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return commit{}, fmt.Errorf("git log in %s said %q", repo, out)
	}
	status, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return commit{}, fmt.Errorf("git status in %s failed: %v", repo, err)
	}
	return commit{rev: f[0], at: time.Unix(secs, 0), modified: len(strings.TrimSpace(string(status))) > 0}, nil
}
