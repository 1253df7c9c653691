package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Locks that die with their holder: the right to publish an issuer's CRLs, and the
// liveness of a serving process (its instance). On PostgreSQL a lock is a
// session-level advisory lock held on a connection kept for the holder's life, so
// PostgreSQL drops it when the holder's session ends; on SQLite it is an exclusive
// flock on a file beside the database, which the kernel drops when the holder's
// process ends. Neither waits for a time to run out (issue 17: a crash costs
// seconds, not half a minute).
//
// Through a pooler in transaction mode (PgBouncer) a session lock means nothing:
// the lock connection, like the migration lock's, must reach PostgreSQL itself.

// ErrLockLost is returned by Lock.Check when the lock is no longer held: its
// connection ended (PostgreSQL) or its file was replaced (SQLite).
var ErrLockLost = errors.New("store: lock lost")

// Lock is one held lock. Its methods are safe for concurrent use.
type Lock struct {
	name string
	mu   sync.Mutex
	// PostgreSQL: the session holding advisory lock key; nil once released or lost.
	conn *sql.Conn
	key  int64
	// SQLite: the locked file at path; nil once released or lost.
	f    *os.File
	path string
}

// liveness is the state of a store's locks shared by its copies (tx.go binds
// copies of SQL to transactions).
type liveness struct {
	mu        sync.Mutex
	instance  string               // this process's instance id; "" when it holds none
	freeSince map[string]time.Time // when another instance's lock was first found free
	// confirm is how long another instance's lock must stay free before the
	// instance is taken for dead: 0 on SQLite, where a live process never loses its
	// flock; orphanConfirm on PostgreSQL, where a live process loses its lock with
	// its session (a database restart) until its next Renew.
	confirm time.Duration
}

func newLiveness(confirm time.Duration) *liveness {
	return &liveness{freeSince: map[string]time.Time{}, confirm: confirm}
}

// processingBy is what a row put into processing records as its owner.
func (s *SQL) processingBy() string {
	if s.live == nil {
		return ""
	}
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return s.live.instance
}

// advisoryKey is the PostgreSQL advisory lock key of a named lock: a 64-bit hash,
// apart from the migration and audit constants by its prefix.
func advisoryKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("varmenne lock " + name))
	return int64(h.Sum64())
}

// lockPath is the SQLite lock file of a named lock: beside the database, named
// after it, e.g. varmenne.db.crl-production.lock.
func (s *SQL) lockPath(name string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return -1
	}, name)
	if safe != name {
		safe = hex.EncodeToString([]byte(name))
	}
	return s.path + "." + safe + ".lock"
}

// tryLock takes the named lock if nobody holds it: nil, nil when another holds
// it.
func (s *SQL) tryLock(ctx context.Context, name string) (*Lock, error) {
	if s.d.name == "postgres" {
		return s.tryAdvisoryLock(ctx, name)
	}
	path := s.lockPath(name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock %s: %w", name, err)
	}
	return flockOrClose(f, name, path)
}

// flockOrClose takes an exclusive flock on f without waiting.
func flockOrClose(f *os.File, name, path string) (*Lock, error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("store: lock %s: %w", name, err)
	}
	return &Lock{name: name, f: f, path: path}, nil
}

func (s *SQL) tryAdvisoryLock(ctx context.Context, name string) (*Lock, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, s.fail("lock "+name, err)
	}
	key := advisoryKey(name)
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		discard(conn)
		return nil, s.fail("lock "+name, err)
	}
	if !ok {
		conn.Close()
		return nil, nil
	}
	return &Lock{name: name, conn: conn, key: key}, nil
}

// discard closes a connection whose state is unknown instead of pooling it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// Check reports whether the lock is still held: nil, or ErrLockLost once its
// connection ended or its file was replaced. A lost lock is released; take it
// again with a new tryLock.
func (l *Lock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.conn != nil:
		var held bool
		err := l.conn.QueryRowContext(ctx,
			`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
			 AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)`,
			int64(uint64(l.key)>>32), int64(uint64(l.key)&0xffffffff)).Scan(&held)
		if err == nil && held {
			return nil
		}
		discard(l.conn)
		l.conn = nil
		if err != nil {
			return fmt.Errorf("%w: %s: its connection failed: %v", ErrLockLost, l.name, err)
		}
		return fmt.Errorf("%w: %s: its session no longer holds it", ErrLockLost, l.name)
	case l.f != nil:
		// A file removed or replaced under the holder could be locked by another.
		held, err := l.f.Stat()
		now, serr := os.Stat(l.path)
		if err == nil && serr == nil && os.SameFile(held, now) {
			return nil
		}
		l.f.Close()
		l.f = nil
		return fmt.Errorf("%w: %s: its file %s was removed or replaced", ErrLockLost, l.name, l.path)
	}
	return fmt.Errorf("%w: %s: released", ErrLockLost, l.name)
}

