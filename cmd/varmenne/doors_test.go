package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// cliUseCase is an operator command: the arguments after setup, who may and who
// may not run it, and the audit actions one success records.
type cliUseCase struct {
	name             string
	allowed, refused string // token file names: "admin" is the first administrator
	setup            func(t *testing.T, data string) []string
	actions          []audit.Action
	actors           []string // the actor of each action; nil: every one is the allowed operator
}

// cliWorld is a data directory with an organisation, a registrar, an auditor and
// a second administrator, each with a token file.
func cliWorld(t *testing.T) (data string, tokens map[string]string) {
	t.Helper()
	data = newData(t)
	tokens = map[string]string{"admin": filepath.Join(data, operatorTokenFile)}
	mustRun(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example")
	for name, role := range map[string]string{"rita": "registrar", "aino": "auditor", "anna": "administrator"} {
		out := mustRun(t, "operator", "add", name, "--role", role, "--token", "--data", data)
		_, token, _ := strings.Cut(out, "token: ")
		token, _, _ = strings.Cut(token, "\n")
		tokens[name] = filepath.Join(data, name+".token")
		if err := os.WriteFile(tokens[name], []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return data, tokens
}

func cliUseCases() []cliUseCase {
	fixed := func(args ...string) func(*testing.T, string) []string {
		return func(*testing.T, string) []string { return args }
	}
	// service acts on the data directory's database as operator who, for setups
	// the CLI has no command for (a registrar's request comes from the e-service).
	service := func(t *testing.T, data string) (*admin.Service, func(string) *store.Operator) {
		st := openData(t, data)
		set, _ := loadProfiles("", false)
		return admin.New(adminServiceConfig(set, true), st, audit.New(st, nil), nil), func(name string) *store.Operator {
			o, err := st.GetOperator(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
	}
	request := func(t *testing.T, data string) string {
		svc, op := service(t, data)
		in := admin.EABRequestInput{Organisation: testOID, Person: "Maija", IdentifiedBy: "suomi.fi", TechnicalContact: "it@vendor.example"}
		r, err := svc.RequestEAB(t.Context(), op("rita"), in)
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	approved := func(t *testing.T, data string) *admin.KeyView {
		svc, op := service(t, data)
		k, err := svc.Approve(t.Context(), op("anna"), request(t, data))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// pending makes the database production's and has the first administrator ask
	// for a change to an operator, which another administrator must approve.
	pending := func(t *testing.T, data string) string {
		st := openData(t, data)
		if err := st.MarkProduction(t.Context(), time.Now()); err != nil {
			t.Fatal(err)
		}
		svc, op := service(t, data)
		made, err := svc.AddOperator(t.Context(), op(admin.BootstrapOperator), nil, admin.OperatorInput{Name: "uusi", Role: "auditor", Token: true})
		if err != nil || made.Pending == nil {
			t.Fatalf("operator add in production: %+v, %v; want a pending change", made, err)
		}
		return made.Pending.ID
	}
	cert := func(t *testing.T, data string) string {
		serial := "0100000168f0a805c366b43b5de968c691c1"
		seedCertificate(t, openData(t, data), testOID, serial, "production", time.Now().Add(24*time.Hour))
		return serial
	}
	return []cliUseCase{
		{"org add", "rita", "aino", fixed("org", "add", "--oid", "1.2.246.10.5.10.0", "--name", "Uusi Oy", "--domain", "uusi.example"),
			[]audit.Action{audit.ActOrganisationAdd}, nil},
		{"org domains add", "rita", "aino", fixed("org", "domains", "add", testOID, "--domain", "toinen.example"),
			[]audit.Action{audit.ActOrganisationNames}, nil},
		{"org domains remove", "admin", "aino", fixed("org", "domains", "remove", testOID, "--domain", "apteekki.example"),
			[]audit.Action{audit.ActOrganisationUnnames}, nil},
		{"org conformity add", "rita", "aino", fixed("org", "conformity", "add", testOID, "--system", "Järjestelmä", "--expires", "2099-12-31"),
			[]audit.Action{audit.ActConformityAdd}, nil},
		{"org import", "admin", "aino", fixed("org", "import", registerJSON), []audit.Action{audit.ActRegisterImport}, nil},
		{"org suspend", "admin", "rita", fixed("org", "suspend", testOID, "--reason", "unpaid"), []audit.Action{audit.ActOrganisationSuspend}, nil},
		{"eab create (development)", "admin", "rita", fixed("eab", "create", "--org", testOID),
			[]audit.Action{audit.ActEABRequest, audit.ActEABApprove, audit.ActEABHandover}, nil},
		{"eab approve", "anna", "rita", func(t *testing.T, data string) []string { return []string{"eab", "approve", request(t, data)} },
			[]audit.Action{audit.ActEABApprove}, nil},
		{"eab reject", "anna", "rita", func(t *testing.T, data string) []string {
			return []string{"eab", "reject", request(t, data), "--reason", "no contract"}
		}, []audit.Action{audit.ActEABReject}, nil},
		{"eab key", "rita", "aino", func(t *testing.T, data string) []string { return []string{"eab", "key", approved(t, data).RequestID} },
			[]audit.Action{audit.ActEABHandover}, nil},
		{"eab revoke", "anna", "rita", func(t *testing.T, data string) []string {
			return []string{"eab", "revoke", approved(t, data).KID, "--reason", "lost"}
		}, []audit.Action{audit.ActEABRevoke}, nil},
		{"org resume", "admin", "rita", func(t *testing.T, data string) []string {
			mustRun(t, "org", "suspend", testOID, "--reason", "unpaid", "--data", data)
			return []string{"org", "resume", testOID}
		}, []audit.Action{audit.ActOrganisationResume}, nil},
		{"operator add", "admin", "rita", fixed("operator", "add", "uusi", "--role", "auditor", "--token"), []audit.Action{audit.ActOperatorAdd}, nil},
		{"operator disable", "admin", "rita", fixed("operator", "disable", "aino", "--reason", "left"), []audit.Action{audit.ActOperatorDisable}, nil},
		{"operator remove", "admin", "rita", fixed("operator", "remove", "aino"), []audit.Action{audit.ActOperatorRemove}, nil},
		{"operator rotate", "admin", "rita", fixed("operator", "rotate", "aino", "--token"), []audit.Action{audit.ActOperatorRotate}, nil},
		{"revoke", "admin", "rita", func(t *testing.T, data string) []string {
			return []string{"revoke", "--serial", cert(t, data), "--reason", "superseded", "--requested-by", "Maija", "--identified-by", "phone"}
		}, []audit.Action{audit.ActRevoke}, nil},
		{"revoke --org", "admin", "rita", func(t *testing.T, data string) []string {
			cert(t, data)
			return []string{"revoke", "--org", testOID, "--reason", "cessationOfOperation", "--requested-by", "THL", "--identified-by", "register"}
		}, []audit.Action{audit.ActRevoke}, nil},
		{"renew-early", "admin", "rita", func(t *testing.T, data string) []string {
			return []string{"renew-early", "--serial", cert(t, data), "--reason", "mis-issuance"}
		}, []audit.Action{audit.ActRenewEarly}, nil},
		{"audit export", "aino", "rita", fixed("audit", "export"), []audit.Action{audit.ActAuditExport}, nil},
		{"operator approve (production)", "anna", "rita", func(t *testing.T, data string) []string { return []string{"operator", "approve", pending(t, data)} },
			[]audit.Action{audit.ActOperatorApprove, audit.ActOperatorAdd}, []string{"anna", admin.BootstrapOperator + "+anna"}},
		{"operator reject (production)", "anna", "rita", func(t *testing.T, data string) []string {
			return []string{"operator", "reject", pending(t, data), "--reason", "not needed"}
		}, []audit.Action{audit.ActOperatorReject}, nil},
		{"key block", "admin", "rita", fixed("key", "block", "--key-hash", strings.Repeat("cd", 32), "--reason", "reported compromised"),
			[]audit.Action{audit.ActKeyBlock}, nil},
	}
}

// TestEveryOperatorCommand proves for the CLI door what TestEveryUseCase proves
// for the service: a role that may not is refused in one line, recorded, and
// changes nothing; a success records exactly its audit actions as the operator of
// the token; and with the audit log down the command fails and changes nothing.
func TestEveryOperatorCommand(t *testing.T) {
	isolate(t)
	for _, uc := range cliUseCases() {
		t.Run(uc.name, func(t *testing.T) {
			data, tokens := cliWorld(t)
			path := dbPath(data)
			args := uc.setup(t, data)
			as := func(who string) []string {
				return append(slices.Clone(args), "--data", data, "--operator-token-file", tokens[who])
			}
			actor := map[string]string{"admin": admin.BootstrapOperator}[uc.allowed]
			if actor == "" {
				actor = uc.allowed
			}

			snap, before := admintest.Snapshot(t, path), lastSeq(t, data)
			err, stdout, _ := runCmd(t, as(uc.refused)...)
			wantOneLineError(t, err, "has the role", "takes the role")
			if stdout != "" {
				t.Errorf("stdout %q after a refusal", stdout)
			}
			if admintest.Snapshot(t, path) != snap {
				t.Errorf("a refused command changed the database")
			}
			if ev := events(t, data, before); len(ev) != 1 || ev[0].Action != string(audit.ActAccessDenied) || ev[0].Actor != uc.refused {
				t.Errorf("after the refusal: %+v, want one access.denied of %s", ev, uc.refused)
			}

			snap, before = admintest.Snapshot(t, path), lastSeq(t, data)
			restore := admintest.AuditDown(t, path)
			err, _, _ = runCmd(t, as(uc.allowed)...)
			restore()
			if err == nil || strings.Contains(err.Error(), "\n") {
				t.Errorf("with the audit log down: %v, want a one-line error", err)
			}
			if admintest.Snapshot(t, path) != snap || len(events(t, data, before)) != 0 {
				t.Errorf("the database changed although the audit write failed")
			}

			before = lastSeq(t, data)
			if err, out, _ := runCmd(t, as(uc.allowed)...); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			var got []audit.Action
			for i, e := range events(t, data, before) {
				want := actor
				if uc.actors != nil && i < len(uc.actors) {
					want = uc.actors[i]
				}
				if e.Actor != want || e.Outcome != audit.OK {
					t.Errorf("event %+v: want one of %s, ok", e, want)
				}
				got = append(got, audit.Action(e.Action))
			}
			if !slices.Equal(got, uc.actions) {
				t.Errorf("actions %v, want %v", got, uc.actions)
			}
		})
	}
}

// eventLine is an audit event as the store gives it, for the CLI tests.
type eventLine struct {
	Seq                            int64
	Actor, Action, Object, Outcome string
}

func events(t *testing.T, data string, after int64) []eventLine {
	t.Helper()
	list, err := openData(t, data).AuditEvents(t.Context(), after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventLine
	for _, e := range list {
		out = append(out, eventLine{e.Seq, e.Actor, e.Action, e.Object, e.Outcome})
	}
	return out
}

func lastSeq(t *testing.T, data string) int64 {
	ev := events(t, data, 0)
	if len(ev) == 0 {
		return 0
	}
	return ev[len(ev)-1].Seq
}
