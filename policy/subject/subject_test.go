package subject

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name, v, refusal string // refusal "" accepted
	}{
		{"a plain name", "Apteekki Oy", ""},
		{"Finnish and Sámi letters", "Helsingin yliopiston apteekki – Sáme", ""},
		{"exactly 64 characters, multibyte", strings.Repeat("ä", 64), ""},
		{"65 characters", strings.Repeat("a", 65), "has 65 characters"},
		{"65 multibyte characters", strings.Repeat("ö", 65), "at most 64"},
		{"blank", "   ", "blank"},
		{"a newline", "Apteekki\nOy", "U+000A"},
		{"a NUL", "Apteekki\x00", "U+0000"},
		{"a right-to-left override", "Apteekki\u202eyO", "U+202E"},
		{"invalid UTF-8", "Apteekki \xff", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName("name (certificate O)", tt.v)
			if tt.refusal == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.refusal) || !strings.Contains(err.Error(), "name (certificate O)") {
				t.Fatalf("CheckName = %v, want a refusal naming the field and saying %q", err, tt.refusal)
			}
		})
	}
}
