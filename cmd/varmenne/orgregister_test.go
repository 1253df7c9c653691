package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/store"
)

// The sample register of policy/thl: 7 records, 4 of them active now.
const (
	registerJSON = "../../policy/thl/testdata/register.json"
	registerXML  = "../../policy/thl/testdata/register.xml"
	registerP1   = "../../policy/thl/testdata/register-p1.json"

	pharmacyOID     = "1.2.246.10.12345678.10.0" // private, active
	districtOID     = "1.2.246.10.23456789.10.0" // public, active
	unitOID         = "1.2.246.10.23456789.10.1001"
	intermediaryOID = "1.2.246.10.34567890.10.0"
	handOID         = "1.2.246.10.11111111.10.0" // added by hand, not in the register
)

// mustRun runs a command that must succeed and returns its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	err, stdout, stderr := runCmd(t, args...)
	if err != nil {
		t.Fatalf("%s: %v (stderr %q)", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

func wantLines(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// showField is the value of a "  label: value" line of org show.
func showField(out, label string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "  "+label+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "(no " + label + " line)"
}

// issueFor stores a certificate of the organisation valid until notAfter, as a whole
// issuance does (EAB key, account, ready order, intent, certificate).
func issueFor(t *testing.T, st *store.SQL, oid, serial string, notAfter time.Time) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	id := oid + "-" + serial
	steps := []func() error{
		func() error {
			return st.CreateEAB(ctx, store.EABKey{KID: "kid-" + id, OrgOID: oid, HMACKey: []byte("k"), Status: store.EABApproved, CreatedAt: now})
		},
		func() error {
			return st.CreateAccount(ctx, store.Account{ID: "acct-" + id, Thumbprint: "tp-" + id, JWK: []byte("{}"), OrgOID: oid,
				Status: "valid", CreatedAt: now}, "kid-"+id)
		},
		func() error {
			a := store.Authorization{ID: "authz-" + id, AccountID: "acct-" + id, Name: "www.apteekki.example", Status: "valid",
				Expires: now.Add(time.Hour), CreatedAt: now, Challenges: []store.Challenge{{ID: "ch-" + id, AuthzID: "authz-" + id,
					Type: "http-01", Token: "t-" + id, Status: "valid", Validated: now}}}
			return st.CreateOrder(ctx, store.Order{ID: "o-" + id, AccountID: "acct-" + id, OrgOID: oid, Status: "ready",
				Expires: now.Add(time.Hour), Names: []string{"www.apteekki.example"}, Profile: "sote-server",
				AuthzIDs: []string{a.ID}, CreatedAt: now}, []store.Authorization{a})
		},
		func() error { return st.BeginFinalize(ctx, "o-"+id) },
		func() error {
			return st.RecordIntent(ctx, store.IssuanceIntent{Serial: serial, OrderID: "o-" + id, Issuer: "production",
				Names: []string{"www.apteekki.example"}, KeyHash: serial + "aa", CreatedAt: now})
		},
		func() error {
			return st.FinishIssuance(ctx, store.Certificate{Serial: serial, Issuer: "production", DER: []byte("der"),
				Names: []string{"www.apteekki.example"}, KeyHash: serial + "aa", NotBefore: now, NotAfter: notAfter,
				OrgOID: oid, AccountID: "acct-" + id, OrderID: "o-" + id, Profile: "sote-server", CreatedAt: now})
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("issuing %s, step %d: %v", serial, i, err)
		}
	}
}

func TestOrgImport(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	data := newData(t)
	mustRun(t, "org", "add", "--data", data, "--oid", pharmacyOID, "--name", "Apteekki Oy", "--domain", "apteekki.example")
	mustRun(t, "org", "add", "--data", data, "--oid", handOID, "--name", "Käsin Oy", "--domain", "kasin.example")

	t.Run("the first import adds the active organisations and updates the known one", func(t *testing.T) {
		err, out, stderr := runCmd(t, "org", "import", registerJSON, "--data", data)
		if err != nil {
			t.Fatalf("org import: %v (stderr %q)", err, stderr)
		}
		// Not on a terminal: no progress line, one summary line of the rows written.
		if !regexp.MustCompile(`^importing organisations: 4 of 4 in [0-9.]+m?s \([0-9.]+/s\)\n$`).MatchString(stderr) {
			t.Errorf("stderr %q; want one summary line of the 4 organisations written", stderr)
		}
		wantLines(t, out, "7 records",
			"3 added, 1 updated, 0 unchanged, 0 left the register or are no longer active; 3 inactive records of unknown organisations skipped",
			"organisation "+handOID+" (Käsin Oy) was added by hand and is not in the register")
		st := openData(t, data)
		o, err := st.GetOrganisation(ctx, pharmacyOID)
		if err != nil {
			t.Fatal(err)
		}
		if o.Name != "Apteekki Oy" || o.LongName != "Helsingin VI apteekki" || !slices.Equal(o.Domains, []string{"apteekki.example"}) {
			t.Errorf("pharmacy = %+v; want its name and domains kept and the register's long name", o)
		}
		u, err := st.GetOrganisation(ctx, unitOID)
		if err != nil {
			t.Fatal(err)
		}
		if u.Name != "Esimerkin sairaanhoitopiirin kuntayhtymä" || u.LongName != "Kirurgian poliklinikka, Esimerkin keskussairaala" || len(u.Domains) != 0 {
			t.Errorf("unit = %+v; want its provider's name as O and its own long name as OU", u)
		}
		r, err := st.GetOrganisationRegister(ctx, intermediaryOID)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Intermediary || r.Sector != "private" || r.Status != "active" || r.BusinessID != "3456789-0" || r.SyncedAt.IsZero() {
			t.Errorf("intermediary register data = %+v", r)
		}
		if _, err := st.GetOrganisation(ctx, "1.2.246.10.45678901.10.0"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an organisation that ended was added (%v)", err)
		}
	})
	t.Run("the same register as XML changes nothing", func(t *testing.T) {
		out := mustRun(t, "org", "import", "--data", data, "--format", "xml", registerXML)
		wantLines(t, out, "0 added, 0 updated, 4 unchanged, 0 left")
	})
	t.Run("an organisation that left is reported with its valid certificates", func(t *testing.T) {
		st := openData(t, data)
		issueFor(t, st, pharmacyOID, "0100aa", time.Now().Add(365*24*time.Hour))
		issueFor(t, st, pharmacyOID, "0100bb", time.Now().Add(-time.Hour)) // expired: not listed
		// The pharmacy is gone from the register and the intermediary became passive.
		p1, err := os.ReadFile(registerP1)
		if err != nil {
			t.Fatal(err)
		}
		s := string(p1)
		s = s[strings.Index(s, `    {
      "conceptCodeId": "1.2.246.10.23456789.10.0"`):]
		s = `{"conceptCodes": [` + strings.Replace(s, `"status": "ACTIVE",
      "beginDate": "2015-01-01T00:00:00"`, `"status": "PASSIVE",
      "beginDate": "2015-01-01T00:00:00"`, 1)
		s = strings.Replace(s, `"totalItems": 7`, `"totalItems": 3`, 1)
		s = strings.Replace(s, `"totalPages": 2`, `"totalPages": 1`, 1)
		file := filepath.Join(t.TempDir(), "register.json")
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		out := mustRun(t, "org", "import", "--data", data, file)
		wantLines(t, out, "0 added, 1 updated, 2 unchanged, 2 left the register or are no longer active",
			"organisation "+pharmacyOID+" (Helsingin VI apteekki) is no longer listed in the register; valid certificates: 1",
			"0100aa  sote-server  until ",
			"varmenne revoke --org "+pharmacyOID+" --reason cessationOfOperation",
			"organisation "+intermediaryOID+" (Kanta-välityspalvelu Oy) is passive in the register; valid certificates: 0")
		if strings.Contains(out, "0100bb") {
			t.Errorf("an expired certificate is listed:\n%s", out)
		}
		r, err := openData(t, data).GetOrganisationRegister(ctx, pharmacyOID)
		if err != nil || r.LeftAt.IsZero() {
			t.Errorf("the pharmacy is not marked as left: %+v, %v", r, err)
		}
	})
	t.Run("from the code service's URL, page by page", func(t *testing.T) {
		pages := map[string]string{"": "register-p1.json", "2": "register-p2.json"}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := os.ReadFile(filepath.Join("../../policy/thl/testdata", pages[r.URL.Query().Get("page")]))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
		}))
		defer srv.Close()
		out := mustRun(t, "org", "import", "--data", data, "--allow-http", srv.URL+"/codeserver/csapi/v6/classifications/1.2.246.537.6.202.2008/conceptcodes?pageSize=4")
		wantLines(t, out, "7 records", "0 added, 2 updated, 2 unchanged")
	})
}

