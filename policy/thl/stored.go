package thl

import (
	"context"
	"fmt"
	"time"

	"github.com/varmenne/varmenne/store"
)

// RecordReader is what Stored reads of the store; *store.SQL is one.
type RecordReader interface {
	GetRegisterRecord(ctx context.Context, oid string) (store.RegisterRecord, error)
}

// Stored is THL's register as the store holds it: the one copy every replica reads.
// Each load of the register (a server's refresh from --register-source, or
// "varmenne org import") writes it into the store with the load's time, so a
// replica that never loaded it itself, or restarted, answers from the same copy;
// a copy older than MaxStale answers nothing (a *StaleError: issuance pauses,
// fail closed).
type Stored struct {
	st       RecordReader
	maxStale time.Duration
	now      func() time.Time
}

var _ Lookuper = (*Stored)(nil)

// NewStored reads the register in st, trusting a copy up to maxStale old (0:
// DefaultMaxStale); now nil is time.Now.
func NewStored(st RecordReader, maxStale time.Duration, now func() time.Time) *Stored {
	if maxStale <= 0 {
		maxStale = DefaultMaxStale
	}
	if now == nil {
		now = time.Now
	}
	return &Stored{st: st, maxStale: maxStale, now: now}
}

// Stale reports whether a copy loaded at loadedAt (zero: never) is too old to
// answer from now.
func (s *Stored) Stale(loadedAt time.Time) bool { return stale(loadedAt, s.now(), s.maxStale) }

// stale is the one rule of a register copy's age: never loaded, or loaded longer
// than maxStale before now.
func stale(loadedAt, now time.Time, maxStale time.Duration) bool {
	return loadedAt.IsZero() || now.Sub(loadedAt) > maxStale
}

// Lookup returns the stored register's record of the organisation, in one read:
// ErrNotListed (wrapped) when no load listed it or a later one no longer did, a
// *StaleError when the copy was never loaded or is too old.
func (s *Stored) Lookup(ctx context.Context, oid string) (Entry, error) {
	rec, err := s.st.GetRegisterRecord(ctx, oid)
	if err != nil {
		return Entry{}, err
	}
	return s.judge(oid, rec)
}

// Read is the register as Lookup answers it, from rec, the register record of
// the organisation already read (store.SQL.GetOrganisationRecord): the same rules,
// without reading it again. It answers for that organisation only.
func (s *Stored) Read(oid string, rec store.RegisterRecord) Lookuper {
	return readRecord{s: s, oid: oid, rec: rec}
}

type readRecord struct {
	s   *Stored
	oid string
	rec store.RegisterRecord
}

func (r readRecord) Lookup(ctx context.Context, oid string) (Entry, error) {
	if oid != r.oid {
		return r.s.Lookup(ctx, oid)
	}
	return r.s.judge(oid, r.rec)
}

// judge answers Lookup from the organisation's register record.
func (s *Stored) judge(oid string, rec store.RegisterRecord) (Entry, error) {
	if s.Stale(rec.Load.LoadedAt) {
		return Entry{}, &StaleError{LoadedAt: rec.Load.LoadedAt, MaxStale: s.maxStale}
	}
	if !rec.Known || rec.Register.SyncedAt.IsZero() || !rec.Register.LeftAt.IsZero() {
		return Entry{}, fmt.Errorf("%s is %w", oid, ErrNotListed)
	}
	e := RecordEntry(rec.Register)
	e.LongName = rec.LongName
	return e, nil
}
