package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testRegister is the contract of register imports, organisation listings and
// certificates of conformity.
func testRegister(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("imports", func(t *testing.T) { testRegisterImports(t, open) })
	t.Run("import refusals", func(t *testing.T) { testRegisterImportRefusals(t, open) })
	t.Run("valid certificates and counts", func(t *testing.T) { testValidCertificates(t, open) })
	t.Run("certificates of conformity", func(t *testing.T) { testConformity(t, open) })
	t.Run("register record and load", func(t *testing.T) { testRegisterRecord(t, open) })
}

// testRegisterRecord: one read answers what the stored register says of an
// organisation and how old the copy is, whether or not either exists.
func testRegisterRecord(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	rec, err := w.s.GetRegisterRecord(w.ctx, org1)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Load.LoadedAt.IsZero() || !rec.Known || !rec.Register.SyncedAt.IsZero() {
		t.Fatalf("before any load: %+v; want no load and the organisation known, never listed", rec)
	}
	if l, err := w.s.LastRegisterLoad(w.ctx); err != nil || !l.LoadedAt.IsZero() {
		t.Fatalf("LastRegisterLoad before any load = %+v, %v", l, err)
	}
	if _, err := w.s.ImportRegister(w.ctx, []RegisterImport{{OID: org1, LongName: "Klinikka Oy, Helsinki", Register: regData("active")}}, t0); err != nil {
		t.Fatal(err)
	}
	for i, l := range []RegisterLoad{{Source: "first.json", LoadedAt: t0, Records: 3}, {Source: "https://register.example/x", LoadedAt: t0.Add(time.Hour), Records: 4}} {
		if err := w.s.RecordRegisterLoad(w.ctx, l); err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
	}
	want := RegisterLoad{Source: "https://register.example/x", LoadedAt: t0.Add(time.Hour), Records: 4}
	same := func(a, b RegisterLoad) bool {
		return a.Source == b.Source && a.LoadedAt.Equal(b.LoadedAt) && a.Records == b.Records
	}
	if l, err := w.s.LastRegisterLoad(w.ctx); err != nil || !same(l, want) {
		t.Fatalf("LastRegisterLoad = %+v, %v; want the latest %+v", l, err, want)
	}
	rec, err = w.s.GetRegisterRecord(w.ctx, org1)
	if err != nil {
		t.Fatal(err)
	}
	wantReg := regData("active")
	wantReg.OrgOID, wantReg.SyncedAt = org1, t0
	if !same(rec.Load, want) || !rec.Known || rec.LongName != "Klinikka Oy, Helsinki" || !sameRegister(rec.Register, wantReg) ||
		!rec.Register.SyncedAt.Equal(t0) || !rec.Register.LeftAt.IsZero() {
		t.Fatalf("record %+v; want load %+v, long name and register data %+v", rec, want, wantReg)
	}
	// The organisation and its record in one read: as the two reads answer them.
	both := func(when string) {
		t.Helper()
		o, r, err := w.s.GetOrganisationRecord(w.ctx, org1)
		if err != nil {
			t.Fatalf("%s: GetOrganisationRecord: %v", when, err)
		}
		wantOrg, err := w.s.GetOrganisation(w.ctx, org1)
		w.must(err)
		wantRec, err := w.s.GetRegisterRecord(w.ctx, org1)
		w.must(err)
		if !reflect.DeepEqual(o, wantOrg) || !same(r.Load, wantRec.Load) || r.Known != wantRec.Known || r.LongName != wantRec.LongName ||
			!sameRegister(r.Register, wantRec.Register) || !r.Register.SyncedAt.Equal(wantRec.Register.SyncedAt) {
			t.Errorf("%s: GetOrganisationRecord = %+v, %+v; want %+v, %+v", when, o, r, wantOrg, wantRec)
		}
	}
	both("after loads")
	rec, err = w.s.GetRegisterRecord(w.ctx, "1.2.246.10.999.10.0")
	if err != nil || rec.Known || !same(rec.Load, want) {
		t.Fatalf("record of an unknown organisation = %+v, %v; want unknown with the load", rec, err)
	}
	if _, _, err := w.s.GetOrganisationRecord(w.ctx, "1.2.246.10.999.10.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOrganisationRecord of an unknown organisation: %v, want ErrNotFound", err)
	}
	w2 := newWorld(t, open)
	w = w2
	both("before any load")
}

