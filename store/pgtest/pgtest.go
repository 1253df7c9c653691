// Package pgtest runs a private PostgreSQL cluster for tests: initdb into a temporary
// directory, a server on a free loopback port with its unix socket in that directory,
// trust authentication for one superuser, and a fresh database per test.
//
// It is for tests only. The server runs as a child of the test process and is killed
// with it (parent-death signal), so a test binary that times out leaves no server
// behind. PostgreSQL refuses to run as root; as root the cluster runs as the
// "postgres" OS user.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" driver
)

// superuser is the cluster's only role.
const superuser = "varmenne"

// Cluster is one running private PostgreSQL server.
type Cluster struct {
	dir      string // owns data/, the socket and the log
	bin      string // directory of initdb and postgres
	port     int
	settings []string
	cred     *syscall.Credential // nil unless running as root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error

	dbs atomic.Int64
}

// Start creates and starts a cluster. settings are extra server settings as
// name=value (e.g. "fsync=off"); the defaults are PostgreSQL's own.
func Start(settings ...string) (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "varmenne-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{dir: dir, bin: bin, settings: settings}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresUser(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	initdb := c.command(filepath.Join(bin, "initdb"), "-D", c.dataDir(), "-U", superuser,
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	if c.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Up(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// Main runs a test binary's tests with a cluster held in *c, stops the cluster and
// exits. Use it as TestMain: func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }.
func Main(m *testing.M, c **Cluster, settings ...string) {
	var err error
	if *c, err = Start(settings...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	(*c).Stop()
	os.Exit(code)
}

// DSN is the address of database name as a lib/pq URL over loopback TCP.
func (c *Cluster) DSN(name string) string {
	u := url.URL{Scheme: "postgres", User: url.User(superuser), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path: "/" + name, RawQuery: "sslmode=disable"}
	return u.String()
}

// Port is the server's loopback TCP port.
func (c *Cluster) Port() int { return c.port }

// Pid is the server's (postmaster's) process id while it runs, else 0.
func (c *Cluster) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// NewDatabase creates an empty database, dropped when t ends, and returns its DSN.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	return c.NewDatabaseFrom(t, "template1")
}

// NewDatabaseFrom creates a database as a copy of template (a database nobody is
// connected to), dropped when t ends, and returns its DSN.
func (c *Cluster) NewDatabaseFrom(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.dbs.Add(1))
	if err := c.Exec(context.Background(), "CREATE DATABASE "+name+" TEMPLATE "+quote(template)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// FORCE ends connections a test left open (a killed replica's, for one).
		if err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c.DSN(name)
}

// Exec runs statements as the superuser in the maintenance database.
func (c *Cluster) Exec(ctx context.Context, stmts string) error {
	db, err := sql.Open("postgres", c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmts); err != nil {
		return fmt.Errorf("pgtest: %s: %w", firstLine(stmts), err)
	}
	return nil
}

// Up starts the server on the cluster's port and waits until it accepts connections.
func (c *Cluster) Up() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("pgtest: server already running")
	}
	args := []string{"-D", c.dataDir(), "-p", strconv.Itoa(c.port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"}
	for _, s := range c.settings {
		args = append(args, "-c", s)
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := c.command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			return fmt.Errorf("pgtest: postgres exited at start: %v\n%s", err, c.Log())
		default:
		}
		if c.ping() == nil {
			c.cmd, c.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("pgtest: postgres did not accept connections in 60 s\n%s", c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Down stops the server with a fast shutdown (what pg_ctl stop and pg_ctl restart do):
// open transactions are rolled back, committed ones are kept, clients are cut off.
func (c *Cluster) Down() error { return c.down(Fast) }

// Shutdown is how the server is stopped, as pg_ctl's -m option names it.
type Shutdown int

const (
	// Fast (-m fast) rolls back open transactions, ends every session with
	// "terminating connection due to administrator command" (57P01), writes a
	// checkpoint and exits.
	Fast Shutdown = iota
	// Immediate (-m immediate) ends every process at once, without a checkpoint:
	// the next start recovers from the WAL, as after a crash. A commit that did not
	// wait for the WAL to reach the disk (synchronous_commit off) may be lost.
	Immediate
)

func (m Shutdown) String() string {
	if m == Immediate {
		return "immediate"
	}
	return "fast"
}

// signal is what the postmaster is sent for the mode (the signals pg_ctl sends).
func (m Shutdown) signal() syscall.Signal {
	if m == Immediate {
		return syscall.SIGQUIT
	}
	return syscall.SIGINT
}

func (c *Cluster) down(mode Shutdown) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(mode.signal())
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd, c.done = nil, nil
	return nil
}

// Restart is pg_ctl restart -m mode: the server stops (Fast or Immediate) and starts
// again on the same port, and Restart returns once it accepts connections.
func (c *Cluster) Restart(mode Shutdown) error {
	if err := c.down(mode); err != nil {
		return err
	}
	return c.Up()
}

// Stop shuts the server down and removes its files.
func (c *Cluster) Stop() {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd != nil {
		// Immediate: the data is thrown away anyway.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	os.RemoveAll(c.dir)
}

// Log is the server's log so far, for failure messages.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) ping() error {
	db, err := sql.Open("postgres", c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// command runs a PostgreSQL program, as the postgres user when we are root, and
// kills it when the test process dies.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: c.cred}
	return cmd
}

// findBin locates initdb and postgres: $PG_BIN, then the newest Debian
// /usr/lib/postgresql/*/bin, then $PATH.
func findBin() (string, error) {
	candidates := []string{os.Getenv("PG_BIN")}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(debian, func(i, j int) bool { return version(debian[i]) > version(debian[j]) })
	candidates = append(candidates, debian...)
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, dir := range candidates {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
				return dir, nil
			}
		}
	}
	return "", errors.New("pgtest: PostgreSQL server programs (initdb, postgres) not found: install the postgresql package (apt-get install postgresql) or set PG_BIN to their directory")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// postgresUser is the credential of the OS user PostgreSQL runs as when we are root.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL refuses root: there is no \"postgres\" OS user to run it as (%v)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: bad ids for user postgres: %s:%s", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
