package audit

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// memStore is an in-memory store whose events a test can tamper with; with mac
// set it keys each event as the store's KeyAudit does.
type memStore struct {
	events []store.AuditEvent
	mac    func(store.AuditEvent) string
}

func (m *memStore) AppendAudit(_ context.Context, e store.AuditEvent, seal func(store.AuditEvent) (string, error)) (store.AuditEvent, error) {
	e.Seq = int64(len(m.events)) + 1
	if len(m.events) > 0 {
		e.PrevHash = m.events[len(m.events)-1].Hash
	}
	e.Time = e.Time.Truncate(time.Microsecond)
	h, err := seal(e)
	if err != nil {
		return store.AuditEvent{}, err
	}
	e.Hash = h
	if m.mac != nil {
		e.MAC = m.mac(e)
	}
	m.events = append(m.events, e)
	return e, nil
}

// Audited is not needed by the tests on memStore; TestDoOnSQLite uses the real store.
func (m *memStore) Audited(context.Context, store.Seal, func(*store.Tx) ([]store.AuditEvent, error)) ([]store.AuditEvent, error) {
	return nil, errors.New("memStore: no transactions")
}

func (m *memStore) AuditedRows(ctx context.Context, seal store.Seal, change func(*store.Tx) ([]store.AuditEvent, error)) ([]store.AuditEvent, error) {
	return m.Audited(ctx, seal, change)
}

func (m *memStore) AuditEvents(_ context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	for _, e := range m.events {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func filled(t *testing.T) (*memStore, *Log) {
	t.Helper()
	m := &memStore{}
	l := New(m, nil)
	for _, e := range []Event{KeyGenerated{Label: "root"}, CertificateMade{Role: "root"}, CeremonyDone{Token: "varmenne"}} {
		if _, err := l.Append(context.Background(), Done("alice+bob", e)); err != nil {
			t.Fatal(err)
		}
	}
	return m, l
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(m *memStore)
		wantSeq int64 // 0: the chain is intact
	}{
		{"untouched log verifies", func(*memStore) {}, 0},
		{"changed actor", func(m *memStore) { m.events[1].Actor = "mallory" }, 2},
		{"changed outcome with its hash recomputed", func(m *memStore) {
			m.events[1].Outcome = Failed
			m.events[1].Hash = Hash(m.events[1])
		}, 3},
		{"removed event", func(m *memStore) { m.events = append(m.events[:1], m.events[2:]...) }, 2},
		{"reordered events", func(m *memStore) {
			m.events[1], m.events[2] = m.events[2], m.events[1]
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, l := filled(t)
			tt.tamper(m)
			n, err := l.Verify(context.Background())
			if tt.wantSeq == 0 {
				if err != nil || n != 3 {
					t.Fatalf("Verify = %d, %v; want 3 events, no error", n, err)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq {
				t.Fatalf("Verify error = %v, want a break at event %d", err, tt.wantSeq)
			}
		})
	}
}

func TestAppendRefusesIncompleteEvents(t *testing.T) {
	l := New(&memStore{}, nil)
	for name, r := range map[string]Record{
		"no actor":   {Event: KeySelfTest{Label: "x"}, Outcome: OK},
		"no event":   {Actor: "anna", Outcome: OK},
		"no outcome": {Actor: "anna", Event: KeySelfTest{Label: "x"}},
	} {
		if _, err := l.Append(context.Background(), r); err == nil {
			t.Errorf("an event with %s was appended", name)
		}
	}
}

func TestLogOnSQLite(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "varmenne.db"), eabSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := New(st, nil)
	for i := range 3 {
		if _, err := l.Append(ctx, Done("alice+bob", KeyGenerated{Label: "key " + string(rune('a'+i))})); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Verify(ctx); err != nil || n != 3 {
		t.Fatalf("Verify = %d, %v; want 3, nil", n, err)
	}
}

func TestObject(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.FixedZone("EET", 7200))
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{"names in snake case, lists joined", EABRequested{Request: "r1", Org: "1.2.246.10.1", Person: "Maija Meikäläinen",
			IdentifiedBy: "suomi.fi", TechnicalContact: "it@x.fi", Domains: []string{"a.fi", "b.fi"}},
			`request=r1 org=1.2.246.10.1 person="Maija Meikäläinen" identified_by=suomi.fi technical_contact=it@x.fi domains=a.fi,b.fi networks="" profiles=""`},
		{"times in UTC, omitempty left out", EABApproved{Request: "r1", KID: "k", Org: "o", RequestedBy: "anna", Expires: at},
			`request=r1 kid=k org=o requested_by=anna expires=2026-12-07T08:00:00Z`},
		{"a set omitempty field is written", EABApproved{Request: "r1", KID: "k", Org: "o", RequestedBy: "anna", Expires: at, SingleControl: true},
			`request=r1 kid=k org=o requested_by=anna expires=2026-12-07T08:00:00Z single_control=true`},
		{"a value cannot pass for another field", OrganisationSuspended{Org: "o", Reason: `x org=evil`},
			`org=o reason="x org=evil"`},
		{"quotes and control characters are escaped", OrganisationSuspended{Org: "o", Reason: "a\"b\nc"},
			`org=o reason="a\"b\nc"`},
		{"tag names", AccountCreated{Account: "a1", Org: "o", EABKID: "k"}, `account=a1 org=o eab_kid=k`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Object(tt.e); got != tt.want {
				t.Errorf("Object = %s\nwant       %s", got, tt.want)
			}
		})
	}
}