const org3 = "1.2.246.10.3333333.10.0"

func regData(status string) OrganisationRegister {
	return OrganisationRegister{Abbreviation: "KLI", BusinessID: "1234567-8", Sector: "private", Intermediary: true,
		Status: status, BeginDate: t0.AddDate(-10, 0, 0), ExpirationDate: t0.AddDate(70, 0, 0), Parent: org2}
}

// summary is a change in a form that compares well: OID and what happened.
func summary(cs []RegisterChange) []string {
	var out []string
	for _, c := range cs {
		what := "unchanged"
		switch {
		case c.Added:
			what = "added"
		case c.Left:
			what = "left"
		case c.Updated:
			what = "updated"
		}
		out = append(out, c.OID+" "+what)
	}
	return out
}

func testRegisterImports(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	t1, t2, t3 := t0.Add(24*time.Hour), t0.Add(48*time.Hour), t0.Add(72*time.Hour)
	imp := func(at time.Time, want []string, orgs ...RegisterImport) []RegisterChange {
		t.Helper()
		cs, err := w.s.ImportRegister(w.ctx, orgs, at)
		if err != nil {
			t.Fatalf("ImportRegister: %v", err)
		}
		if got := summary(cs); !reflect.DeepEqual(got, want) {
			t.Fatalf("changes %q, want %q", got, want)
		}
		return cs
	}
	one := RegisterImport{OID: org1, Name: "ignored for an existing organisation", LongName: "Klinikka Oy, Helsinki", Register: regData("active")}
	three := RegisterImport{OID: org3, Name: "Uusi Oy", LongName: "Uusi Oy, vastaanotto", Register: OrganisationRegister{Status: "active", Sector: "public"}}

	t.Run("the first import adds and updates; one added by hand and not listed is left alone", func(t *testing.T) {
		cs := imp(t0, []string{org1 + " updated", org3 + " added"}, three, one)
		if !cs[0].Before.SyncedAt.IsZero() || cs[0].BeforeLongName != "" {
			t.Errorf("before of %s = %+v, %q; want never imported", org1, cs[0].Before, cs[0].BeforeLongName)
		}
		o, err := w.s.GetOrganisation(w.ctx, org1)
		w.must(err)
		if o.Name != "Org "+org1 || o.LongName != "Klinikka Oy, Helsinki" {
			t.Errorf("organisation %s: name %q long name %q; want the name kept, the long name replaced", org1, o.Name, o.LongName)
		}
		n, err := w.s.GetOrganisation(w.ctx, org3)
		w.must(err)
		if n.Name != "Uusi Oy" || n.LongName != "Uusi Oy, vastaanotto" || len(n.Domains) != 0 || !n.CreatedAt.Equal(t0) {
			t.Errorf("added organisation = %+v", n)
		}
		r, err := w.s.GetOrganisationRegister(w.ctx, org1)
		w.must(err)
		want := regData("active")
		want.OrgOID, want.SyncedAt = org1, t0.UTC()
		want.BeginDate, want.ExpirationDate = want.BeginDate.UTC(), want.ExpirationDate.UTC()
		if !reflect.DeepEqual(*r, want) {
			t.Errorf("register data\n got %+v\nwant %+v", *r, want)
		}
		r2, err := w.s.GetOrganisationRegister(w.ctx, org2)
		w.must(err)
		if !r2.SyncedAt.IsZero() || !r2.LeftAt.IsZero() || r2.Status != "" {
			t.Errorf("an organisation no import listed has register data %+v", r2)
		}
	})
	t.Run("an organisation the next import lacks has left; one listed again unchanged", func(t *testing.T) {
		cs := imp(t1, []string{org1 + " left", org3 + " unchanged"}, three)
		if !cs[0].After.LeftAt.Equal(t1) || !cs[0].Before.LeftAt.IsZero() {
			t.Errorf("left change = %+v", cs[0])
		}
		r, err := w.s.GetOrganisationRegister(w.ctx, org1)
		w.must(err)
		if !r.LeftAt.Equal(t1.UTC()) || !r.SyncedAt.Equal(t0.UTC()) || r.Status != "active" {
			t.Errorf("register data after leaving = %+v; want left at %s, synced at %s, data kept", r, t1, t0)
		}
	})
	t.Run("an organisation that comes back is updated and no longer left", func(t *testing.T) {
		back := one
		back.Register = regData("passive")
		cs := imp(t2, []string{org1 + " updated", org3 + " left"}, back)
		if cs[0].Before.Status != "active" || cs[0].After.Status != "passive" || !cs[0].After.LeftAt.IsZero() {
			t.Errorf("change = %+v", cs[0])
		}
		r, err := w.s.GetOrganisationRegister(w.ctx, org1)
		w.must(err)
		if !r.LeftAt.IsZero() || r.Status != "passive" || !r.SyncedAt.Equal(t2.UTC()) {
			t.Errorf("register data = %+v", r)
		}
	})
	t.Run("an organisation that left is not reported as leaving again", func(t *testing.T) {
		back := one
		back.Register = regData("passive")
		imp(t3, []string{org1 + " unchanged"}, back)
	})
	t.Run("a changed long name is an update", func(t *testing.T) {
		renamed := one
		renamed.Register = regData("passive")
		renamed.LongName = "Klinikka Oy, Espoo"
		cs := imp(t3, []string{org1 + " updated"}, renamed)
		if cs[0].BeforeLongName != "Klinikka Oy, Helsinki" {
			t.Errorf("before long name %q", cs[0].BeforeLongName)
		}
	})
	t.Run("times finer than the store keeps are no change", func(t *testing.T) {
		same := one
		same.Register = regData("passive")
		same.LongName = "Klinikka Oy, Espoo"
		same.Register.ExpirationDate = same.Register.ExpirationDate.Add(500 * time.Nanosecond)
		imp(t3, []string{org1 + " unchanged"}, same)
	})
	t.Run("listing shows every organisation by OID with its register data", func(t *testing.T) {
		all, err := w.s.ListOrganisations(w.ctx)
		w.must(err)
		var got []string
		for _, o := range all {
			got = append(got, o.OID+" "+o.LongName+" "+o.Register.Status)
		}
		want := []string{org1 + " Klinikka Oy, Espoo passive", org3 + " Uusi Oy, vastaanotto active", org2 + "  "}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ListOrganisations = %q, want %q", got, want)
		}
		if all[0].Register.OrgOID != org1 || !all[0].Register.Intermediary || all[1].Register.LeftAt.IsZero() {
			t.Errorf("register data in the listing: %+v / %+v", all[0].Register, all[1].Register)
		}
	})
}

