package strictjson

import (
	"bytes"
	"encoding/json"
	"io"
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

// FuzzCheck holds Check to its promise in both directions, against a second,
// recursive reader of the same token stream: what Check accepts is valid JSON,
// nested at most MaxDepth deep, and never holds two names in one object that
// encoding/json would match to the same field (bytes.EqualFold); and a valid
// document within the depth whose names differ after the documented folding is
// never refused. The seed corpus is testdata/fuzz/FuzzCheck.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `[{"a":{"b":[1,2,{"c":3}]}}]`, `"x"`, `{`,
		`{"allow":false,"ALLOW":true}`, `{"K":1,"\u212a":2}`, `{"s":1,"\u017f":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data)
		depth, jsonDup, ruleDup, ok := readAll(data)
		switch {
		case err == nil && !json.Valid(data):
			t.Fatalf("Check accepted invalid JSON %q", data)
		case err == nil && !ok:
			t.Fatalf("Check accepted %q, which the second reader cannot read", data)
		case err == nil && depth > MaxDepth:
			t.Fatalf("Check accepted nesting %d deep", depth)
		case err == nil && jsonDup != nil:
			t.Fatalf("Check accepted a duplicate member %q", *jsonDup)
		case err != nil && ok && json.Valid(data) && depth <= MaxDepth && ruleDup == nil:
			t.Fatalf("Check refused %q: %v", data, err)
		}
		if err := CheckObject(data); err == nil && bytes.TrimLeft(data, " \t\r\n")[0] != '{' {
			t.Fatalf("CheckObject accepted %q", data)
		}
	})
}

// readAll reads one JSON value recursively and reports its depth, a member name
// that repeats in its object as encoding/json matches names (bytes.EqualFold), one
// that repeats under the rule Check documents (upper- then lower-casing), nil for
// none, and whether the value was read with nothing after it.
func readAll(data []byte) (depth int, jsonDup, ruleDup *string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // 1e700 is valid JSON, if no float64
	var value func(tok json.Token, level int) bool
	value = func(tok json.Token, level int) bool {
		d, isDelim := tok.(json.Delim)
		if !isDelim {
			return true
		}
		depth = max(depth, level)
		var names []string
		for dec.More() {
			if d == '{' {
				tok, err := dec.Token()
				if err != nil {
					return false
				}
				name := tok.(string)
				for _, n := range names {
					if jsonDup == nil && bytes.EqualFold([]byte(n), []byte(name)) {
						jsonDup = &name
					}
					if ruleDup == nil && strings.ToLower(strings.ToUpper(n)) == strings.ToLower(strings.ToUpper(name)) {
						ruleDup = &name
					}
				}
				names = append(names, name)
			}
			tok, err := dec.Token()
			if err != nil || !value(tok, level+1) {
				return false
			}
		}
		_, err := dec.Token() // the closing delimiter
		return err == nil
	}
	tok, err := dec.Token()
	if err != nil || !value(tok, 1) {
		return depth, jsonDup, ruleDup, false
	}
	_, err = dec.Token()
	return depth, jsonDup, ruleDup, err == io.EOF
}