// TestCatalogueSerialises makes every event of the catalogue once, so a field of
// a type Object cannot write fails here and not in production.
func TestCatalogueSerialises(t *testing.T) {
	for _, e := range []Event{OrganisationAdded{}, RegisterImported{}, OrganisationNamesAdded{}, OrganisationNamesRemoved{},
		ConformityAdded{}, OrganisationSuspended{}, OrganisationResumed{}, EABRequested{}, EABApproved{}, EABRejected{},
		EABHandedOver{}, EABExpired{}, EABRevoked{}, KeyBlocked{}, OperatorAdded{}, OperatorDisabled{}, OperatorRemoved{}, OperatorRotated{},
		OperatorChangeRequested{}, OperatorChangeApproved{}, OperatorChangeRejected{},
		Login{}, LoginsThrottled{}, Logout{}, AccessDenied{}, OperatorCACreated{}, Revoked{}, RenewedEarly{}, AuditExported{}, AccountCreated{},
		AccountDeactivated{}, AccountKeyChanged{}, OrderCreated{}, PersistentRecordValidated{}, SignBegin{}, SignEnd{}, OCSPResponderIssued{}, KeyGenerated{},
		KeySelfTest{}, CertificateMade{}, CeremonyDone{}, HSMLogin{}, HSMRelogin{}, HSMSelfTest{}, ServeStarted{}, ServeStopped{},
		IssuerRegistered{}, IssuerActivated{}, IssuerRetireRequested{}, IssuerRetireWithdrawn{}, IssuerRetired{}} {
		if Object(e) == "" && reflect.TypeOf(e).NumField() > 0 && !allOmitEmpty(e) {
			t.Errorf("%T serialises to nothing", e)
		}
		if e.Action() == "" {
			t.Errorf("%T has no action", e)
		}
	}
}

func allOmitEmpty(e Event) bool {
	t := reflect.TypeOf(e)
	for i := range t.NumField() {
		if !strings.HasSuffix(t.Field(i).Tag.Get("audit"), ",omitempty") {
			return false
		}
	}
	return true
}

func TestDoOnSQLite(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "varmenne.db"), eabSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := New(st, nil)
	const oid = "1.2.246.10.1"
	err = l.Do(ctx, func(tx *store.Tx) ([]Record, error) {
		return []Record{Done("anna", OrganisationAdded{Org: oid, Name: "X"})}, tx.AddOrganisation(store.Organisation{OID: oid, Name: "X"})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Do(ctx, func(tx *store.Tx) ([]Record, error) {
		return []Record{Done("anna", OrganisationAdded{Org: oid, Name: "X"})}, tx.AddOrganisation(store.Organisation{OID: oid, Name: "X"})
	})
	if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("second add: %v, want ErrDuplicate", err)
	}
	events, err := st.AuditEvents(ctx, 0, 10)
	if err != nil || len(events) != 1 || events[0].Action != string(ActOrganisationAdd) || events[0].Object != Object(OrganisationAdded{Org: oid, Name: "X"}) {
		t.Fatalf("events %+v, %v: want exactly the one organisation.add", events, err)
	}
	if n, err := l.Verify(ctx); err != nil || n != 1 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

// eabSecret seals the EAB keys of the stores the tests open.
var eabSecret, _ = store.GenerateEABSecret()

// TestCountedAppends: the log tells its counters the events it committed and
// those it was handed but could not write; a change that refuses hands over none.
func TestCountedAppends(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "varmenne.db"), eabSecret)
	if err != nil {
		t.Fatal(err)
	}
	l := New(st, nil)
	var appended, failed int
	l.Count(func(n int) { appended += n }, func(n int) { failed += n })
	const oid = "1.2.246.10.1"
	add := func(tx *store.Tx) ([]Record, error) {
		return []Record{Done("anna", OrganisationAdded{Org: oid, Name: "X"}), Done("anna", OrganisationAdded{Org: oid, Name: "X"})},
			tx.AddOrganisation(store.Organisation{OID: oid, Name: "X"})
	}
	steps := []struct {
		name             string
		do               func() error
		appended, failed int
	}{
		{"a change and its two events", func() error { return l.Do(ctx, add) }, 2, 0},
		{"a change that refuses hands over no event", func() error { return l.Do(ctx, add) }, 2, 0},
		{"an event on its own", func() error { _, err := l.Append(ctx, Done("anna", KeyGenerated{Label: "k"})); return err }, 3, 0},
		{"an incomplete event is not written", func() error {
			return l.Do(ctx, func(*store.Tx) ([]Record, error) { return []Record{{Actor: "anna"}}, nil })
		}, 3, 1},
		{"an event the closed database cannot take", func() error {
			st.Close()
			_, err := l.Append(ctx, Done("anna", KeyGenerated{Label: "k2"}))
			return err
		}, 3, 2},
	}
	for _, s := range steps {
		err := s.do()
		if wantErr := s.name != "a change and its two events" && s.name != "an event on its own"; (err != nil) != wantErr {
			t.Errorf("%s: err %v", s.name, err)
		}
		if appended != s.appended || failed != s.failed {
			t.Errorf("%s: appended %d, failed %d; want %d, %d (err %v)", s.name, appended, failed, s.appended, s.failed, err)
		}
	}
}
