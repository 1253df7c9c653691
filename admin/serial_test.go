package admin

import (
	"math/big"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/store"
)

// serialsStore knows a fixed set of serials (lower-case hex).
type serialsStore struct{ known map[string]bool }

func (s serialsStore) lookup(serial string) (*store.SerialStatus, error) {
	if !s.known[serial] {
		return nil, store.ErrNotFound
	}
	return &store.SerialStatus{Serial: serial, Issuer: "production", Certified: true}, nil
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
			got, err := findSerial(tc.arg, tc.base, st.lookup)
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
