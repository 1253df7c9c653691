package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/internal/ptytest"
)

func TestRevokeInput(t *testing.T) {
	type args struct{ reason, requestedBy, identifiedBy, requestedAt, invalidity string }
	ok := args{reason: "keyCompromise", requestedBy: "Maija", identifiedBy: "e-service"}
	with := func(f func(*args)) args { a := ok; f(&a); return a }
	cases := []struct {
		name     string
		in       args
		wantErr  string
		wantCode int
	}{
		{name: "a reason by name", in: ok, wantCode: 1},
		{name: "names in any case", in: with(func(a *args) { a.reason = "CESSATIONOFOPERATION" }), wantCode: 5},
		{name: "numbers", in: with(func(a *args) { a.reason = "9" }), wantCode: 9},
		{name: "unspecified must be said", in: with(func(a *args) { a.reason = "unspecified" }), wantCode: 0},
		{name: "no reason", in: with(func(a *args) { a.reason = "" }), wantErr: "--reason is required"},
		{name: "certificateHold", in: with(func(a *args) { a.reason = "certificateHold" }), wantErr: "final"},
		{name: "removeFromCRL by number", in: with(func(a *args) { a.reason = "8" }), wantErr: "final"},
		{name: "cACompromise", in: with(func(a *args) { a.reason = "cACompromise" }), wantErr: "concerns the CA"},
		{name: "no requester", in: with(func(a *args) { a.requestedBy = " " }), wantErr: "--requested-by"},
		{name: "no identification", in: with(func(a *args) { a.identifiedBy = "" }), wantErr: "--identified-by"},
		{name: "an invalidity date that is not RFC 3339", in: with(func(a *args) { a.invalidity = "2026-01-01" }), wantErr: "--invalidity-date"},
		{name: "an invalidity date in the future", in: with(func(a *args) { a.invalidity = "2099-03-01T00:00:00Z" }), wantErr: "future"},
		{name: "a request time in the future", in: with(func(a *args) { a.requestedAt = "2099-03-01T00:00:00+02:00" }), wantErr: "future"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.in
			in, err := revokeInput(a.reason, a.requestedBy, a.identifiedBy, "note", a.requestedAt, a.invalidity)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || in.reasonCode != tc.wantCode {
				t.Fatalf("got reason %d (%v); want %d", in.reasonCode, err, tc.wantCode)
			}
		})
	}
	t.Run("times given are kept in UTC", func(t *testing.T) {
		in, err := revokeInput("superseded", "a", "b", "", "2026-02-01T10:00:00+02:00", "2026-01-31T10:00:00+02:00")
		if err != nil {
			t.Fatal(err)
		}
		if in.RequestedAt != time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC) || in.InvalidityDate != time.Date(2026, 1, 31, 8, 0, 0, 0, time.UTC) {
			t.Errorf("input %+v", in)
		}
	})
}

func TestRevokeAndCRLShowRefusals(t *testing.T) {
	isolate(t)
	data := newData(t)
	who := []string{"--requested-by", "a", "--identified-by", "b"}
	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"neither --serial nor --org", append([]string{"revoke", "--reason", "superseded"}, who...), []string{"--serial", "--org"}},
		{"both --serial and --org", append([]string{"revoke", "--serial", "0a", "--org", "1.2.3", "--reason", "superseded"}, who...), []string{"either"}},
		{"--org that is not an OID", append([]string{"revoke", "--org", "apteekki", "--reason", "superseded"}, who...), []string{"not an OID"}},
		{"an unknown organisation", append([]string{"revoke", "--org", "1.2.246.10.9.10.0", "--reason", "superseded"}, who...), []string{"1.2.246.10.9.10.0", "not known"}},
		{"an unknown serial", append([]string{"revoke", "--serial", "01:02:03", "--reason", "superseded"}, who...), []string{"010203", "no certificate"}},
		{"crl without a subcommand", []string{"crl"}, []string{"show"}},
		{"crl show before any CRL", []string{"crl", "show", "--issuer", "production"}, []string{"no CRL", "production", "varmenne serve"}},
		{"crl show --out without --issuer", []string{"crl", "show", "--out", "x.crl"}, []string{"--issuer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err, stdout, _ := runCmd(t, append(tc.args, "--data", data)...)
			wantOneLineError(t, err, tc.wants...)
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

func TestServeRefusesALongCRLValidity(t *testing.T) {
	isolate(t)
	for _, v := range []string{"9h", "8h0m1s", "0s", "1m", "soon"} {
		t.Run(v, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			err, _, _ := runCmd(t, "serve", "--data", data, "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0",
				"--public-listen", "127.0.0.1:0", "--crl-validity", v)
			wantOneLineError(t, err, "crl-validity")
			if _, serr := os.Stat(data); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("the data directory was made before the refusal (%v)", serr)
			}
		})
	}
}

