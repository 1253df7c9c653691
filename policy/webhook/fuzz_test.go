package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/strictjson"
)

// FuzzAnswer fuzzes the policy service's answer as the plugin reads it: the real
// plugin POSTs to a loopback service that answers with the fuzzed status and body.
//
// Properties: the plugin allows only on a 2xx answer that is one JSON object whose
// single "allow" member (spelt so: a name encoding/json would read as "allow" or
// "detail" in another case is refused) is literally true, with no two member names
// encoding/json would read as one, so a
// duplicated allow never turns a refusal into an allow; it does allow every such
// answer strictjson and encoding/json read alike; and every refusal is unauthorized
// with a short, printable detail. Seeds: testdata/fuzz/FuzzAnswer.
func FuzzAnswer(f *testing.F) {
	for _, s := range []struct {
		status uint16
		body   string
	}{
		{200, `{"allow": true}`},
		{202, `{"allow": true, "detail": "ok"}`},
		{200, `{"allow": false, "detail": "host not in inventory"}`},
		{200, `{"allow": false, "allow": true}`},
		{200, `{"Allow": true}`},
		{200, `{"allow": "true"}`},
		{500, `{"allow": true}`},
		{200, `[{"allow": true}]`},
		{200, `{"allow": true} {"allow": false}`},
	} {
		f.Add(s.status, []byte(s.body))
	}

	var mu sync.Mutex
	var status int
	var answer []byte
	srv, _ := service(f, func(w http.ResponseWriter, _ *http.Request, _ Body) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write(answer)
	})
	cfg := loopbackConfig(f, srv.URL)
	cfg.Timeout = policy.Duration(time.Minute) // a loaded machine must not turn an answer into a timeout
	p, err := build(f, cfg)
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, code uint16, body []byte) {
		mu.Lock()
		status, answer = int(code), body
		if status < 200 || status > 599 {
			status = 200 + status%400
		}
		mu.Unlock()
		err := p.CheckOrder(context.Background(), request())

		// What the service sent: a 204 or 304 carries no body.
		sent := body
		if status == http.StatusNoContent || status == http.StatusNotModified {
			sent = nil
		}
		ok2xx := status >= 200 && status <= 299
		if err == nil {
			if !ok2xx {
				t.Fatalf("allowed on HTTP %d", status)
			}
			if why := notAnAllow(sent); why != "" {
				t.Fatalf("allowed on %q, which %s", sent, why)
			}
			return
		}
		ae, ok := acme.AsError(err)
		if !ok || ae.Kind != acme.Unauthorized {
			t.Fatalf("refusal %v is not unauthorized", err)
		}
		if len(ae.Detail) > 600 {
			t.Fatalf("a detail of %d bytes reaches the client", len(ae.Detail))
		}
		for _, r := range ae.Detail {
			if !unicode.IsPrint(r) {
				t.Fatalf("detail %q holds %U", ae.Detail, r)
			}
		}
		var a Answer
		if ok2xx && len(sent) <= maxAnswer && strictjson.CheckObject(sent) == nil && json.Unmarshal(sent, &a) == nil && a.Allow != nil && *a.Allow &&
			inexactMember(sent) == "" {
			t.Fatalf("refused %q on HTTP %d: %v", sent, status, err)
		}
	})
}

// notAnAllow says why body is not an answer that may allow, read here token by
// token: "" when it is one JSON object, with nothing after it, whose member names
// are pairwise distinct as encoding/json compares them (case-insensitively) at
// every depth, and whose allow member is true.
func notAnAllow(body []byte) string {
	if !json.Valid(body) {
		return "is not valid JSON"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	why := ""
	var allow json.Token = "(none)"
	var read func(tok json.Token, depth int) bool
	read = func(tok json.Token, depth int) bool {
		d, isDelim := tok.(json.Delim)
		if !isDelim {
			return true
		}
		var names []string
		for dec.More() {
			name := ""
			if d == '{' {
				nt, err := dec.Token()
				if err != nil {
					return false
				}
				name = nt.(string)
				for _, n := range names {
					if why == "" && bytes.EqualFold([]byte(n), []byte(name)) {
						why = "holds member " + name + " twice"
					}
				}
				names = append(names, name)
			}
			vt, err := dec.Token()
			if err != nil {
				return false
			}
			if depth == 0 && d == '{' {
				switch {
				case name == "allow":
					allow = vt
				case why == "" && name != "detail" && (bytes.EqualFold([]byte(name), []byte("allow")) || bytes.EqualFold([]byte(name), []byte("detail"))):
					why = "has member " + name + ", not in lower case"
				}
			}
			if !read(vt, depth+1) {
				return false
			}
		}
		_, err := dec.Token()
		return err == nil
	}
	first, err := dec.Token()
	switch {
	case err != nil || first != json.Delim('{'):
		return "is not an object"
	case !read(first, 0):
		return "cannot be read"
	case why != "":
		return why
	}
	if _, err := dec.Token(); err != io.EOF {
		return "has data after the object"
	}
	if allow != true {
		return fmt.Sprintf("has allow %v, not true", allow)
	}
	return ""
}
