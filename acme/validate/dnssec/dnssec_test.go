package dnssec

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The canonical order of RFC 4034 section 6.1, in the RFC's own example.
func TestCanonicalOrder(t *testing.T) {
	want := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.",
		"zABC.a.EXAMPLE.", "z.example.", `\001.z.example.`, "*.z.example.", `\200.z.example.`}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, canonicalCompare)
	if !slices.Equal(got, want) {
		t.Errorf("sorted:\n%v\nwant\n%v", got, want)
	}
}

func TestNSECCovers(t *testing.T) {
	for _, tt := range []struct {
		owner, next, name string
		want              bool
	}{
		{"a.example.", "d.example.", "b.example.", true},
		{"a.example.", "d.example.", "a.example.", false}, // the owner exists
		{"a.example.", "d.example.", "d.example.", false}, // so does next
		{"a.example.", "d.example.", "e.example.", false},
		{"a.example.", "d.example.", "x.b.example.", true},
		{"z.example.", "example.", "zz.example.", true}, // the last NSEC wraps to the apex
		{"z.example.", "example.", "b.example.", false},
		{"a.example.", "d.example.", "b.other.", false}, // outside the zone
	} {
		if got := covers("example.", tt.owner, tt.next, tt.name); got != tt.want {
			t.Errorf("covers(%s → %s, %s) = %v, want %v", tt.owner, tt.next, tt.name, got, tt.want)
		}
	}
}

func TestNSEC3Covers(t *testing.T) {
	rr := func(owner, next string) *dns.NSEC3 {
		return &dns.NSEC3{Hdr: dns.RR_Header{Name: owner + ".example."}, NextDomain: next}
	}
	for _, tt := range []struct {
		r    *dns.NSEC3
		hash string
		want bool
	}{
		{rr("2", "5"), "3", true},
		{rr("2", "5"), "2", false}, // matches, does not cover
		{rr("2", "5"), "5", false},
		{rr("2", "5"), "7", false},
		{rr("T", "2"), "V", true}, // the last wraps to the first
		{rr("T", "2"), "1", true},
		{rr("T", "2"), "3", false},
		{rr("4", "4"), "9", true}, // the only NSEC3 of a zone covers all but itself
		{rr("4", "4"), "4", false},
		{&dns.NSEC3{Hdr: dns.RR_Header{Name: "2.sub.example."}, NextDomain: "5"}, "3", false}, // not at the apex
	} {
		if got := nsec3Covers(tt.r, "example.", tt.hash); got != tt.want {
			t.Errorf("nsec3Covers(%s → %s, %s) = %v, want %v", tt.r.Hdr.Name, tt.r.NextDomain, tt.hash, got, tt.want)
		}
	}
}

func TestRootAnchorsAreIANAs(t *testing.T) {
	a := RootAnchors()
	var tags []uint16
	for _, rr := range a {
		ds := rr.(*DS)
		if ds.Hdr.Name != "." || ds.Algorithm != dns.RSASHA256 || ds.DigestType != dns.SHA256 {
			t.Errorf("root anchor %v", ds)
		}
		tags = append(tags, ds.KeyTag)
	}
	if !slices.Equal(tags, []uint16{20326, 38696}) {
		t.Errorf("root anchors' key tags %v, want KSK-2017 20326 and KSK-2024 38696", tags)
	}
}

type DS = dns.DS

func TestParseAnchors(t *testing.T) {
	good := "; the test zone\ntest. 3600 IN DS 12345 13 2 " + strings.Repeat("AB", 32) + "\n" +
		"test. IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n"
	if a, err := ParseAnchors(strings.NewReader(good), "good"); err != nil || len(a) != 2 {
		t.Fatalf("ParseAnchors = %v, %v", a, err)
	}
	for _, tt := range []struct{ name, in, want string }{
		{"empty", "; nothing\n", "holds no DS or DNSKEY"},
		{"a zone-signing key", "test. IN DNSKEY 256 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n", "flags 256"},
		{"another record", "test. IN A 192.0.2.1\n", "A records are not trust anchors"},
		{"broken", "test. IN DS 12345 13\n", "bad"},
	} {
		_, err := ParseAnchors(strings.NewReader(tt.in), "anchors.txt")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "anchors.txt") {
			t.Errorf("%s: error %v, want one naming anchors.txt and %q", tt.name, err, tt.want)
		}
	}
}