// TestRevokeOrgSummary: revoke --org says on stderr, in one line when not on a
// terminal, how many certificates it revoked and how fast; a refusal writes none.
func TestRevokeOrgSummary(t *testing.T) {
	isolate(t)
	data := newData(t)
	mustRun(t, "org", "add", "--data", data, "--oid", pharmacyOID, "--name", "Apteekki Oy", "--domain", "apteekki.example")
	st := openData(t, data)
	for _, serial := range []string{"0200aa", "0200bb", "0200cc"} {
		issueFor(t, st, pharmacyOID, serial, time.Now().Add(time.Hour))
	}
	who := []string{"--reason", "cessationOfOperation", "--requested-by", "THL", "--identified-by", "register", "--data", data}
	err, stdout, stderr := runCmd(t, append([]string{"revoke", "--org", pharmacyOID}, who...)...)
	if err != nil {
		t.Fatalf("revoke --org: %v (stderr %q)", err, stderr)
	}
	if !strings.HasPrefix(stdout, "revoked 3 certificates of organisation "+pharmacyOID) {
		t.Errorf("stdout %q", stdout)
	}
	if !regexp.MustCompile(`^revoking certificates: 3 of 3 in [0-9.]+m?s \([0-9.]+/s\)\n$`).MatchString(stderr) {
		t.Errorf("stderr %q; want one summary line of the 3 certificates", stderr)
	}
	err, _, stderr = runCmd(t, append([]string{"revoke", "--org", "1.2.246.10.9.10.0"}, who...)...)
	if err == nil || stderr != "" {
		t.Errorf("revoke --org of an unknown organisation: %v, stderr %q; want an error and no summary", err, stderr)
	}
}

// TestRevokeOrgOnATerminal: with stderr a terminal (a pseudo-terminal here),
// revoke --org draws its progress line in place, carriage return after carriage
// return, and ends it with the summary and a newline.
func TestRevokeOrgOnATerminal(t *testing.T) {
	isolate(t)
	data := newData(t)
	mustRun(t, "org", "add", "--data", data, "--oid", pharmacyOID, "--name", "Apteekki Oy", "--domain", "apteekki.example")
	st := openData(t, data)
	for _, serial := range []string{"0300aa", "0300bb"} {
		issueFor(t, st, pharmacyOID, serial, time.Now().Add(time.Hour))
	}
	tty, ptmx := ptytest.Open(t)
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(ptmx).ReadString('\n')
		got <- line
	}()
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"revoke", "--org", pharmacyOID, "--reason", "cessationOfOperation", "--requested-by", "THL",
		"--identified-by", "register", "--data", data}, &stdout, tty)
	if err != nil {
		t.Fatal(err)
	}
	var screen string
	select {
	case screen = <-got:
	case <-time.After(time.Minute):
		t.Fatal("nothing ended the line on the terminal")
	}
	draws := strings.Split(strings.TrimPrefix(screen, "\r"), "\r")
	if len(draws) < 3 || !strings.HasPrefix(draws[0], "revoking certificates: 0 of 2 (0%)") ||
		!strings.HasPrefix(draws[len(draws)-2], "revoking certificates: 2 of 2 (100%), ") ||
		!regexp.MustCompile(`^revoking certificates: 2 of 2 in [0-9.]+m?s \([0-9.]+/s\) *\n$`).MatchString(draws[len(draws)-1]) {
		t.Errorf("the terminal showed %q; want the line drawn from 0 of 2 to 2 of 2, then the summary in its place", screen)
	}
	if !strings.HasPrefix(stdout.String(), "revoked 2 certificates") {
		t.Errorf("stdout %q", stdout.String())
	}
}
