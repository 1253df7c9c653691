package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// TestIntentsList: intents list says for each intent without a certificate how far
// the issuer key got, and what the operator does about it, oldest first; a signed
// one carries its certificate in --json.
func TestIntentsList(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	data := t.TempDir()
	st, err := new(dbFlags).open(ctx, data, creating)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	must(st.AddOrganisation(ctx, store.Organisation{OID: testOID, Name: "Apteekki Oy", CreatedAt: at}))
	must(st.CreateEAB(ctx, store.EABKey{KID: "kid-1", OrgOID: testOID, HMACKey: []byte("secret"), Status: store.EABApproved, CreatedAt: at}))
	must(st.CreateAccount(ctx, store.Account{ID: "acct-1", Thumbprint: "thumb-1", JWK: []byte(`{}`), OrgOID: testOID,
		Status: "valid", CreatedAt: at}, "kid-1"))
	must(st.CreateOrder(ctx, store.Order{ID: "order-1", AccountID: "acct-1", OrgOID: testOID, Status: "processing",
		Expires: at.Add(time.Hour), Names: []string{"www.example.fi"}, Profile: "sote-server", CreatedAt: at}, nil))
	// One intent per state, recorded a minute apart in this order.
	serials := []string{"0a01", "0a02", "0a03", "0a04", "0a05"}
	for i, s := range serials {
		must(st.RecordIntent(ctx, store.IssuanceIntent{Serial: s, OrderID: "order-1", Issuer: "production",
			Names: []string{"www.example.fi"}, KeyHash: fmt.Sprintf("%064x", i+1), CreatedAt: at.Add(time.Duration(i) * time.Minute)}))
	}
	der := []byte("the signed certificate")
	must(st.BeginSigning(ctx, "0a02"))
	must(st.BeginSigning(ctx, "0a03"))
	must(st.IntentSigned(ctx, "0a03", der))
	must(st.FailIntent(ctx, "0a04", "lint: e_dnsname_not_valid_tld"))
	st.Close()
	// 0a05 was recorded before varmenne kept the key's use.
	db, err := sql.Open("sqlite", dbPath(data))
	must(err)
	_, err = db.Exec(`UPDATE issuance_intents SET key_use = 'unknown' WHERE serial = '0a05'`)
	must(err)
	db.Close()
	sum := sha256.Sum256(der)
	sha := hex.EncodeToString(sum[:])

	t.Run("text", func(t *testing.T) {
		err, out, _ := runCmd(t, "intents", "list", "--data", data)
		must(err)
		lines := strings.Split(out, "\n")
		want := []struct{ serial, state, detail string }{
			{"0a01", "never asked", ""},
			{"0a02", "asked, outcome unknown", ""},
			{"0a03", "signed, not stored", "sha256 " + sha},
			{"0a04", "failed", "lint: e_dnsname_not_valid_tld"},
			{"0a05", "asked, outcome unknown", "recorded before varmenne kept the key's use"},
		}
		if len(lines) < len(want)+1 || !strings.HasPrefix(lines[0], "SERIAL") {
			t.Fatalf("output:\n%s", out)
		}
		for i, w := range want {
			l := lines[i+1]
			if !strings.HasPrefix(l, w.serial+" ") || !strings.Contains(l, "  "+w.state+"  ") || !strings.Contains(l, w.detail) {
				t.Errorf("line %d %q, want %s %q %q", i+1, l, w.serial, w.state, w.detail)
			}
		}
		for _, advice := range []string{
			"never asked: nothing: the serial was never signed",
			"asked, outcome unknown: revoke the serial",
			"signed, not stored: revoke the serial, or deliver the certificate",
		} {
			if !strings.Contains(out, "\n"+advice) {
				t.Errorf("output lacks the advice %q:\n%s", advice, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		err, out, _ := runCmd(t, "intents", "list", "--data", data, "--json")
		must(err)
		var rows []struct {
			Serial, Status, State, ToDo, Reason, SHA256 string
			Certificate                                 []byte
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v in %s", err, out)
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.Serial+" "+r.Status+" "+r.State)
		}
		want := []string{"0a01 pending never asked", "0a02 pending asked, outcome unknown", "0a03 pending signed, not stored",
			"0a04 failed failed", "0a05 pending asked, outcome unknown"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("rows %q, want %q", got, want)
		}
		if r := rows[2]; r.SHA256 != sha || string(r.Certificate) != string(der) || !strings.Contains(r.ToDo, "revoke") {
			t.Errorf("signed row %+v, want its SHA-256, its certificate and what to do", r)
		}
		if r := rows[3]; r.Reason != "lint: e_dnsname_not_valid_tld" || r.Certificate != nil {
			t.Errorf("failed row %+v, want its reason and no certificate", r)
		}
	})
}
