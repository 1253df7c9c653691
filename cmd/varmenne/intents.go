package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// intentsList prints every issuance intent that has no certificate: pending ones,
// which a crash between recording and storing can leave behind (was the key asked
// to sign? the reconciler must find out), and failed ones with their reason.
func intentsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("intents list", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON, one array")
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
			Serial  string    `json:"serial"`
			Status  string    `json:"status"`
			Order   string    `json:"order"`
			Issuer  string    `json:"issuer"`
			Names   []string  `json:"names"`
			KeyHash string    `json:"key_hash"`
			Created time.Time `json:"created"`
			Reason  string    `json:"reason,omitempty"`
		}
		rows := []row{}
		for _, in := range intents {
			rows = append(rows, row{in.Serial, in.Status, in.OrderID, in.Issuer, in.Names, in.KeyHash, in.CreatedAt, in.Reason})
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
	fmt.Fprintln(w, "SERIAL\tSTATUS\tCREATED\tISSUER\tORDER\tNAMES\tREASON")
	for _, in := range intents {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Serial, in.Status, in.CreatedAt.Format(time.RFC3339),
			in.Issuer, in.OrderID, strings.Join(in.Names, ","), in.Reason)
	}
	return w.Flush()
}
