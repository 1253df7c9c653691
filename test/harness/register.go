package harness

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// RegisterOrg is one organisation of a register export a test writes: active, in
// the public sector (so a system signature certificate needs no certificate of
// conformity), from 2000 on.
type RegisterOrg struct{ OID, Name string }

// WriteRegister writes a THL SOTE register export in the code service's JSON form,
// listing orgs as active, and returns its path: a production server
// (--register-source) takes certificates only for organisations a register lists.
func WriteRegister(t *testing.T, orgs ...RegisterOrg) string {
	t.Helper()
	type attr struct {
		Name  string   `json:"attributeName"`
		Value []string `json:"attributeValue"`
	}
	type concept struct {
		ID         string `json:"conceptCodeId"`
		Name       string `json:"conceptCodeName"`
		Status     string `json:"status"`
		BeginDate  string `json:"beginDate"`
		Attributes []attr `json:"attributes"`
	}
	var export struct {
		ConceptCodes []concept `json:"conceptCodes"`
	}
	for _, o := range orgs {
		export.ConceptCodes = append(export.ConceptCodes, concept{ID: o.OID, Name: o.Name, Status: "ACTIVE", BeginDate: "2000-01-01T00:00:00",
			Attributes: []attr{{"LongName", []string{o.Name}}, {"Sektori", []string{"1 Julkinen"}}}})
	}
	b, err := json.MarshalIndent(export, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "register.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// production reports whether the instance runs in production mode (HSM keys or
// --production), and the register export it was started with.
func (in *Instance) production() (bool, string) {
	prod := slices.Contains(in.Extra, "--production") || slices.Contains(in.Extra, "--pkcs11-module")
	register := ""
	if i := slices.Index(in.Extra, "--register-source"); i >= 0 && i+1 < len(in.Extra) {
		register = in.Extra[i+1]
	}
	return prod, register
}
