package e2e

import (
	"encoding/json"
	"io"
	"os"
	"testing"
)

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
