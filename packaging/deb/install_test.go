package deb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/varmenne/varmenne/test/logbuf"
)

// requiredAsRoot is the environment variable CI sets (.ci/run) so that a test that
// needs root fails there rather than being skipped.
const requiredAsRoot = "VARMENNE_TEST_AS_ROOT"

// asRoot skips the test when not run as root, or fails it where root is required.
func asRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(requiredAsRoot) == "required" {
		t.Fatalf("not root, and %s=required: %s", requiredAsRoot, why)
	}
	t.Skipf("needs root (%s); make test as root runs it, and CI does", why)
}

// TestInstallAndRun installs the package into this machine with dpkg, as an
// operator does, and runs the installed server as its unit would: it reads the
// installed unit for the user, the command, the environment file, the umask and
// the working directory, starts /usr/bin/varmenne with them through setpriv (no
// systemd runs here), and asks the ACME directory over HTTPS on loopback, trusting
// the roots file the server wrote into /var/lib/varmenne. Then it upgrades the
// package (the operator's settings and the CA's data stay, and the server runs on
// them again) and purges it (the data stays, as docs/install.md says).
func TestInstallAndRun(t *testing.T) {
	asRoot(t, "it installs a package with dpkg -i and makes a system user")
	need(t, "dpkg", "dpkg-deb", "setpriv", "systemd-analyze")
	if st := dpkgStatus(); st != "" && st != "not-installed" {
		t.Fatalf("the package %s is on this machine (%s); the test installs and purges its own and does not replace it: dpkg --purge %s first", Name, st, Name)
	}
	if _, err := os.Stat(StateDir); err == nil {
		t.Fatalf("%s exists: it may hold a CA's data, which the test must not touch; move it away first", StateDir)
	}
	_, err := user.Lookup(User)
	userExisted := err == nil
	_, err = user.LookupGroup(User)
	groupExisted := err == nil
	t.Cleanup(func() {
		if st := dpkgStatus(); st != "" && st != "not-installed" {
			dpkg(t, "--purge", Name)
		}
		os.RemoveAll(StateDir)
		if !userExisted {
			exec.Command("userdel", User).Run()
		}
		if !groupExisted {
			exec.Command("groupdel", User).Run()
		}
	})

	// The package of this commit, and a later version of the same to upgrade to
	// (a longer Debian version with the same start sorts after it).
	v1, p1 := buildDeb(t, "")
	v2, p2 := buildDeb(t, p1.Version+"+1")

	// A fresh install: the user, the files as listed, and nothing started.
	out := dpkg(t, "-i", v1)
	t.Logf("dpkg -i %s:\n%s", filepath.Base(v1), out)
	if !strings.Contains(out, "installed, not started") {
		t.Errorf("postinst did not say that it started nothing:\n%s", out)
	}
	checkUser(t)
	checkInstalled(t)
	if out, err := exec.Command("systemd-analyze", "verify", UnitPath).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s (installed): %v\n%s", UnitPath, err, out)
	}

	// The operator sets the listeners (free loopback ports here, so the test does not
	// collide with anything else on the machine) and starts the server.
	addr := map[string]string{}
	for _, k := range []string{"VARMENNE_LISTEN", "VARMENNE_PUBLIC_LISTEN", "VARMENNE_ADMIN_LISTEN", "VARMENNE_OPS_LISTEN"} {
		addr[k] = freeAddr(t)
	}
	addr["VARMENNE_PUBLIC_URL"] = "http://" + addr["VARMENNE_PUBLIC_LISTEN"]
	setEnvFile(t, EnvFilePath, addr)

	srv := startAsUnit(t)
	srv.checkDirectory(t, addr["VARMENNE_LISTEN"])
	srv.checkReady(t, addr["VARMENNE_OPS_LISTEN"])
	// An operator command, as docs/install.md gives it: as the service user, with the
	// settings file's variables, beside the running server.
	ops := run(t, "runuser", "-u", User, "--", "sh", "-c", `set -a; . `+EnvFilePath+`; exec varmenne "$@"`, "varmenne", "operator", "list")
	if !strings.HasPrefix(ops, "bootstrap ") || !strings.Contains(ops, "administrator") {
		t.Errorf("varmenne operator list as %s does not list the first administrator:\n%s", User, ops)
	}
	t.Logf("varmenne operator list (as %s): %s", User, strings.TrimSpace(ops))
	srv.stop(t)
	checkStateDir(t)
	roots, err := os.ReadFile(filepath.Join(StateDir, "roots.pem"))
	if err != nil {
		t.Fatal(err)
	}

	// An upgrade keeps the operator's settings (a conffile) and the CA's data; the
	// server runs on them again, with the same roots.
	out = dpkg(t, "-i", v2)
	t.Logf("dpkg -i %s (upgrade):\n%s", filepath.Base(v2), out)
	if got := strings.TrimSpace(run(t, "dpkg-query", "-W", "-f=${Version}", Name)); got != p2.Version {
		t.Errorf("after the upgrade dpkg has %s; want %s (from %s)", got, p2.Version, p1.Version)
	}
	if got := readEnvFile(t, EnvFilePath)["VARMENNE_LISTEN"]; got != addr["VARMENNE_LISTEN"] {
		t.Errorf("after the upgrade VARMENNE_LISTEN=%s; want the operator's %s", got, addr["VARMENNE_LISTEN"])
	}
	checkInstalled(t)
	srv = startAsUnit(t)
	srv.checkDirectory(t, addr["VARMENNE_LISTEN"])
	srv.stop(t)
	if again, err := os.ReadFile(filepath.Join(StateDir, "roots.pem")); err != nil || !bytes.Equal(again, roots) {
		t.Errorf("after the upgrade the server has other roots (err %v): the CA's data was not kept", err)
	}

	// Purge: the package's files and the configuration go, the CA's data stays.
	out = dpkg(t, "--purge", Name)
	t.Logf("dpkg --purge %s:\n%s", Name, out)
	for _, p := range []string{BinaryPath, UnitPath, EnvFilePath, ConfigDir, DocDir} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after the purge (%v)", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(StateDir, "varmenne.db")); err != nil {
		t.Errorf("the purge removed the CA's database: %v", err)
	}
	if !strings.Contains(out, "the CA's data stays in "+StateDir) {
		t.Errorf("the purge did not say where the data stays:\n%s", out)
	}
}