// Release gives the lock up at once, so that another holder need not wait.
func (l *Lock) Release(ctx context.Context) error {
	return l.release(ctx, false)
}

// release gives the lock up; unlink also removes its file (SQLite), first, so that
// whoever finds the file may take its lock for a sign that the holder is gone.
func (l *Lock) release(ctx context.Context, unlink bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.conn != nil:
		_, err := l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, l.key)
		if err != nil {
			discard(l.conn) // closing the session unlocks
		} else {
			l.conn.Close()
		}
		l.conn = nil
	case l.f != nil:
		var err error
		if unlink {
			err = os.Remove(l.path)
		}
		l.f.Close() // closing the last descriptor unlocks
		l.f = nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: unlock %s: %w", l.name, err)
		}
	}
	return nil
}

// CRLPublisher takes the right to publish the issuer's CRLs, which replicas
// sharing a database hold one at a time; nil, nil while another holds it. The
// right lasts until Release, or until the holder dies (its session or process
// ends); Check it before each publication.
func (s *SQL) CRLPublisher(ctx context.Context, issuer string) (*Lock, error) {
	if issuer == "" {
		return nil, errors.New("store: the CRL publisher lock needs an issuer")
	}
	return s.tryLock(ctx, "crl-"+issuer)
}

// Instance is a serving process as the sweepers of the others see it: an id made
// at start and a liveness lock of that id. The challenges and orders the process
// puts into processing record the id; once the lock can be taken the process is
// gone, and SweepOrphaned fails them at once.
type Instance struct {
	ID   string
	s    *SQL
	mu   sync.Mutex
	lock *Lock
}

func instanceLock(id string) string { return "instance-" + id }

// StartInstance makes this process's instance id and takes its liveness lock. From
// now on the store records the id on what it puts into processing. One per store.
func (s *SQL) StartInstance(ctx context.Context) (*Instance, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(b[:])
	lock, err := s.takeInstanceLock(ctx, id)
	if err != nil {
		return nil, err
	}
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if s.live.instance != "" {
		_ = lock.release(ctx, true)
		return nil, errors.New("store: an instance is already started on this store")
	}
	s.live.instance = id
	return &Instance{ID: id, s: s, lock: lock}, nil
}

