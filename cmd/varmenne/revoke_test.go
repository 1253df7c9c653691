package main

import (
	"context"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// serialsStore knows a fixed set of serials (lower-case hex).
type serialsStore struct{ known map[string]bool }

func (s serialsStore) SerialStatus(_ context.Context, serial string) (*store.SerialStatus, error) {
	if !s.known[serial] {
		return nil, store.ErrNotFound
	}
	return &store.SerialStatus{Serial: serial, Issuer: "production", Certified: true}, nil
}

func (serialsStore) Revoke(context.Context, store.Revocation, *store.BlockedKey) error { return nil }
func (serialsStore) RevokeOrganisation(context.Context, string, time.Time, store.Revocation, bool) ([]string, error) {
	return nil, nil
}

func TestFindSerial(t *testing.T) {
	// The SOTE.md examples: 18-byte long serial and the old 4-byte one.
	const long = "0100000168f0a805c366b43b5de968c691fb"
	const longDec = "87112293252494463413683796322992020427259"
	const old, oldDec = "0bf4eab0", "200600240"
	// "12345678" read as hex is 0x12345678; read as decimal it is 0xbc614e.
	st := serialsStore{known: map[string]bool{long: true, old: true, "12345678": true, "bc614e": true, "99": true}}
	cases := []struct {
		name, arg, base string
		want            string // the serial found; "" for an error
		wantErr         string
	}{
		{name: "lower-case hex", arg: long, want: long},
		{name: "upper-case hex with colons, as openssl prints it", arg: "01:00:00:01:68:F0:A8:05:C3:66:B4:3B:5D:E9:68:C6:91:FB", want: long},
		{name: "0x prefix", arg: "0x0BF4EAB0", want: old},
		{name: "hex without its leading zero", arg: "bf4eab0", want: old},
		{name: "decimal of the long serial (no such hex serial)", arg: longDec, want: long},
		{name: "decimal of the old serial", arg: oldDec, want: old},
		{name: "spaces are dropped", arg: " 0b f4 ea b0 ", want: old},
		{name: "digits that match one certificate as hex only", arg: "99", want: "99"},
		{name: "digits that match as hex and as decimal are refused", arg: "12345678", wantErr: "--serial-base"},
		{name: "--serial-base hex settles it", arg: "12345678", base: "hex", want: "12345678"},
		{name: "--serial-base decimal settles it", arg: "12345678", base: "decimal", want: "bc614e"},
		{name: "a serial issued nowhere", arg: "0x0abc", wantErr: "no certificate with serial 0abc (read as hex)"},
		{name: "digits issued nowhere name both readings", arg: "4242", wantErr: "4242 (read as hex) or 1092 (read as decimal)"},
		{name: "zero", arg: "0x00", wantErr: "zero"},
		{name: "not a number", arg: "0xzz", wantErr: "not a hex number"},
		{name: "letters beyond f", arg: "12g4", wantErr: "neither a hex nor a decimal number"},
		{name: "decimal with letters", arg: "0bf4", base: "decimal", wantErr: "not a decimal number"},
		{name: "an unknown base", arg: "12", base: "octal", wantErr: "--serial-base"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findSerial(context.Background(), st, tc.arg, tc.base)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error about %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Serial != tc.want {
				t.Fatalf("got %v, %v; want serial %s", got, err, tc.want)
			}
		})
	}
	t.Run("the SOTE.md pair is the same number", func(t *testing.T) {
		n, _ := new(big.Int).SetString(longDec, 10)
		if h := n.Text(16); "0"+h != long {
			t.Errorf("%s is %s in hex, want %s", longDec, h, long)
		}
	})
}

func TestRevocationRecord(t *testing.T) {
	now := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	type args struct{ reason, requestedBy, identifiedBy, performedBy, requestedAt, invalidity string }
	ok := args{reason: "keyCompromise", requestedBy: "Maija", identifiedBy: "e-service"}
	with := func(f func(*args)) args { a := ok; f(&a); return a }
	cases := []struct {
		name      string
		in        args
		wantErr   string
		wantCode  int
		wantBlock bool
	}{
		{name: "a reason by name blocks the key for keyCompromise", in: ok, wantCode: 1, wantBlock: true},
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
		{name: "an invalidity date in the future", in: with(func(a *args) { a.invalidity = "2026-03-01T00:00:00Z" }), wantErr: "future"},
		{name: "a request time in the future", in: with(func(a *args) { a.requestedAt = "2026-03-01T00:00:00+02:00" }), wantErr: "future"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.in
			r, block, err := revocationRecord(now, a.reason, a.requestedBy, a.identifiedBy, a.performedBy, "note", a.requestedAt, a.invalidity)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || r.Reason != tc.wantCode || block != tc.wantBlock {
				t.Fatalf("got reason %d block %v (%v); want %d, %v", r.Reason, block, err, tc.wantCode, tc.wantBlock)
			}
			if r.PerformedBy == "" || !r.RevokedAt.Equal(now) || !r.RequestedAt.Equal(now) {
				t.Errorf("record %+v: want the OS user as performer and now as the times", r)
			}
		})
	}
	t.Run("times given are kept in UTC", func(t *testing.T) {
		r, _, err := revocationRecord(now, "superseded", "a", "b", "op", "", "2026-02-01T10:00:00+02:00", "2026-01-31T10:00:00+02:00")
		if err != nil {
			t.Fatal(err)
		}
		if r.RequestedAt != time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC) || r.InvalidityDate != time.Date(2026, 1, 31, 8, 0, 0, 0, time.UTC) || r.PerformedBy != "op" {
			t.Errorf("record %+v", r)
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
