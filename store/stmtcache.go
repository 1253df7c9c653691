package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
	"sync/atomic"
)

// The store's connections keep the statements they ran prepared, so that a hot
// statement is parsed and planned once per connection instead of once per run
// (SQLite's parser was a sixth of the CPU of an issuance), and PostgreSQL answers a
// cached statement in one round trip instead of two. The cache sits under
// database/sql, in a wrapper of the driver's connection, so every query of the
// store, in a transaction or not, uses it without naming it.

// maxCachedStmts bounds the statements one connection keeps; past it a statement
// runs as before, prepared and closed at once. The store has fewer distinct
// statements on its hot paths than this.
const maxCachedStmts = 256

// Counters are what the store's connections have run since the process started;
// a benchmark divides their growth by the certificates issued.
type Counters struct {
	Statements int64 // statements executed (each run of a prepared one counts)
	Commits    int64 // read-write transactions committed
	ReadTxs    int64 // read-only transactions ended
	Connects   int64 // connections opened
}

var counts struct{ statements, commits, readTxs, connects atomic.Int64 }

// Counts returns the counters of every store of this process.
func Counts() Counters {
	return Counters{Statements: counts.statements.Load(), Commits: counts.commits.Load(), ReadTxs: counts.readTxs.Load(),
		Connects: counts.connects.Load()}
}

// openCached opens a pool of the registered driver name whose connections cache
// their statements. cacheNoArgs: also cache statements without arguments (SQLite);
// lib/pq runs those with the simple protocol, which allows several statements in
// one string and needs one round trip anyway.
func openCached(name, dsn string, cacheNoArgs bool) (*sql.DB, error) {
	probe, err := sql.Open(name, "")
	if err != nil {
		return nil, err
	}
	drv := probe.Driver()
	probe.Close()
	return sql.OpenDB(&cachingConnector{drv: drv, dsn: dsn, cacheNoArgs: cacheNoArgs}), nil
}

type cachingConnector struct {
	drv         driver.Driver
	dsn         string
	cacheNoArgs bool
}

func (c *cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	var conn driver.Conn
	var err error
	if dc, ok := c.drv.(driver.DriverContext); ok {
		var ctr driver.Connector
		if ctr, err = dc.OpenConnector(c.dsn); err == nil {
			conn, err = ctr.Connect(ctx)
		}
	} else {
		conn, err = c.drv.Open(c.dsn)
	}
	if err != nil {
		return nil, err
	}
	counts.connects.Add(1)
	for _, need := range []bool{isExecer(conn), isQueryer(conn), isPreparer(conn), isBeginner(conn)} {
		if !need {
			// A driver without the context interfaces runs unwrapped.
			return conn, nil
		}
	}
	return &cachingConn{Conn: conn, cacheNoArgs: c.cacheNoArgs, stmts: map[string]*cachedStmt{}}, nil
}

func (c *cachingConnector) Driver() driver.Driver { return c.drv }

func isExecer(c driver.Conn) bool   { _, ok := c.(driver.ExecerContext); return ok }
func isQueryer(c driver.Conn) bool  { _, ok := c.(driver.QueryerContext); return ok }
func isPreparer(c driver.Conn) bool { _, ok := c.(driver.ConnPrepareContext); return ok }
func isBeginner(c driver.Conn) bool { _, ok := c.(driver.ConnBeginTx); return ok }

// cachingConn is a driver connection with its prepared statements. database/sql
// uses a connection from one goroutine at a time; mu guards against a Rows closed
// from elsewhere all the same.
type cachingConn struct {
	driver.Conn
	cacheNoArgs bool

	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	st driver.Stmt
	// busy: a Rows of this statement is open; a second run of the same query on
	// this connection meanwhile (a query nested in a loop over its own kind) is
	// prepared apart, since running the statement again would reset the first.
	busy bool
}

// Unwrap is the driver's own connection (modernc.org/sqlite reaches its own
// methods through it).
func (c *cachingConn) Unwrap() driver.Conn { return c.Conn }

func (c *cachingConn) cacheable(args []driver.NamedValue) bool { return c.cacheNoArgs || len(args) > 0 }

// take returns the cached statement of query marked busy, preparing and caching
// it first; nil when the statement is busy or the cache full.
func (c *cachingConn) take(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	cs, ok := c.stmts[query]
	if ok {
		if cs.busy {
			c.mu.Unlock()
			return nil, nil
		}
		cs.busy = true
		c.mu.Unlock()
		return cs, nil
	}
	full := len(c.stmts) >= maxCachedStmts
	c.mu.Unlock()
	if full {
		return nil, nil
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	cs = &cachedStmt{st: st, busy: true}
	c.mu.Lock()
	c.stmts[query] = cs
	c.mu.Unlock()
	return cs, nil
}

// release marks cs free again; after an error the statement is dropped, so that a
// statement the database no longer accepts (PostgreSQL: a table changed under a
// cached plan) is prepared anew next time.
func (c *cachingConn) release(query string, cs *cachedStmt, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs.busy = false
	if failed && c.stmts[query] == cs {
		delete(c.stmts, query)
		cs.st.Close()
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	counts.statements.Add(1)
	if c.cacheable(args) {
		cs, err := c.take(ctx, query)
		if err != nil {
			return nil, err
		}
		if cs != nil {
			res, err := execStmt(ctx, cs.st, args)
			c.release(query, cs, err != nil)
			return res, err
		}
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	counts.statements.Add(1)
	if c.cacheable(args) {
		cs, err := c.take(ctx, query)
		if err != nil {
			return nil, err
		}
		if cs != nil {
			rows, err := queryStmt(ctx, cs.st, args)
			if err != nil {
				c.release(query, cs, true)
				return nil, err
			}
			return &cachedRows{Rows: rows, release: func() { c.release(query, cs, false) }}, nil
		}
	}
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return countingTx{tx, opts.ReadOnly}, nil
}

func (c *cachingConn) Close() error {
	c.mu.Lock()
	for q, cs := range c.stmts {
		cs.st.Close()
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func execStmt(ctx context.Context, st driver.Stmt, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := st.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	vals, err := plainValues(args)
	if err != nil {
		return nil, err
	}
	return st.Exec(vals) //nolint:staticcheck // the driver has nothing newer
}

func queryStmt(ctx context.Context, st driver.Stmt, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := st.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	vals, err := plainValues(args)
	if err != nil {
		return nil, err
	}
	return st.Query(vals) //nolint:staticcheck // the driver has nothing newer
}

func plainValues(args []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("store: named arguments need a driver with StmtExecContext")
		}
		vals[i] = a.Value
	}
	return vals, nil
}

// cachedRows frees its statement for the next run when closed.
type cachedRows struct {
	driver.Rows
	once    sync.Once
	release func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.release)
	return err
}

type countingTx struct {
	driver.Tx
	readOnly bool
}

func (t countingTx) Commit() error {
	err := t.Tx.Commit()
	switch {
	case err != nil:
	case t.readOnly:
		counts.readTxs.Add(1)
	default:
		counts.commits.Add(1)
	}
	return err
}
