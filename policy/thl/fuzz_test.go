package thl

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// checkParsed holds what Parse promises whenever it succeeds: at least one entry,
// sorted by OID without duplicates, every OID (and parent) one IsOID accepts and of
// bounded length, every active entry with a long name.
func checkParsed(t *testing.T, entries []Entry, err error) {
	if err != nil {
		if entries != nil {
			t.Fatalf("entries %v with error %v", entries, err)
		}
		return
	}
	if len(entries) == 0 {
		t.Fatal("success with no entries")
	}
	for i, e := range entries {
		if !IsOID(e.OID) || len(e.OID) > maxOIDLength {
			t.Fatalf("entry %d has OID %q", i, e.OID)
		}
		if e.Parent != "" && (!IsOID(e.Parent) || len(e.Parent) > maxOIDLength) {
			t.Fatalf("entry %s has parent %q", e.OID, e.Parent)
		}
		if i > 0 && entries[i-1].OID >= e.OID {
			t.Fatalf("entries %q and %q out of order or duplicated", entries[i-1].OID, e.OID)
		}
		if e.Status == StatusActive && e.LongName == "" {
			t.Fatalf("active entry %s without a long name", e.OID)
		}
		_ = e.ActiveAt(time.Now())
	}
}

// sameAsAuto checks that telling the format by the first character (FormatAuto,
// what a source without a format does) reads b as the explicit format does.
func sameAsAuto(t *testing.T, b []byte, entries []Entry, err error) {
	auto, aerr := Parse(bytes.NewReader(b), FormatAuto)
	checkParsed(t, auto, aerr)
	if err == nil && (aerr != nil || !slices.EqualFunc(auto, entries, func(a, b Entry) bool { return a.OID == b.OID })) {
		t.Fatalf("auto-detected format read %d entries (%v), the explicit one %d", len(auto), aerr, len(entries))
	}
}

// FuzzParseJSON and FuzzParseXML fuzz the register export as a source delivers it.
// Seeds: the sample exports in testdata (the code service's JSON, one document
// and two pages, and its XML) and testdata/fuzz.
func FuzzParseJSON(f *testing.F) {
	f.Add(readTestdata(f, "register.json"))
	f.Add(readTestdata(f, "register-p1.json"))
	f.Add(append(readTestdata(f, "register-p1.json"), readTestdata(f, "register-p2.json")...))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := Parse(bytes.NewReader(b), FormatJSON)
		checkParsed(t, entries, err)
		sameAsAuto(t, b, entries, err)
	})
}

func FuzzParseXML(f *testing.F) {
	f.Add(readTestdata(f, "register.xml"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := Parse(bytes.NewReader(b), FormatXML)
		checkParsed(t, entries, err)
		sameAsAuto(t, b, entries, err)
	})
}
