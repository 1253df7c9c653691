package signer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"regexp"
	"testing"
	"time"
)

func TestNewSerialLayout(t *testing.T) {
	random := bytes.Repeat([]byte{0xab}, 9)
	tests := []struct {
		name string
		now  time.Time
	}{
		{"unix epoch", time.Unix(0, 0)},
		{"millisecond precision kept", time.Date(2026, 3, 10, 12, 0, 0, 123_456_789, time.UTC)},
		{"non-UTC zone encodes the same instant", time.Date(2026, 3, 10, 14, 0, 0, 0, time.FixedZone("EET", 2*3600))},
		{"far future", time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSerial(tt.now, bytes.NewReader(random))
			if err != nil {
				t.Fatal(err)
			}
			if len(s) != 18 {
				t.Fatalf("len = %d, want 18", len(s))
			}
			if s[0] != 0x01 {
				t.Errorf("format byte = %#x, want 0x01", s[0])
			}
			if got := int64(binary.BigEndian.Uint64(s[1:9])); got != tt.now.UnixMilli() {
				t.Errorf("time = %d ms, want %d", got, tt.now.UnixMilli())
			}
			if !bytes.Equal(s[9:], random) {
				t.Errorf("random part = %x, want %x", s[9:], random)
			}
		})
	}
}

func TestNewSerialRandomPartDiffers(t *testing.T) {
	a, err := NewSerial(testNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSerial(testNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a[:9], b[:9]) || bytes.Equal(a[9:], b[9:]) {
		t.Errorf("same instant: want equal prefix and different random parts, got %x and %x", a, b)
	}
}

func TestNewSerialErrors(t *testing.T) {
	tests := []struct {
		name   string
		now    time.Time
		random []byte
	}{
		{"short random source", testNow, make([]byte, 8)},
		{"time before 1970", time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), make([]byte, 9)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := NewSerial(tt.now, bytes.NewReader(tt.random)); err == nil {
				t.Errorf("NewSerial = %x, want an error", s)
			}
		})
	}
}

// The example from SOTE.md must decode, and NewSerial must rebuild it from its parts.
func TestSOTEExampleSerial(t *testing.T) {
	const example = "0100000168f0a805c366b43b5de968c691fb"
	s, _ := hex.DecodeString(example)
	wantTime := time.Date(2019, 2, 15, 10, 16, 9, 923_000_000, time.UTC)

	t.Run("time part decodes to 2019-02-15 10:16:09.923 UTC", func(t *testing.T) {
		got := time.UnixMilli(int64(binary.BigEndian.Uint64(s[1:9]))).UTC()
		if !got.Equal(wantTime) {
			t.Errorf("time = %s, want %s", got, wantTime)
		}
	})
	t.Run("decimal value matches", func(t *testing.T) {
		want, _ := new(big.Int).SetString("87112293252494463413683796322992020427259", 10)
		if new(big.Int).SetBytes(s).Cmp(want) != 0 {
			t.Errorf("decimal = %s, want %s", new(big.Int).SetBytes(s), want)
		}
	})
	t.Run("NewSerial rebuilds it", func(t *testing.T) {
		got, err := NewSerial(wantTime, bytes.NewReader(s[9:]))
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != example {
			t.Errorf("NewSerial = %x, want %s", got, example)
		}
	})
}

func TestKeyHash(t *testing.T) {
	seedKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub := seedKey.Public().(ed25519.PublicKey)
	// SubjectPublicKeyInfo of an Ed25519 key, built by hand (RFC 8410) so the expected
	// hash does not come from the code under test.
	spki := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, pub...)
	sum := sha256.Sum256(spki)
	wantEd := hex.EncodeToString(sum[:])

	tests := []struct {
		name    string
		pub     crypto.PublicKey
		want    string // "" only checks the form
		wantErr bool
	}{
		{"ed25519 key hashes its SPKI DER", pub, wantEd, false},
		{"same key again gives the same hash", seedKey.Public(), wantEd, false},
		{"ecdsa key gives lower-case hex", newKey(t, "p256").Public(), "", false},
		{"rsa key gives lower-case hex", newKey(t, "rsa").Public(), "", false},
		{"unsupported key type is an error", "not a key", "", true},
	}
	form := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KeyHash(tt.pub)
			if tt.wantErr {
				if err == nil {
					t.Errorf("KeyHash = %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !form.MatchString(got) {
				t.Errorf("KeyHash = %q, want 64 lower-case hex digits", got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("KeyHash = %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("different keys give different hashes", func(t *testing.T) {
		a, _ := KeyHash(newKey(t, "p256").Public())
		b, _ := KeyHash(newKey(t, "p256").Public())
		if a == b {
			t.Errorf("two keys hash to %s", a)
		}
	})
}
