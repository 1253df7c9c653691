package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/varmenne/varmenne/store"
)

// The states of an intent without a certificate, as intents list says them: how
// far the issuer key got, which decides what an operator does (docs/hsm.md).
const (
	stateNeverAsked = "never asked"            // safe: the serial was never signed
	stateAsked      = "asked, outcome unknown" // the key may have signed: revoke the serial
	stateSigned     = "signed, not stored"     // a certificate exists: revoke or deliver it
	stateFailed     = "failed"                 // never signed, with the reason
)

// intentState is the state of an intent without a certificate and what to do
// about it. An intent recorded before varmenne kept the key's use (store.
// KeyUseUnknown) counts as asked: the safe side, since it may have been signed.
func intentState(in store.IssuanceIntent) (state, todo string) {
	switch {
	case in.Status == store.IntentFailed:
		return stateFailed, "nothing: the serial was never signed"
	case in.KeyUse == store.KeyNotAsked:
		return stateNeverAsked, "nothing: the serial was never signed"
	case in.KeyUse == store.KeySigned:
		return stateSigned, "revoke the serial, or deliver the certificate (--json holds it)"
	}
	return stateAsked, "revoke the serial: the issuer key may have signed it"
}

// intentsList prints every issuance intent that has no certificate, oldest first:
// pending ones, which a crash between recording and storing can leave behind, each
// with how far the issuer key got, and failed ones with their reason.
func intentsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("intents list", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON, one array; a signed intent carries its certificate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := db.open(ctx, *data, existing)
	if err != nil {
		return fmt.Errorf("intents list: %w", err)
	}
	defer st.Close()
	intents, err := st.IntentsWithoutCertificate(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		type row struct {
			Serial      string    `json:"serial"`
			Status      string    `json:"status"`
			State       string    `json:"state"`
			ToDo        string    `json:"todo"`
			Order       string    `json:"order"`
			Issuer      string    `json:"issuer"`
			Names       []string  `json:"names"`
			KeyHash     string    `json:"key_hash"`
			Created     time.Time `json:"created"`
			Reason      string    `json:"reason,omitempty"`
			SHA256      string    `json:"sha256,omitempty"`
			Certificate []byte    `json:"certificate,omitempty"` // DER, base64
		}
		rows := []row{}
		for _, in := range intents {
			state, todo := intentState(in)
			r := row{Serial: in.Serial, Status: in.Status, State: state, ToDo: todo, Order: in.OrderID, Issuer: in.Issuer,
				Names: in.Names, KeyHash: in.KeyHash, Created: in.CreatedAt, Reason: in.Reason}
			if state == stateSigned {
				r.SHA256, r.Certificate = in.CertSHA256, in.DER
			}
			rows = append(rows, r)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(intents) == 0 {
		fmt.Fprintln(stdout, "every issuance intent has its certificate")
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERIAL\tSTATE\tCREATED\tISSUER\tORDER\tNAMES\tDETAIL")
	todo := map[string]string{}
	var seen []string
	for _, in := range intents {
		state, do := intentState(in)
		detail := in.Reason
		switch {
		case state == stateSigned:
			detail = "sha256 " + in.CertSHA256
		case in.Status == store.IntentPending && in.KeyUse == store.KeyUseUnknown:
			detail = "recorded before varmenne kept the key's use: the audit log's certificate.sign events tell"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Serial, state, in.CreatedAt.Format(time.RFC3339),
			in.Issuer, in.OrderID, strings.Join(in.Names, ","), detail)
		if _, ok := todo[state]; !ok {
			seen = append(seen, state)
		}
		todo[state] = do
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	for _, state := range seen {
		fmt.Fprintf(stdout, "%s: %s\n", state, todo[state])
	}
	return nil
}