func TestOrgImportRefusals(t *testing.T) {
	isolate(t)
	data := newData(t)
	missing := filepath.Join(t.TempDir(), "register.json")
	tests := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"no source", []string{"org", "import", "--data", data}, []string{"give the register export", "register.json"}},
		{"two sources", []string{"org", "import", "--data", data, registerJSON, registerXML}, []string{"unexpected argument", "register.xml"}},
		{"an unknown format", []string{"org", "import", "--data", data, "--format", "csv", registerJSON}, []string{"--format", `"csv"`, "json or xml"}},
		{"an ftp URL", []string{"org", "import", "--data", data, "ftp://example.fi/register.xml"}, []string{"only http:// and https://"}},
		{"plain http without --allow-http", []string{"org", "import", "--data", data, "http://koodistopalvelu.example/register.json"}, []string{"is plain http", "--allow-http"}},
		{"a missing file", []string{"org", "import", "--data", data, missing}, []string{missing, "nothing was imported"}},
		{"one page of two", []string{"org", "import", "--data", data, registerP1}, []string{"incomplete", "page 2", "nothing was imported"}},
		{"JSON read as XML", []string{"org", "import", "--data", data, "--format", "xml", registerJSON}, []string{"XML", "nothing was imported"}},
		{"before the database exists", []string{"org", "import", "--data", filepath.Join(t.TempDir(), "none"), registerJSON}, []string{"varmenne serve", "once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, stdout, _ := runCmd(t, tt.args...)
			wantOneLineError(t, err, tt.wants...)
			if stdout != "" {
				t.Errorf("stdout %q after an error", stdout)
			}
		})
	}
	all, err := openData(t, data).ListOrganisations(context.Background())
	if err != nil || len(all) != 0 {
		t.Errorf("a refused import stored organisations: %v, %v", all, err)
	}
}

