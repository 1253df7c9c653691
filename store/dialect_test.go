package store

import (
	"strings"
	"testing"
)

func TestRebind(t *testing.T) {
	numbered := dialect{numbered: true}
	cases := []struct {
		name  string
		d     dialect
		query string
		want  string
	}{
		{"sqlite keeps question marks", sqliteDialect, "SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = ? AND c = ?"},
		{"numbered counts from one", numbered, "SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{"numbered passes ten", numbered, strings.Repeat("?,", 10) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11"},
		{"numbered without placeholders is unchanged", numbered, "SELECT 1", "SELECT 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.rebind(tc.query); got != tc.want {
				t.Errorf("rebind(%q) = %q, want %q", tc.query, got, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"known markers replaced", "a {{BLOB}}, b {{BIGINT}}, c {{SERIAL}}", "a BLOB, b INTEGER, c INTEGER PRIMARY KEY", false},
		{"unknown marker refused", "a {{BLOBB}}", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sqliteDialect.expand(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("expand(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
	t.Run("every migration expands", func(t *testing.T) {
		ms, err := migrations()
		if err != nil || len(ms) == 0 {
			t.Fatalf("migrations: %d, %v", len(ms), err)
		}
		for _, m := range ms {
			if _, err := sqliteDialect.expand(m.sql); err != nil {
				t.Errorf("%s: %v", m.name, err)
			}
		}
	})
}