func testRegisterImportRefusals(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	tests := []struct {
		name  string
		orgs  []RegisterImport
		wants string
	}{
		{"an empty import", nil, "lists no organisations"},
		{"an OID twice", []RegisterImport{{OID: org3, Name: "A"}, {OID: org3, Name: "B"}}, "listed twice"},
		{"an OID missing", []RegisterImport{{Name: "A"}}, "without an OID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.s.ImportRegister(w.ctx, tt.orgs, t0)
			if err == nil || !strings.Contains(err.Error(), tt.wants) {
				t.Errorf("ImportRegister: %v, want %q", err, tt.wants)
			}
		})
	}
	if _, err := w.s.GetOrganisation(w.ctx, org3); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused import stored %s (%v)", org3, err)
	}
	if _, err := w.s.GetOrganisationRegister(w.ctx, org3); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOrganisationRegister of an unknown organisation: %v, want ErrNotFound", err)
	}
}

func testValidCertificates(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	now := t0.Add(24 * time.Hour)
	valid := cert("0a", "", "aa")
	late := cert("0b", "", "bb")
	late.NotAfter = t0.AddDate(2, 0, 0)
	expired := cert("0c", "", "cc")
	expired.NotAfter = now.Add(-time.Second)
	revoked := cert("0d", "", "dd")
	for _, c := range []Certificate{late, valid, expired, revoked} {
		w.issueCert(c)
	}
	w.must(w.s.Revoke(w.ctx, Revocation{Serial: "0d", RevokedAt: t0, Reason: 4}, nil))

	got, err := w.s.ValidCertificates(w.ctx, org1, now)
	w.must(err)
	var serials []string
	for _, c := range got {
		serials = append(serials, c.Serial)
	}
	if want := []string{"0a", "0b"}; !reflect.DeepEqual(serials, want) {
		t.Errorf("ValidCertificates = %q, want %q (unexpired, unrevoked, soonest expiry first)", serials, want)
	}
	if len(got) > 0 && (got[0].Profile != "sote-server" || !reflect.DeepEqual(got[0].Names, []string{"a.example.fi"})) {
		t.Errorf("certificate fields = %+v", got[0])
	}
	if other, err := w.s.ValidCertificates(w.ctx, org2, now); err != nil || len(other) != 0 {
		t.Errorf("ValidCertificates of another organisation = %v, %v", other, err)
	}

	c, err := w.s.CountOrganisation(w.ctx, org1)
	w.must(err)
	if want := (OrganisationCounts{EABKeys: 3, Accounts: 1, Certificates: 4}); c != want {
		t.Errorf("CountOrganisation = %+v, want %+v", c, want)
	}
	if _, err := w.s.CountOrganisation(w.ctx, org3); !errors.Is(err, ErrNotFound) {
		t.Errorf("CountOrganisation of an unknown organisation: %v, want ErrNotFound", err)
	}
}

