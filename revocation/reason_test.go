package revocation

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Reason
		refusal string // "" accepted
	}{
		{"keyCompromise", KeyCompromise, ""},
		{"KEYCOMPROMISE", KeyCompromise, ""},
		{" 1 ", KeyCompromise, ""},
		{"0", Unspecified, ""},
		{"superseded", Superseded, ""},
		{"9", PrivilegeWithdrawn, ""},
		{"certificateHold", Reason{}, "SOTE revocation is final"},
		{"6", Reason{}, "SOTE revocation is final"},
		{"removeFromCRL", Reason{}, "SOTE revocation is final"},
		{"cACompromise", Reason{}, "concerns the CA"},
		{"10", Reason{}, "concerns the CA"},
		{"7", Reason{}, "not an RFC 5280 reason"},
		{"lost", Reason{}, "not an RFC 5280 reason"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.refusal == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.refusal) || !strings.Contains(err.Error(), "keyCompromise (1)") {
				t.Fatalf("Parse(%q) = %+v, %v; want a refusal saying %q and listing the accepted reasons", tt.in, got, err, tt.refusal)
			}
		})
	}
}

func TestName(t *testing.T) {
	for code, want := range map[int]string{0: "unspecified", 1: "keyCompromise", 6: "certificateHold", 9: "privilegeWithdrawn", 42: "reason 42"} {
		if got := Name(code); got != want {
			t.Errorf("Name(%d) = %q, want %q", code, got, want)
		}
	}
}
