package jws

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxDepth bounds how deeply objects and arrays may nest in the parts of a JWS we walk.
// Nothing legitimate in an ACME protected header goes deeper than 3 (header → jwk → oth).
const maxDepth = 16

// checkJSONObject reports whether data is exactly one JSON object with no duplicate
// member names at any level and nothing after it.
//
// encoding/json silently keeps the last of two equal names, and other parsers keep the
// first; a header that two parsers read differently must not be signed and acted on.
// Names are compared case-insensitively as well, because encoding/json matches struct
// fields that way and a header holding both "alg" and "Alg" has no legitimate use.
func checkJSONObject(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return errors.New("is not valid JSON")
	}
	if tok != json.Delim('{') {
		return errors.New("is not a JSON object")
	}

	type frame struct {
		names   map[string]bool // nil for an array
		wantKey bool
	}
	stack := []*frame{{names: map[string]bool{}, wantKey: true}}
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("is not valid JSON")
		}
		top := stack[len(stack)-1]
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].names != nil {
				stack[len(stack)-1].wantKey = true
			}
			continue
		}
		if top.names != nil && top.wantKey {
			name, _ := tok.(string) // the decoder guarantees a member name here
			folded := strings.ToLower(strings.ToUpper(name))
			if top.names[folded] {
				return fmt.Errorf("has a duplicate member %q", name)
			}
			top.names[folded] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxDepth {
				return errors.New("is nested too deeply")
			}
			f := &frame{}
			if tok == json.Delim('{') {
				f = &frame{names: map[string]bool{}, wantKey: true}
			}
			stack = append(stack, f)
		default:
			if top.names != nil {
				top.wantKey = true
			}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("has data after the JSON object")
	}
	return nil
}

// decodeB64 decodes base64url without padding, refusing anything another decoder
// might read differently: padding, the standard alphabet's '+' and '/', white space
// (which encoding/base64 would skip) and non-zero trailing bits.
func decodeB64(s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, false
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, false
	}
	return b, true
}