// dpkgStatus is the package's state as dpkg knows it: "installed", "config-files",
// "not-installed", …; "" when dpkg has never heard of it.
func dpkgStatus() string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", Name).Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return string(out)
	}
	return f[2]
}

// dpkg runs dpkg with the arguments while holding dpkg's front-end lock, as apt
// does: it waits for another apt or dpkg (another test installing its
// dependencies) rather than failing on the lock.
func dpkg(t *testing.T, args ...string) string {
	t.Helper()
	const lockPath = "/var/lib/dpkg/lock-frontend"
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lock := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lock)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed locked by another apt or dpkg for 10 minutes: %v", lockPath, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	cmd := exec.Command("dpkg", args...)
	cmd.Env = append(os.Environ(), "DPKG_FRONTEND_LOCKED=1", "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkUser checks the service user preinst made: a system user of its own group,
// its home the state directory, no login shell.
func checkUser(t *testing.T) {
	t.Helper()
	u, err := user.Lookup(User)
	if err != nil {
		t.Fatalf("no user %s after the install: %v", User, err)
	}
	g, err := user.LookupGroup(User)
	if err != nil {
		t.Fatalf("no group %s after the install: %v", User, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	if uid == 0 || uid >= 1000 {
		t.Errorf("user %s has uid %d; want a system uid (1-999)", User, uid)
	}
	if u.Gid != g.Gid {
		t.Errorf("user %s's group is %s; want %s (%s)", User, u.Gid, g.Gid, User)
	}
	if u.HomeDir != StateDir {
		t.Errorf("user %s's home is %s; want %s", User, u.HomeDir, StateDir)
	}
	passwd := run(t, "getent", "passwd", User)
	if !strings.HasSuffix(strings.TrimSpace(passwd), ":/usr/sbin/nologin") {
		t.Errorf("user %s can log in: %s", User, passwd)
	}
}

// checkInstalled compares the installed files' modes and owners with the table the
// package test checks.
func checkInstalled(t *testing.T) {
	t.Helper()
	for _, w := range wantContents {
		fi, err := os.Stat(w.path)
		if err != nil {
			t.Errorf("%s is not installed: %v", w.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		owner := name(t, user.LookupId, st.Uid) + "/" + name(t, groupName, st.Gid)
		if got := fi.Mode().String(); got != w.mode || owner != w.owner {
			t.Errorf("installed %s is %s %s; want %s %s", w.path, got, owner, w.mode, w.owner)
		}
	}
}

func groupName(id string) (*user.User, error) {
	g, err := user.LookupGroupId(id)
	if err != nil {
		return nil, err
	}
	return &user.User{Username: g.Name}, nil
}

func name(t *testing.T, lookup func(string) (*user.User, error), id uint32) string {
	u, err := lookup(strconv.Itoa(int(id)))
	if err != nil {
		return strconv.Itoa(int(id))
	}
	return u.Username
}

// checkStateDir checks what the server made in its state directory: all the
// service user's, and nothing open to group or others but public certificates
// (serve writes those 0644 on purpose; the directory itself is 0700).
func checkStateDir(t *testing.T) {
	t.Helper()
	u, err := user.Lookup(User)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = filepath.WalkDir(StateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n++
		if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != u.Uid {
			t.Errorf("%s belongs to uid %s, not to %s", p, uid, User)
		}
		if fi.Mode().Perm()&0o077 != 0 && (fi.IsDir() || !onlyCertificates(p)) {
			t.Errorf("%s is %s: open to group or others", p, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(StateDir, "varmenne.db")); err != nil {
		t.Errorf("the server made no database in %s: %v", StateDir, err)
	}
	t.Logf("%s: %d entries, every one %s's, none open to others but certificates", StateDir, n, User)
}

// onlyCertificates says whether the file is PEM certificates and nothing else.
func onlyCertificates(path string) bool {
	rest, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return n > 0 && len(bytes.TrimSpace(rest)) == 0
		}
		if b.Type != "CERTIFICATE" {
			return false
		}
		n++
	}
}

// server is the installed varmenne started as its unit would be.
type server struct {
	cmd    *exec.Cmd
	stderr *logbuf.Buffer
	exited chan struct{} // closed once the process is waited for
	err    error         // its exit, once exited is closed
}

// startAsUnit starts the installed server as systemd would from the installed unit:
// its User and Group (setpriv, no new privileges, no capability), its ExecStart
// word for word, its EnvironmentFile with the variables systemd gives every
// service, its UMask and WorkingDirectory. It returns once the server prints its
// ACME directory.
func startAsUnit(t *testing.T) *server {
	t.Helper()
	u := readUnit(t, UnitPath)
	usr, grp := u.one(t, "Service.User"), u.one(t, "Service.Group")
	argv := strings.Fields(u.one(t, "Service.ExecStart"))
	if strings.ContainsAny(argv[0], "@-:+!") || strings.Contains(u.one(t, "Service.ExecStart"), "$") {
		t.Fatalf("ExecStart %q has prefixes or variables this test does not expand", u.one(t, "Service.ExecStart"))
	}
	home, err := user.Lookup(usr)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home.HomeDir, "USER=" + usr, "LOGNAME=" + usr, "SHELL=/usr/sbin/nologin",
		"STATE_DIRECTORY=/var/lib/" + u.one(t, "Service.StateDirectory"),
	}
	for k, v := range readEnvFile(t, u.one(t, "Service.EnvironmentFile")) {
		env = append(env, k+"="+v)
	}
	// setpriv drops to the user as User=, Group= and NoNewPrivileges= do, with the
	// empty capability bounding set; the shell sets UMask= and execs ExecStart.
	args := []string{"--reuid=" + usr, "--regid=" + grp, "--init-groups", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all",
		"/bin/sh", "-c", `umask "$0" && exec "$@"`, u.one(t, "Service.UMask")}
	cmd := exec.Command("setpriv", append(args, argv...)...)
	cmd.Env = env
	cmd.Dir = u.one(t, "Service.WorkingDirectory")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stderr: &logbuf.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			cmd.Process.Kill()
			<-s.exited
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		s.err = cmd.Wait()
		close(s.exited)
	}()
	var seen []string
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the server ended before it served:\nstdout:\n%s\nstderr:\n%s", strings.Join(seen, "\n"), s.stderr)
			}
			seen = append(seen, line)
			if strings.Contains(line, "ACME directory: ") {
				go func() {
					for range lines {
					}
				}()
				t.Logf("started as the unit would (%s as %s): %s", strings.Join(argv, " "), usr, strings.TrimSpace(line))
				return s
			}
		case <-timeout:
			t.Fatalf("the server printed no ACME directory in 2 minutes:\nstdout:\n%s\nstderr:\n%s", strings.Join(seen, "\n"), s.stderr)
		}
	}
}

