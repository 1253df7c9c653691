package jws

import (
	"encoding/base64"

	"github.com/varmenne/varmenne/strictjson"
)

// checkJSONObject reports whether data is exactly one JSON object with no duplicate
// member names at any level and nothing after it (strictjson): a header two
// parsers read differently must not be signed and acted on.
func checkJSONObject(data []byte) error { return strictjson.CheckObject(data) }

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
