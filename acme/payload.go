package acme

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/varmenne/varmenne/strictjson"
)

// DecodePayload parses a request's JSON payload into v. A payload of the wrong shape is
// the client's malformed request, told in JSON terms: encoding/json's own errors name
// the server's Go types, which are internal and mean nothing to a client.
func DecodePayload(payload []byte, v any) error {
	if len(payload) == 0 {
		return Errorf(Malformed, "the payload is empty; this request needs a JSON object")
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return Errorf(Malformed, "the payload is not valid JSON for this request: %s", jsonProblem(err))
	}
	// Valid JSON may still hold a member twice, which parsers read differently.
	if err := strictjson.Check(payload); err != nil {
		return Errorf(Malformed, "the payload %s", err)
	}
	return nil
}

func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return "a JSON " + typeErr.Value + " is not what this request takes"
		}
		return fmt.Sprintf("member %q cannot be a JSON %s", typeErr.Field, typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return syntaxErr.Error()
	}
	return "it cannot be decoded"
}
