package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// testConsoleReads is the contract of the console's reads: the audit log filtered
// and paged in the query, and the certificates issued and expiring per day.
func testConsoleReads(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("audit filters and keyset paging", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("01", "ee01") // a certificate of org1
		day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		seal := func(e AuditEvent) (string, error) { return fmt.Sprintf("h%d", e.Seq), nil }
		for i, e := range []AuditEvent{
			{Actor: "anna", Action: "organisation.suspend", Object: "org=" + org1 + " reason=x"},
			{Actor: "rita", Action: "eab.request", Object: "request=r1 org=" + org2},
			{Actor: "anna", Action: "eab.approve", Object: "request=r1 kid=k org=" + org2},
			{Actor: "varmenne serve", Action: "order.create", Object: "order=o account=a org=" + org1 + " profile=p"},
			{Actor: "anna", Action: "certificate.revoke", Object: "serial=01 reason=superseded"},
			// An OID that only starts like org1, and a LIKE wildcard in a value.
			{Actor: "rita", Action: "eab.request", Object: "request=r2 org=" + org1 + "9"},
			{Actor: "rita", Action: "eab.request", Object: "request=r3 org=1.2.246.10.1234567_10.0"},
			// A serial that only starts like the certificate's.
			{Actor: "varmenne serve", Action: "certificate.sign.end", Object: "serial=011 sha256=ab"},
		} {
			e.Time = day.Add(time.Duration(i) * time.Hour)
			if _, err := w.s.AppendAudit(w.ctx, e, seal); err != nil {
				t.Fatal(err)
			}
		}
		seqs := func(f AuditFilter) []int64 {
			t.Helper()
			events, err := w.s.FindAuditEvents(w.ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			out := []int64{}
			for _, e := range events {
				out = append(out, e.Seq)
			}
			return out
		}
		for _, tt := range []struct {
			name string
			f    AuditFilter
			want []int64
		}{
			{"no filter", AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8}},
			{"actor", AuditFilter{Actor: "anna"}, []int64{1, 3, 5}},
			{"action", AuditFilter{Action: "eab.request"}, []int64{2, 6, 7}},
			{"organisation: the field, whole, not a prefix or a wildcard, and its certificates' events", AuditFilter{Org: org1}, []int64{1, 4, 5}},
			{"organisation without certificates", AuditFilter{Org: org2}, []int64{2, 3}},
			{"time range, until exclusive", AuditFilter{Since: day.Add(time.Hour), Until: day.Add(3 * time.Hour)}, []int64{2, 3}},
			{"filters together", AuditFilter{Actor: "anna", Org: org2}, []int64{3}},
			{"keyset: after", AuditFilter{Actor: "anna", After: 1, Limit: 1}, []int64{3}},
			{"keyset: next page", AuditFilter{Actor: "anna", After: 3, Limit: 1}, []int64{5}},
			{"newest first", AuditFilter{Newest: true, Limit: 2}, []int64{8, 7}},
			{"newest before", AuditFilter{Actor: "anna", Newest: true, Before: 5, Limit: 5}, []int64{3, 1}},
			{"nothing matches", AuditFilter{Actor: "nobody"}, []int64{}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if got := seqs(tt.f); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("FindAuditEvents(%+v) = %v, want %v", tt.f, got, tt.want)
				}
			})
		}
	})
	t.Run("certificates issued and expiring per day", func(t *testing.T) {
		w := newWorld(t, open)
		d1 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		for i, c := range []struct {
			created, notAfter time.Time
		}{
			{d1.Add(time.Hour), d1.AddDate(0, 0, 10)},
			{d1.Add(23*time.Hour + 59*time.Minute), d1.AddDate(0, 0, 10).Add(time.Hour)},
			{d1.AddDate(0, 0, 2), d1.AddDate(0, 0, 12)},
			{d1.AddDate(0, 0, -1), d1.AddDate(0, 0, 40)}, // before the range; expires after it
			{d1.AddDate(0, 0, 3), d1.AddDate(0, 0, 12)},  // revoked below
		} {
			serial := fmt.Sprintf("%02x", i+1)
			w.issueAs(serial, "ee"+serial, func(x *Certificate) { x.CreatedAt, x.NotAfter = c.created, c.notAfter })
		}
		w.must(w.s.Revoke(w.ctx, Revocation{Serial: "05", RevokedAt: d1, Reason: 4, PerformedBy: "anna"}, nil))
		issued, err := w.s.IssuedPerDay(w.ctx, d1, d1.AddDate(0, 0, 30))
		w.must(err)
		if want := []DayCount{{d1, 2}, {d1.AddDate(0, 0, 2), 1}, {d1.AddDate(0, 0, 3), 1}}; !reflect.DeepEqual(issued, want) {
			t.Errorf("IssuedPerDay = %v, want %v", issued, want)
		}
		expiring, err := w.s.ExpiringPerDay(w.ctx, d1, d1.AddDate(0, 0, 30))
		w.must(err)
		if want := []DayCount{{d1.AddDate(0, 0, 10), 2}, {d1.AddDate(0, 0, 12), 1}}; !reflect.DeepEqual(expiring, want) {
			t.Errorf("ExpiringPerDay = %v, want %v (the revoked one left out)", expiring, want)
		}
	})
}