func testConformity(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	first := ConformityCertificate{OrgOID: org1, System: "Potilastietojärjestelmä X 4.2", Expires: t0.AddDate(1, 0, 0), AddedBy: "operaattori", CreatedAt: t0}
	later := ConformityCertificate{OrgOID: org1, System: "Apteekkijärjestelmä Y", Expires: t0.AddDate(3, 0, 0), AddedBy: "operaattori", CreatedAt: t0}
	renewed := first
	renewed.Expires = t0.AddDate(2, 0, 0)
	for _, c := range []ConformityCertificate{first, later, renewed} {
		w.must(w.s.AddConformityCertificate(w.ctx, c))
	}
	got, err := w.s.ListConformityCertificates(w.ctx, org1)
	w.must(err)
	var keys []string
	for _, c := range got {
		keys = append(keys, c.System+" "+c.Expires.Format(time.DateOnly))
	}
	if want := []string{"Apteekkijärjestelmä Y 2028-03-04", "Potilastietojärjestelmä X 4.2 2027-03-04", "Potilastietojärjestelmä X 4.2 2026-03-04"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("ListConformityCertificates = %q, want %q (latest expiry first)", keys, want)
	}
	if got[0].AddedBy != "operaattori" || !got[0].CreatedAt.Equal(t0) || got[0].OrgOID != org1 {
		t.Errorf("fields = %+v", got[0])
	}
	refusals := []struct {
		name string
		c    ConformityCertificate
		want error
	}{
		{"the same certificate twice", first, ErrDuplicate},
		{"an unknown organisation", ConformityCertificate{OrgOID: org3, System: "X", Expires: t0}, ErrNotFound},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			if err := w.s.AddConformityCertificate(w.ctx, tt.c); !errors.Is(err, tt.want) {
				t.Errorf("AddConformityCertificate: %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("a blank system or no expiry", func(t *testing.T) {
		for _, c := range []ConformityCertificate{{OrgOID: org1, System: " ", Expires: t0}, {OrgOID: org1, System: "X"}} {
			if err := w.s.AddConformityCertificate(w.ctx, c); err == nil {
				t.Errorf("AddConformityCertificate(%+v) succeeded", c)
			}
		}
	})
	if other, err := w.s.ListConformityCertificates(w.ctx, org2); err != nil || len(other) != 0 {
		t.Errorf("another organisation's certificates = %v, %v", other, err)
	}
}
