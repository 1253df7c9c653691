package serial

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestNewIsWellFormed(t *testing.T) {
	s, err := New(now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != Len || s[0] != Format || !Time(s).Equal(now) {
		t.Fatalf("serial %x: want 18 bytes, 0x01, time %s", s, now)
	}
	if err := Check(s, now); err != nil {
		t.Fatalf("Check of a new serial: %v", err)
	}
	// SOTE.md's example decodes to its documented time.
	doc := []byte{0x01, 0x00, 0x00, 0x01, 0x68, 0xf0, 0xa8, 0x05, 0xc3, 0x66, 0xb4, 0x3b, 0x5d, 0xe9, 0x68, 0xc6, 0x91, 0xfb}
	if got := Time(doc); !got.Equal(time.Date(2019, 2, 15, 10, 16, 9, 923e6, time.UTC)) {
		t.Errorf("the SOTE.md example decodes to %s", got)
	}
}

func TestNewDrawsDistinctRandomParts(t *testing.T) {
	a, _ := New(now, rand.Reader)
	b, _ := New(now, rand.Reader)
	if bytes.Equal(a, b) {
		t.Fatal("two serials of the same millisecond are equal")
	}
	if _, err := New(now, bytes.NewReader(make([]byte, 4))); err == nil {
		t.Fatal("a short random source gave a serial")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestCheck(t *testing.T) {
	good, _ := New(now, rand.Reader)
	with := func(f func(s []byte) []byte) []byte { return f(bytes.Clone(good)) }
	zero, _ := New(now, zeros{})
	future, _ := New(now.Add(time.Hour), rand.Reader)
	old, _ := New(time.Date(2018, 12, 31, 0, 0, 0, 0, time.UTC), rand.Reader)
	tests := []struct {
		name string
		s    []byte
		want string // "" accepted
	}{
		{"a fresh serial", good, ""},
		{"the 4-byte old format", []byte{0x0b, 0xf4, 0xea, 0xb0}, "4 bytes"},
		{"a wrong format byte", with(func(s []byte) []byte { s[0] = 0x02; return s }), "format byte"},
		{"a negative DER integer's top bit", with(func(s []byte) []byte { s[0] = 0x81; return s }), "format byte"},
		{"an all-zero random part", zero, "all zero"},
		{"a time an hour ahead", future, "outside"},
		{"a time before the format", old, "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.s, now)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Check: %v, want %q", err, tt.want)
			}
		})
	}
}
