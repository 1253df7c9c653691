package strictjson

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name, in, refusal string // refusal "" accepted
	}{
		{"an object", `{"allow": true, "reason": "ok"}`, ""},
		{"an array of objects with the same names", `[{"a":1},{"a":2}]`, ""},
		{"a string", `"x"`, ""},
		{"a duplicate member", `{"allow": false, "allow": true}`, `duplicate member "allow"`},
		{"a duplicate in another case", `{"allow": false, "Allow": true}`, `duplicate member "Allow"`},
		{"a duplicate deep inside", `{"a": [{"b": {"c": 1, "c": 2}}]}`, `duplicate member "c"`},
		{"equal names in sibling objects are fine", `{"a": {"x": 1}, "b": {"x": 2}}`, ""},
		{"data after the value", `{"a":1} {"a":2}`, "data after"},
		{"not JSON", `{"a":`, "not valid JSON"},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "too deeply"},
		{"deep but within the bound", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check([]byte(tt.in))
			if tt.refusal == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.refusal) {
				t.Fatalf("Check = %v, want a refusal saying %q", err, tt.refusal)
			}
		})
	}
	if err := CheckObject([]byte(`[1]`)); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("CheckObject of an array: %v", err)
	}
	var v struct{ Allow bool }
	if err := Unmarshal([]byte(`{"allow": false, "allow": true}`), &v); err == nil || v.Allow {
		t.Errorf("Unmarshal of a duplicated allow: %v, allow %t", err, v.Allow)
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `[{"a":{"b":[1,2,{"c":3}]}}]`, `"x"`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = Check(data) // must not panic or hang
	})
}
