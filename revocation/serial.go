package revocation

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

// SerialReading is one way of reading a serial number an operator typed.
type SerialReading struct {
	Hex  string // the serial in the store's form: lower-case hex of its bytes
	Base string // "hex" or "decimal"
}

// SerialReadings reads a certificate serial given in hex (optionally with 0x or
// colons) or in decimal, as operators copy it from openssl or from a relying
// party's report. base is "hex", "decimal", or "auto"/"": then a serial with 0x,
// colons or a–f is hex, and one of digits only is read both ways (an 18-byte SOTE
// serial in hex may have no letters). It returns the readings that are positive
// numbers, and an error when none is.
func SerialReadings(s, base string) ([]SerialReading, error) {
	s = strings.ToLower(strings.Join(strings.Fields(s), ""))
	var bases []string
	switch base {
	case "hex", "decimal":
		bases = []string{base}
	case "auto", "":
		if strings.HasPrefix(s, "0x") || strings.ContainsAny(s, ":abcdef") {
			bases = []string{"hex"}
		} else {
			bases = []string{"hex", "decimal"}
		}
	default:
		return nil, fmt.Errorf("serial base %q: use auto, hex or decimal", base)
	}
	var out []SerialReading
	var err error
	for _, b := range bases {
		var h string
		if h, err = serialHex(s, b); err == nil {
			out = append(out, SerialReading{Hex: h, Base: b})
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case len(bases) == 1:
		return nil, err
	default:
		return nil, fmt.Errorf("serial %q is neither a hex nor a decimal number", s)
	}
}

func serialHex(s, base string) (string, error) {
	n := new(big.Int)
	ok := false
	switch base {
	case "hex":
		h := strings.ReplaceAll(strings.TrimPrefix(s, "0x"), ":", "")
		if h != "" && strings.Trim(h, "0123456789abcdef") == "" {
			_, ok = n.SetString(h, 16)
		}
	case "decimal":
		if s != "" && strings.Trim(s, "0123456789") == "" {
			_, ok = n.SetString(s, 10)
		}
	}
	if !ok {
		return "", fmt.Errorf("serial %q is not a %s number", s, base)
	}
	if n.Sign() <= 0 {
		return "", fmt.Errorf("serial %q is zero; a certificate serial is positive", s)
	}
	return hex.EncodeToString(n.Bytes()), nil
}