func TestOrgShowAndConformity(t *testing.T) {
	isolate(t)
	data := newData(t)
	mustRun(t, "org", "add", "--data", data, "--oid", pharmacyOID, "--name", "Apteekki Oy", "--domain", "apteekki.example")
	mustRun(t, "org", "add", "--data", data, "--oid", handOID, "--name", "Käsin Oy", "--domain", "kasin.example")
	mustRun(t, "org", "import", "--data", data, registerJSON)
	mustRun(t, "eab", "create", "--data", data, "--org", pharmacyOID)
	issueFor(t, openData(t, data), pharmacyOID, "0100cc", time.Now().Add(24*time.Hour))

	t.Run("conformity add records a certificate", func(t *testing.T) {
		out := mustRun(t, "org", "conformity", "add", pharmacyOID, "--data", data, "--system", "Apteekkijärjestelmä Y 5.1", "--expires", "2099-06-30")
		wantLines(t, out, "Apteekkijärjestelmä Y 5.1", pharmacyOID, "until 2099-06-30T23:59:59Z")
		got, err := openData(t, data).ListConformityCertificates(context.Background(), pharmacyOID)
		if err != nil || len(got) != 1 || got[0].System != "Apteekkijärjestelmä Y 5.1" || got[0].AddedBy != admin.BootstrapOperator ||
			!got[0].Expires.Equal(time.Date(2099, 6, 30, 23, 59, 59, 0, time.UTC)) {
			t.Errorf("stored %+v, %v", got, err)
		}
	})
	refusals := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"no OID", []string{"--system", "X", "--expires", "2099-01-01"}, []string{"give the organisation's OID"}},
		{"an OID that is not one", []string{"apteekki", "--system", "X", "--expires", "2099-01-01"}, []string{`"apteekki" is not an OID`}},
		{"no --system", []string{pharmacyOID, "--expires", "2099-01-01"}, []string{"--system is required"}},
		{"a blank --system", []string{pharmacyOID, "--system", " ", "--expires", "2099-01-01"}, []string{"--system is required"}},
		{"no --expires", []string{pharmacyOID, "--system", "X"}, []string{"--expires is required"}},
		{"an --expires that is not a date", []string{pharmacyOID, "--system", "X", "--expires", "30.6.2099"}, []string{`"30.6.2099" is not a date`}},
		{"an --expires in the past", []string{pharmacyOID, "--system", "X", "--expires", "2020-01-01"}, []string{"expired at 2020-01-01", "only a valid one counts"}},
		{"an unknown organisation", []string{"1.2.246.10.99999999.10.0", "--system", "X", "--expires", "2099-01-01"}, []string{"1.2.246.10.99999999.10.0 is unknown", "varmenne org import"}},
		{"the same certificate again", []string{pharmacyOID, "--system", "Apteekkijärjestelmä Y 5.1", "--expires", "2099-06-30"}, []string{"already on file"}},
	}
	for _, tt := range refusals {
		t.Run("conformity add refuses "+tt.name, func(t *testing.T) {
			err, stdout, _ := runCmd(t, append([]string{"org", "conformity", "add", "--data", data}, tt.args...)...)
			wantOneLineError(t, err, tt.wants...)
			if stdout != "" {
				t.Errorf("stdout %q after an error", stdout)
			}
		})
	}

	t.Run("show prints register data, counts and certificates of conformity", func(t *testing.T) {
		out := mustRun(t, "org", "show", "--data", data, pharmacyOID)
		wantLines(t, out, "organisation "+pharmacyOID)
		for label, want := range map[string]string{
			"name": "Apteekki Oy (certificate O)", "long name": "Helsingin VI apteekki (certificate OU)", "domains": "apteekki.example",
			"register": "active", "business id": "1234567-8", "sector": "private", "Kanta intermediary": "no",
			"in force": "2009-05-04 to 2100-12-31", "parent": "— (top of its hierarchy)",
			"EAB keys": "2", "accounts": "1", "certificates": "1 issued, 1 valid",
			"conformity": "Apteekkijärjestelmä Y 5.1, until 2099-06-30 (valid)",
		} {
			if got := showField(out, label); got != want {
				t.Errorf("%s: %q, want %q", label, got, want)
			}
		}
	})
	t.Run("show of a unit names its parent", func(t *testing.T) {
		out := mustRun(t, "org", "show", unitOID, "--data", data)
		for label, want := range map[string]string{"parent": districtOID, "sector": "public", "conformity": "none on file",
			"domains": "none: add them with \"varmenne org domains add " + unitOID + " --domain …\" before an EAB key is of use", "name": "Esimerkin sairaanhoitopiirin kuntayhtymä (certificate O)"} {
			if got := showField(out, label); got != want {
				t.Errorf("%s: %q, want %q", label, got, want)
			}
		}
	})
	t.Run("show of an organisation added by hand says it was never imported", func(t *testing.T) {
		out := mustRun(t, "org", "show", "--data", data, handOID)
		wantLines(t, out, "never imported", "varmenne org import")
	})
	t.Run("show of an unknown organisation", func(t *testing.T) {
		err, _, _ := runCmd(t, "org", "show", "--data", data, "1.2.246.10.99999999.10.0")
		wantOneLineError(t, err, "1.2.246.10.99999999.10.0 is unknown")
	})
	t.Run("show without an OID", func(t *testing.T) {
		err, _, _ := runCmd(t, "org", "show", "--data", data)
		wantOneLineError(t, err, "give the organisation's OID")
	})
}