// takeInstanceLock takes the liveness lock of a new id. On SQLite the file is
// locked under a temporary name and then renamed into place, so that a file of
// that name is locked from the moment it exists: a sweeper that finds it unlocked
// knows its holder is gone.
func (s *SQL) takeInstanceLock(ctx context.Context, id string) (*Lock, error) {
	name := instanceLock(id)
	if s.d.name == "postgres" {
		lock, err := s.tryAdvisoryLock(ctx, name)
		if err == nil && lock == nil {
			err = fmt.Errorf("store: the liveness lock of new instance %s is held by another session", id)
		}
		return lock, err
	}
	path := s.lockPath(name)
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: instance lock: %w", err)
	}
	lock, err := flockOrClose(f, name, path)
	if err == nil && lock == nil {
		err = errors.New("store: instance lock: a new file is locked by another")
	}
	if err == nil {
		if err = os.Rename(tmp, path); err != nil {
			lock.f.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return lock, nil
}

// Renew checks the instance's liveness lock and takes it again when it was lost
// (PostgreSQL: the session ended, e.g. a database restart). The holder calls it
// often (every second): other replicas take an instance for dead only when its lock
// stays free for longer (orphanConfirm).
func (i *Instance) Renew(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.lock != nil {
		if err := i.lock.Check(ctx); err == nil {
			return nil
		}
		i.lock = nil
	}
	lock, err := i.s.tryLock(ctx, instanceLock(i.ID))
	if err != nil {
		return fmt.Errorf("the liveness lock of instance %s was lost and cannot be taken again: %w", i.ID, err)
	}
	if lock == nil {
		return fmt.Errorf("the liveness lock of instance %s was lost and is held by another session", i.ID)
	}
	i.lock = lock
	return nil
}

// Close gives up the instance: the store stops recording its id, and its lock is
// released, so that whatever it left processing is failed by the next sweep.
func (i *Instance) Close(ctx context.Context) error {
	i.s.live.mu.Lock()
	if i.s.live.instance == i.ID {
		i.s.live.instance = ""
	}
	i.s.live.mu.Unlock()
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.lock == nil {
		return nil
	}
	err := i.lock.release(ctx, true)
	i.lock = nil
	return err
}

// orphanConfirm is liveness.confirm on PostgreSQL: three Renews of the holder (one
// a second, in serve).
const orphanConfirm = 3 * time.Second

// instanceDead reports whether the instance id is gone: its liveness lock can be
// taken, and could be since liveness.confirm ago.
func (s *SQL) instanceDead(ctx context.Context, id string, now time.Time) (bool, error) {
	name := instanceLock(id)
	if s.d.name != "postgres" {
		f, err := os.OpenFile(s.lockPath(name), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil // released by its holder, or removed by a sweep
		}
		if err != nil {
			return false, err
		}
		lock, err := flockOrClose(f, name, s.lockPath(name))
		if lock != nil {
			_ = lock.release(ctx, false)
		}
		return lock != nil, err
	}
	lock, err := s.tryAdvisoryLock(ctx, name)
	if err != nil {
		return false, err
	}
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if lock == nil {
		delete(s.live.freeSince, id)
		return false, nil
	}
	_ = lock.Release(ctx)
	first, seen := s.live.freeSince[id]
	if !seen {
		first = now
		s.live.freeSince[id] = now
	}
	return now.Sub(first) >= s.live.confirm, nil
}

// orphanCandidates are the instances other than this one that may have left work:
// those named by processing rows and, on SQLite, those with a lock file.
func (s *SQL) orphanCandidates(ctx context.Context) ([]string, error) {
	ids, err := s.column(ctx, s.db,
		`SELECT processing_by FROM orders WHERE status = 'processing' AND processing_by <> ''
		 UNION SELECT processing_by FROM challenges WHERE status = 'processing' AND processing_by <> ''`)
	if err != nil {
		return nil, err
	}
	if s.d.name != "postgres" {
		prefix, suffix := s.path+"."+instanceLock(""), ".lock"
		files, _ := filepath.Glob(prefix + "*" + suffix)
		for _, f := range files {
			ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(f, prefix), suffix))
		}
	}
	own := s.processingBy()
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if id != own && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// SweepOrphaned fails at once the challenges and orders that a serving process
// which is gone left processing (its liveness lock can be taken): each challenge as
// a failed validation (chProblem), each order without a certificate as
// SweepStuckOrders does (orderProblem), with the same conditional updates. Rows of
// live processes, and rows with no instance, are left to the time-based sweeps.
// On SQLite the lock files of gone instances are removed.
func (s *SQL) SweepOrphaned(ctx context.Context, chProblem, orderProblem []byte) (challenges, orders int, err error) {
	ids, err := s.orphanCandidates(ctx)
	if err != nil {
		return 0, 0, s.fail("find the instances that left work processing", err)
	}
	now := time.Now()
	s.live.mu.Lock()
	for id := range s.live.freeSince {
		if !slices.Contains(ids, id) {
			delete(s.live.freeSince, id) // its work is done
		}
	}
	s.live.mu.Unlock()
	for _, id := range ids {
		dead, err := s.instanceDead(ctx, id, now)
		if err != nil {
			return challenges, orders, s.fail("check whether instance "+id+" is alive", err)
		}
		if !dead {
			continue
		}
		c, o, err := s.sweepInstance(ctx, id, chProblem, orderProblem)
		challenges, orders = challenges+c, orders+o
		if err != nil {
			return challenges, orders, err
		}
		if s.d.name != "postgres" {
			if err := os.Remove(s.lockPath(instanceLock(id))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return challenges, orders, fmt.Errorf("store: remove the lock file of gone instance %s: %w", id, err)
			}
		}
	}
	return challenges, orders, nil
}

// sweepInstance fails what the gone instance id left processing.
func (s *SQL) sweepInstance(ctx context.Context, id string, chProblem, orderProblem []byte) (challenges, orders int, err error) {
	chIDs, err := s.column(ctx, s.db,
		`SELECT id FROM challenges WHERE status = 'processing' AND processing_by = ? ORDER BY id`, id)
	if err != nil {
		return 0, 0, s.fail("find the challenges of gone instance "+id, err)
	}
	// Whatever the gone process's clock said, its rows are processing since before
	// a day from now.
	challenges, err = s.failChallenges(ctx, chIDs, chProblem, time.Now().Add(24*time.Hour))
	if err != nil {
		return challenges, 0, err
	}
	n, err := s.exec(ctx, s.db,
		`UPDATE orders SET status = 'invalid', error = ?
		 WHERE status = 'processing' AND processing_by = ? AND cert_serial = ''
		 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)`,
		blob(orderProblem), id)
	if err != nil {
		return challenges, 0, s.fail("fail the orders of gone instance "+id, err)
	}
	return challenges, int(n), s.freeUnaskedIntents(ctx)
}
