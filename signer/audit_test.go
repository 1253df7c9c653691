package signer

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// storeHarness is a harness whose intents and audit log are the real SQLite store:
// each step of the key's use is a transaction there, with its audit event.
type storeHarness struct {
	*harness
	st   *store.SQL
	path string
	log  *audit.Log
	aud  *eventAuditor
}

// newStoreHarness wires a CA to a new SQLite store holding the order of
// testRequest, and to the audit log on that store.
func newStoreHarness(t *testing.T) *storeHarness {
	t.Helper()
	ctx := context.Background()
	secret, _ := store.GenerateEABSecret()
	path := filepath.Join(t.TempDir(), "varmenne.db")
	st, err := store.OpenSQLite(ctx, path, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// An intent belongs to an order, of an account, of an organisation.
	const org = "1.2.246.10.1234567.10.0"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.AddOrganisation(ctx, store.Organisation{OID: org, Name: "Esimerkki Oy", CreatedAt: testNow}))
	must(st.CreateEAB(ctx, store.EABKey{KID: "kid-1", OrgOID: org, HMACKey: []byte("secret"), Status: store.EABApproved, CreatedAt: testNow}))
	must(st.CreateAccount(ctx, store.Account{ID: "acct-1", Thumbprint: "thumb-1", JWK: []byte(`{}`), OrgOID: org,
		Status: "valid", CreatedAt: testNow}, "kid-1"))
	must(st.CreateOrder(ctx, store.Order{ID: "order-1", AccountID: "acct-1", OrgOID: org, Status: "processing",
		Expires: testNow.Add(time.Hour), Names: []string{"www.example.fi", "example.fi"}, Profile: "sote-server",
		CreatedAt: testNow}, nil))

	h := newHarness(t, "p256", testProfile())
	log := audit.New(st, nil)
	aud := &eventAuditor{ev: h.ev, next: audit.Recorder{Log: log, Actor: "varmenne serve"}}
	h.ca.rec = &storeRecorder{ev: h.ev, st: st}
	h.ca.WithAuditor(aud)
	return &storeHarness{harness: h, st: st, path: path, log: log, aud: aud}
}

// intent is the one intent of the store, as `varmenne intents list` reads it.
func (h *storeHarness) intent(t *testing.T) store.IssuanceIntent {
	t.Helper()
	list, err := h.st.IntentsWithoutCertificate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d intents without a certificate, want 1", len(list))
	}
	return list[0]
}

