// Package serial owns the SOTE long serial number format (SOTE.md, "Serial numbers"):
// 0x01 ‖ 8-byte big-endian unix time in milliseconds ‖ 9 random bytes, 18 bytes in all.
//
// It is not a step of a profile's plugin chain: the chain runs before a serial
// exists. The signer draws every serial with New and checks it with Check before the
// issuance intent is recorded, for every profile, and the store's unique constraint
// on serials makes a drawn serial unique (the signer draws again on a collision).
package serial

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Len is the length in bytes of a SOTE long serial.
const Len = 18

// Format is the first byte of every long serial. Being below 0x80 it also keeps the
// DER INTEGER positive and its length fixed, so the serial round-trips byte for byte.
const Format = 0x01

// RandomBits is the number of random bits in a serial: more than the 64 the CA/B
// Forum Baseline Requirements ask for.
const RandomBits = 72

// earliest is the first day of the long format (SOTE.md's example is from 2019-02-15).
var earliest = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)

// maxSkew is how far ahead of the checker's clock a serial's time may lie.
const maxSkew = 5 * time.Minute

// New returns a serial for now with 72 bits read from random (crypto/rand.Reader in
// production).
func New(now time.Time, random io.Reader) ([]byte, error) {
	ms := now.UnixMilli()
	if ms < 0 {
		return nil, fmt.Errorf("serial: time %s is before 1970", now.UTC())
	}
	s := make([]byte, Len)
	s[0] = Format
	binary.BigEndian.PutUint64(s[1:9], uint64(ms))
	if _, err := io.ReadFull(random, s[9:]); err != nil {
		return nil, fmt.Errorf("serial: randomness: %w", err)
	}
	return s, nil
}

// Check reports why s is not a well-formed long serial drawn around now: its length,
// format byte, a time before the format existed or ahead of now, or a random part
// that is all zero bits (a broken random source; the chance of it by luck is 2^-72).
func Check(s []byte, now time.Time) error {
	if len(s) != Len {
		return fmt.Errorf("serial: %d bytes, want %d", len(s), Len)
	}
	if s[0] != Format {
		return fmt.Errorf("serial: format byte %#02x, want %#02x", s[0], Format)
	}
	t := Time(s)
	if t.Before(earliest) || t.After(now.Add(maxSkew)) {
		return fmt.Errorf("serial: time %s is outside %s to %s", t.Format(time.RFC3339Nano), earliest.Format(time.DateOnly), now.Add(maxSkew).UTC().Format(time.RFC3339))
	}
	zero := true
	for _, b := range s[9:] {
		zero = zero && b == 0
	}
	if zero {
		return errors.New("serial: the random part is all zero")
	}
	return nil
}

// Time is the time a long serial was drawn (its middle 8 bytes).
func Time(s []byte) time.Time {
	if len(s) != Len {
		return time.Time{}
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(s[1:9]))).UTC()
}