// client trusts the roots file the server wrote in its state directory, and only
// it; it dials addresses, never names.
func client(t *testing.T) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(StateDir, "roots.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s/roots.pem holds no certificate", StateDir)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext:     (&net.Dialer{}).DialContext,
	}}
}

// checkDirectory asks the ACME directory over HTTPS and a nonce from it.
func (s *server) checkDirectory(t *testing.T, listen string) {
	t.Helper()
	c := client(t)
	url := "https://" + listen + "/acme/directory"
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s with the roots of %s: %v\nstderr:\n%s", url, StateDir, err, s.stderr)
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&dir); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	for _, k := range []string{"newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"} {
		v, _ := dir[k].(string)
		if !strings.HasPrefix(v, "https://"+listen+"/") {
			t.Errorf("directory %s = %q; want a URL on https://%s", k, dir[k], listen)
		}
	}
	nonce, _ := dir["newNonce"].(string)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodHead, nonce, nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatalf("HEAD %s: %v", nonce, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Replay-Nonce") == "" {
		t.Errorf("HEAD %s: %s, Replay-Nonce %q", nonce, resp.Status, resp.Header.Get("Replay-Nonce"))
	}
	t.Logf("GET %s: %s, with %d entries; HEAD newNonce: %s", url, "200 OK", len(dir), resp.Status)
}

// checkReady asks the operator listener's /readyz.
func (s *server) checkReady(t *testing.T, ops string) {
	t.Helper()
	resp, err := http.Get("http://" + ops + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET http://%s/readyz: %s", ops, resp.Status)
	}
}

// stop sends SIGTERM, as systemctl stop does, and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
		if s.err != nil {
			t.Errorf("the server did not exit cleanly on SIGTERM: %v\nstderr:\n%s", s.err, s.stderr)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the server did not stop within a minute of SIGTERM")
	}
}

// freeAddr is a loopback address with a port free at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
