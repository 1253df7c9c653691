package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/lib/pq"
)

// TestPostgresFinishAfterLostCommit: the connection breaks after PostgreSQL took
// FinishIssuance's commit and before its answer arrived (a restart at that moment).
// The retry meets the rows of its own first try; the certificate is stored and the
// order valid, so FinishIssuance succeeds instead of reporting a signed certificate
// as not stored.
func TestPostgresFinishAfterLostCommit(t *testing.T) {
	ctx := context.Background()
	dsn := cluster.NewDatabase(t)
	s, err := OpenPostgres(ctx, dsn, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inner, err := pq.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	lose := &loseCommit{Connector: inner}
	s.db.Close()
	s.db = sql.OpenDB(lose)

	w := &world{t: t, s: s, ctx: ctx}
	w.must(s.AddOrganisation(ctx, Organisation{OID: org1, Name: "x", CreatedAt: t0}))
	w.eab("kid-bound", EABApproved)
	w.must(s.CreateAccount(ctx, account("acct-1", "thumb-1"), "kid-bound"))
	w.processingOrder("o1")
	w.must(s.RecordIntent(ctx, intent("0a", "o1", "aa")))

	lose.armed.Store(true)
	if err := s.FinishIssuance(ctx, cert("0a", "o1", "aa")); err != nil {
		t.Errorf("FinishIssuance after its commit's answer was lost: %v", err)
	}
	if lose.lost.Load() != 1 {
		t.Fatalf("%d commit answers lost, want 1: the test proved nothing", lose.lost.Load())
	}
	if _, err := s.GetCertificate(ctx, "0a"); err != nil {
		t.Errorf("the certificate: %v", err)
	}
	mustEqual(t, "order", w.orderStatus("o1"), "valid")
	mustEqual(t, "intent", w.intentStatus("0a"), IntentIssued)

	// A different certificate under a stored serial is still a duplicate, also
	// when a try before failed without a verdict.
	lose.breakExec.Store(true)
	other := cert("0a", "o1", "cc")
	other.DER = []byte("another certificate")
	if err := s.FinishIssuance(ctx, other); !errors.Is(err, ErrDuplicate) {
		t.Errorf("another certificate under a stored serial: %v, want ErrDuplicate", err)
	}
	if lose.broken.Load() != 1 {
		t.Errorf("%d statements failed without a verdict, want 1: the case proved nothing", lose.broken.Load())
	}
}

// loseCommit is a connector whose connections, while armed, commit a transaction
// and then report the connection broken, once; and while breakExec is set, fail
// the next statement as a broken connection, without running it.
type loseCommit struct {
	driver.Connector
	armed, breakExec atomic.Bool
	lost, broken     atomic.Int64
}

func (l *loseCommit) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := l.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &loseCommitConn{Conn: c, l: l}, nil
}

type loseCommitConn struct {
	driver.Conn
	l *loseCommit
}

func (c *loseCommitConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &loseCommitTx{Tx: tx, l: c.l}, nil
}

func (c *loseCommitConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.l.breakExec.CompareAndSwap(true, false) {
		c.l.broken.Add(1)
		return nil, driver.ErrBadConn
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *loseCommitConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

type loseCommitTx struct {
	driver.Tx
	l *loseCommit
}

func (tx *loseCommitTx) Commit() error {
	if err := tx.Tx.Commit(); err != nil {
		return err
	}
	if tx.l.armed.CompareAndSwap(true, false) {
		tx.l.lost.Add(1)
		return driver.ErrBadConn
	}
	return nil
}