func TestOrgSubcommands(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"org", "conformity"}, {"org", "conformity", "remove"}, {"org", "list"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			err, _, _ := runCmd(t, args...)
			wantOneLineError(t, err, "add, import, show, conformity add, domains add")
		})
	}
}

// TestStartRegister: with a register source the register is loaded into the store
// at start (the organisations, the load's time and source, an audit event by the
// server), and the register startRegister returns (the standing check's) is the
// plugins' shared one and reads that copy; the default system signature chains get
// "sote" last (withRegisterPlugins). Without a source nothing is loaded and the
// chains stay as they are.
func TestStartRegister(t *testing.T) {
	isolate(t)
	log := slog.New(slog.DiscardHandler)
	t.Cleanup(func() { thl.UseRegister(nil) })
	names := func(specs []policy.Spec) string {
		var n []string
		for _, s := range specs {
			n = append(n, s.Name)
		}
		return strings.Join(n, ",")
	}
	t.Run("with a source", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		secret, err := store.CreateEABSecretFile(filepath.Join(t.TempDir(), "eab-secret.key"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "varmenne.db"), secret)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		aud := audit.New(st, nil)
		svc := newAdminService(&adminConfig{dualControl: true}, profile.BuiltinSet(), true, st, aud, log)
		c := &registerConfig{source: registerJSON, refresh: time.Hour, maxStale: 3 * time.Hour}
		got, err := startRegister(ctx, c, registerStore{st: st, sync: svc.SyncRegister}, log)
		if err != nil {
			t.Fatal(err)
		}
		load, err := st.LastRegisterLoad(ctx)
		if err != nil || load.Source != registerJSON || load.Records == 0 || time.Since(load.LoadedAt) > time.Minute {
			t.Fatalf("the start's load in the store: %+v, %v", load, err)
		}
		events, err := st.AuditEvents(ctx, 0, 100)
		if err != nil || len(events) != 1 || events[0].Actor != admin.RegisterSyncActor || events[0].Action != string(audit.ActRegisterImport) {
			t.Fatalf("audit log after the start's load: %+v, %v; want one import by %q", events, err, admin.RegisterSyncActor)
		}
		reg, err := thl.SharedRegister()
		if err != nil {
			t.Fatal(err)
		}
		if reg != got {
			t.Error("the register startRegister returns (the standing check's) is not the plugins' shared one")
		}
		if e, err := reg.Lookup(ctx, pharmacyOID); err != nil || e.LongName != "Helsingin VI apteekki" || e.Sector != thl.SectorPrivate {
			t.Errorf("the shared register answers %+v, %v", e, err)
		}
		set := profile.BuiltinSet()
		withRegisterPlugins(set)
		want := map[string]string{
			profile.Server:              "names,keys,validity",
			profile.ServerTest:          "names,keys,validity",
			profile.SystemSignature:     "names,keys,validity,sote",
			profile.SystemSignatureTest: "names,keys,validity,sote",
		}
		for name, w := range want {
			if got := names(set.Profiles[name].Plugins); got != w {
				t.Errorf("profile %s plugins %s, want %s", name, got, w)
			}
		}
	})
	t.Run("without a source", func(t *testing.T) {
		set := profile.BuiltinSet()
		if reg, err := startRegister(context.Background(), &registerConfig{}, registerStore{}, log); err != nil || reg != nil {
			t.Fatalf("startRegister without a source: %v, %v; want no register", reg, err)
		}
		if got := names(set.Profiles[profile.SystemSignature].Plugins); got != "names,keys,validity" {
			t.Errorf("plugins %s without a register", got)
		}
		if _, err := thl.SharedRegister(); err == nil {
			t.Error("a register is configured without a source")
		}
	})
	refusals := []struct {
		name  string
		c     registerConfig
		wants string
	}{
		{"an unknown format", registerConfig{source: registerJSON, format: "csv", refresh: time.Hour, maxStale: 3 * time.Hour}, "--register-format"},
		{"an ftp source", registerConfig{source: "ftp://x/y", refresh: time.Hour, maxStale: 3 * time.Hour}, "--register-source"},
		{"staleness shorter than the refresh", registerConfig{source: registerJSON, refresh: 24 * time.Hour, maxStale: time.Hour}, "--register-max-stale"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := startRegister(context.Background(), &tt.c, registerStore{}, log)
			if err == nil || !strings.Contains(err.Error(), tt.wants) {
				t.Errorf("startRegister: %v, want %q", err, tt.wants)
			}
		})
	}
}
