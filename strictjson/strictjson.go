// Package strictjson reads JSON from outside as strictly as the server must: one
// value, no member name twice in an object at any depth (compared
// case-insensitively too, since encoding/json matches struct fields that way), a
// bounded depth, and nothing after the value. encoding/json silently keeps the
// last of two equal names and other parsers keep the first; a document two parsers
// read differently must not be acted on (an answer holding "allow": false and
// "allow": true, a header holding "alg" twice). Every JSON the server reads from
// outside goes through it: JWS headers, ACME payloads, admin API bodies, webhook
// answers, register exports.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxDepth bounds how deeply objects and arrays may nest.
const MaxDepth = 32

// Check reports whether data is exactly one JSON value with no duplicate member
// names at any level, nested at most MaxDepth deep, and nothing after it. Its
// errors read after the name of what was checked ("the payload has a duplicate
// member \"allow\"").
func Check(data []byte) error {
	_, err := walk(data)
	return err
}

// CheckObject is Check for a document that must be a JSON object.
func CheckObject(data []byte) error {
	first, err := walk(data)
	if err == nil && first != json.Delim('{') {
		return errors.New("is not a JSON object")
	}
	return err
}

// Unmarshal checks data (Check) and decodes it into v.
func Unmarshal(data []byte, v any) error {
	if err := Check(data); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// walk reads data token by token and returns its first token.
func walk(data []byte) (json.Token, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	first, err := dec.Token()
	if err != nil {
		return nil, errors.New("is not valid JSON")
	}
	type frame struct {
		names   map[string]bool // nil for an array
		wantKey bool
	}
	var stack []*frame
	push := func(tok json.Token) error {
		if len(stack) >= MaxDepth {
			return errors.New("is nested too deeply")
		}
		f := &frame{}
		if tok == json.Delim('{') {
			f = &frame{names: map[string]bool{}, wantKey: true}
		}
		stack = append(stack, f)
		return nil
	}
	if first == json.Delim('{') || first == json.Delim('[') {
		if err := push(first); err != nil {
			return nil, err
		}
	}
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("is not valid JSON")
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
				return nil, fmt.Errorf("has a duplicate member %q", name)
			}
			top.names[folded] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if err := push(tok); err != nil {
				return nil, err
			}
		default:
			if top.names != nil {
				top.wantKey = true
			}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("has data after the JSON value")
	}
	return first, nil
}