func (h *storeHarness) events(t *testing.T) []store.AuditEvent {
	t.Helper()
	list, err := h.st.AuditEvents(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// failAuditWrites makes every insert into the audit log fail, as a full disk or a
// revoked grant would.
func (h *storeHarness) failAuditWrites(t *testing.T) {
	t.Helper()
	db, err := sql.Open("sqlite", h.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END`); err != nil {
		t.Fatal(err)
	}
}

// storeRecorder is the store's RecordIntent and FailIntent, noting each call.
type storeRecorder struct {
	ev *events
	st *store.SQL
}

func (r *storeRecorder) RecordIntent(ctx context.Context, in store.IssuanceIntent) error {
	r.ev.add("intent")
	return r.st.RecordIntent(ctx, in)
}

func (r *storeRecorder) FailIntent(ctx context.Context, serial, reason string) error {
	r.ev.add("fail")
	return r.st.FailIntent(ctx, serial, reason)
}

// eventAuditor notes each event in the harness's event order, then passes it on;
// the first failEnds sign.end changes fail as an unreachable database would.
type eventAuditor struct {
	ev       *events
	next     Auditor
	mu       sync.Mutex
	failEnds int
}

func (a *eventAuditor) Audit(ctx context.Context, e audit.Event, outcome string) error {
	a.ev.add(string(e.Action()))
	return a.next.Audit(ctx, e, outcome)
}

func (a *eventAuditor) Change(ctx context.Context, e audit.Event, outcome string, change func(tx *store.Tx) error) error {
	a.ev.add(string(e.Action()))
	a.mu.Lock()
	down := e.Action() == audit.ActSignEnd && a.failEnds > 0
	if down {
		a.failEnds--
	}
	a.mu.Unlock()
	if down {
		return errors.New("store: audited change: dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return a.next.Change(ctx, e, outcome, change)
}

func TestIssueAuditsSignature(t *testing.T) {
	t.Run("begin before the signature, end after, each with the intent's step", func(t *testing.T) {
		h := newStoreHarness(t)
		issued, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
		if err != nil {
			t.Fatal(err)
		}
		// The intent is recorded in the sign.begin event's transaction, not through
		// the recorder: one durable commit before the key is asked.
		if want := []string{string(audit.ActSignBegin), "sign", string(audit.ActSignEnd)}; !slices.Equal(h.ev.log, want) {
			t.Errorf("events = %v, want %v", h.ev.log, want)
		}
		events := h.events(t)
		if len(events) != 2 {
			t.Fatalf("%d audit events, want 2", len(events))
		}
		begin, end := events[0], events[1]
		for _, want := range []string{"serial=" + issued.Serial, "order=order-1", "profile=" + testProfile().Name, "names=www.example.fi,example.fi", "issuer="} {
			if !strings.Contains(begin.Object, want) {
				t.Errorf("begin object %q lacks %q", begin.Object, want)
			}
		}
		sum := sha256.Sum256(issued.DER)
		sha := hex.EncodeToString(sum[:])
		if end.Outcome != audit.OK || !strings.Contains(end.Object, "sha256="+sha) || !strings.Contains(end.Object, issued.Serial) {
			t.Errorf("end event = %+v, want ok with the serial and the certificate's SHA-256", end)
		}
		if n, err := h.log.Verify(context.Background()); err != nil || n != 2 {
			t.Errorf("Verify = %d, %v; want 2, nil", n, err)
		}
		in := h.intent(t)
		if in.Status != store.IntentPending || in.KeyUse != store.KeySigned || in.CertSHA256 != sha || string(in.DER) != string(issued.DER) {
			t.Errorf("intent %s key %s sha256 %s (%d bytes kept), want pending, signed, %s and the certificate",
				in.Status, in.KeyUse, in.CertSHA256, len(in.DER), sha)
		}
	})
	t.Run("a failing audit log means no signature", func(t *testing.T) {
		h := newStoreHarness(t)
		h.failAuditWrites(t)
		got, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
		if err == nil || !errors.Is(err, ErrUnsigned) || got != nil {
			t.Fatalf("Issue = %v, %v; want nil and an ErrUnsigned", got, err)
		}
		if n := h.key.ev.count("sign"); n != 0 {
			t.Errorf("issuer key signed %d times, want 0", n)
		}
		// The intent was never marked asked: it is closed, its key never asked.
		in := h.intent(t)
		if in.Status != store.IntentFailed || in.KeyUse != store.KeyNotAsked || !strings.Contains(in.Reason, "audit log") {
			t.Errorf("intent %s key %s (%q), want failed, never asked, for the audit log", in.Status, in.KeyUse, in.Reason)
		}
		if n := len(h.events(t)); n != 0 {
			t.Errorf("%d audit events, want none", n)
		}
	})
	t.Run("a failed signature is audited as failed and leaves the intent asked", func(t *testing.T) {
		h := newStoreHarness(t)
		h.key.corrupt = func(sig []byte) []byte { return append([]byte(nil), sig[:len(sig)-1]...) }
		if _, err := h.ca.Issue(context.Background(), testRequest(t, "p256")); err == nil {
			t.Fatal("Issue succeeded with a corrupt signature")
		}
		events := h.events(t)
		if len(events) != 2 || events[1].Action != string(audit.ActSignEnd) || !strings.HasPrefix(events[1].Outcome, audit.Failed) {
			t.Errorf("events = %+v, want begin and a failed end", events)
		}
		if in := h.intent(t); in.Status != store.IntentPending || in.KeyUse != store.KeyAsked {
			t.Errorf("intent %s key %s, want pending and asked (the key signed something: revoke the serial)", in.Status, in.KeyUse)
		}
	})
	t.Run("a key that did not sign closes the intent with its end event", func(t *testing.T) {
		h := newStoreHarness(t)
		h.key.refuse = fmt.Errorf("pkcs11: no session: %w", ErrUnsigned)
		if _, err := h.ca.Issue(context.Background(), testRequest(t, "p256")); !errors.Is(err, ErrUnsigned) {
			t.Fatalf("Issue error %v, want ErrUnsigned", err)
		}
		in := h.intent(t)
		if in.Status != store.IntentFailed || !strings.Contains(in.Reason, "issuer key not used") {
			t.Errorf("intent %s (%q), want failed as the key did not sign", in.Status, in.Reason)
		}
		events := h.events(t)
		if len(events) != 2 || events[1].Action != string(audit.ActSignEnd) || !strings.HasPrefix(events[1].Outcome, audit.Failed) {
			t.Errorf("events = %+v, want begin and a failed end", events)
		}
	})
	t.Run("the signed mark is tried again while the database is away", func(t *testing.T) {
		h := newStoreHarness(t)
		h.aud.failEnds = 3
		issued, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		if n := h.ev.count(string(audit.ActSignEnd)); n != 4 {
			t.Errorf("sign.end written %d times, want 3 failures and a success", n)
		}
		if in := h.intent(t); in.KeyUse != store.KeySigned || string(in.DER) != string(issued.DER) {
			t.Errorf("intent key %s, want signed with the certificate", in.KeyUse)
		}
		if events := h.events(t); len(events) != 2 || events[1].Action != string(audit.ActSignEnd) {
			t.Errorf("events = %+v, want one begin and one end", events)
		}
	})
}

// TestRetiredGenerationSignsNothing: once the database says the CA's issuer
// generation is retired (two administrators, store.RetireGeneration), an issuance
// on a replica that still offers it stops before the key: the step that asks the
// key (BeginSigning) refuses it, the key is never called, and the intent is failed
// with a reason that names the retirement.
func TestRetiredGenerationSignsNothing(t *testing.T) {
	h := newStoreHarness(t)
	ctx := context.Background()
	gen := func(name string, n int) store.IssuerGeneration {
		return store.IssuerGeneration{Name: name, Hierarchy: "production", Generation: n, Subject: "CN=" + name, CertSHA256: "sha-" + name,
			NotBefore: testNow, NotAfter: testNow.AddDate(5, 0, 0)}
	}
	for i, name := range []string{"production", "production-2"} {
		if _, _, err := h.st.RegisterGeneration(ctx, gen(name, i+1), "test", testNow); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.st.ActivateGeneration(ctx, "production-2", "anna", testNow); err != nil {
		t.Fatal(err)
	}
	if err := h.st.RequestRetirement(ctx, "production", "rolled over", "anna", testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.RetireGeneration(ctx, "production", "bob", store.Revocation{RevokedAt: testNow, RequestedAt: testNow, Reason: 5,
		RequestedBy: "anna", IdentifiedBy: "credentials", PerformedBy: "bob"}, testNow); err != nil {
		t.Fatal(err)
	}

	_, err := h.ca.Issue(ctx, testRequest(t, "p256"))
	if !errors.Is(err, store.ErrIssuerRetired) || !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Issue on a retired generation: %v, want ErrIssuerRetired and ErrUnsigned", err)
	}
	if n := h.key.ev.count("sign"); n != 0 {
		t.Errorf("the retired generation's key was asked to sign %d times", n)
	}
	in := h.intent(t)
	if in.Status != "failed" || !strings.Contains(in.Reason, "issuer production is retired") {
		t.Errorf("the intent is %s (%q), want failed naming the retirement", in.Status, in.Reason)
	}
}

// TestIssueStoresWithTheEndEvent: the caller's step (Request.Store: storing the
// certificate) commits in the transaction of the certificate.sign.end event; when
// it is refused, the signature is recorded alone, as without one, and the caller
// is told to store the certificate itself.
func TestIssueStoresWithTheEndEvent(t *testing.T) {
	t.Run("stored with the end event", func(t *testing.T) {
		h := newStoreHarness(t)
		var stored []string
		req := testRequest(t, "p256")
		req.Store = func(tx *store.Tx, issued *Issued) error {
			stored = append(stored, issued.Serial)
			return tx.FinishIssuance(store.Certificate{Serial: issued.Serial, Issuer: issued.Issuer, DER: issued.DER,
				Names: req.Names, KeyHash: issued.KeyHash, NotBefore: issued.Cert.NotBefore, NotAfter: issued.Cert.NotAfter,
				OrgOID: "1.2.246.10.1234567.10.0", AccountID: "acct-1", OrderID: "order-1", Profile: "sote-server", CreatedAt: testNow})
		}
		issued, err := h.ca.Issue(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if !issued.Stored || len(stored) != 1 {
			t.Fatalf("Stored %v after %d store steps, want true after one", issued.Stored, len(stored))
		}
		c, err := h.st.GetCertificate(context.Background(), issued.Serial)
		if err != nil || string(c.DER) != string(issued.DER) {
			t.Fatalf("stored certificate: %v", err)
		}
		if list, err := h.st.IntentsWithoutCertificate(context.Background()); err != nil || len(list) != 0 {
			t.Errorf("intents without a certificate: %v, %v; want none (issued)", list, err)
		}
		events := h.events(t)
		if len(events) != 2 || events[1].Action != string(audit.ActSignEnd) || events[1].Outcome != audit.OK {
			t.Errorf("events = %+v, want begin and one ok end", events)
		}
	})
	t.Run("a refused step leaves the signature recorded alone", func(t *testing.T) {
		h := newStoreHarness(t)
		req := testRequest(t, "p256")
		req.Store = func(tx *store.Tx, issued *Issued) error { return store.ErrKeyInUse }
		issued, err := h.ca.Issue(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if issued.Stored {
			t.Error("Stored after a refused step")
		}
		if in := h.intent(t); in.Status != store.IntentPending || in.KeyUse != store.KeySigned || string(in.DER) != string(issued.DER) {
			t.Errorf("intent %s key %s, want pending and signed with the certificate", in.Status, in.KeyUse)
		}
		events := h.events(t)
		if len(events) != 2 || events[1].Action != string(audit.ActSignEnd) || events[1].Outcome != audit.OK {
			t.Errorf("events = %+v, want begin and one ok end", events)
		}
	})
}
