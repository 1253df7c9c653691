package thl

import (
	"bytes"
	"testing"
	"time"
)

// checkParsed holds what Parse promises whenever it succeeds: at least one entry,
// sorted by OID without duplicates, every OID (and parent) OID-shaped, every active
// entry with a long name.
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
		if !oidPattern.MatchString(e.OID) || len(e.OID) > maxOIDLength {
			t.Fatalf("entry %d has OID %q", i, e.OID)
		}
		if e.Parent != "" && !oidPattern.MatchString(e.Parent) {
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

func FuzzParseJSON(f *testing.F) {
	f.Add(readTestdata(f, "register.json"))
	f.Add(readTestdata(f, "register-p1.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := Parse(bytes.NewReader(b), FormatJSON)
		checkParsed(t, entries, err)
	})
}

func FuzzParseXML(f *testing.F) {
	f.Add(readTestdata(f, "register.xml"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := Parse(bytes.NewReader(b), FormatXML)
		checkParsed(t, entries, err)
	})
}
