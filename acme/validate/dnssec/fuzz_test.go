package dnssec

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// FuzzCheck feeds the Checker answers it must judge without failing on any: the seeds
// are genuine signed answers of the test server (positive, NODATA, NXDOMAIN, NSEC and
// NSEC3, unsigned), which the fuzzer mutates; the chain of trust comes from the
// server, untouched. Nothing may panic or hang.
func FuzzCheck(f *testing.F) {
	d, anchors := signedServer(f)
	c, _ := checker(f, d, anchors, nil)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"www.n1.test", dns.TypeTXT}, {"www.n3.test", dns.TypeTXT}, {"www.plain.test", dns.TypeA},
		{"www.n1.test", dns.TypeCAA}, {"none.n3.test", dns.TypeCAA}, {"none.n1.test", dns.TypeTXT},
	} {
		r, err := askServer(context.Background(), d.Addr(), q.name, q.qtype)
		if err != nil {
			f.Fatal(err)
		}
		b, err := r.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m dns.Msg
		if m.Unpack(b) != nil || len(m.Question) != 1 {
			return
		}
		q := m.Question[0]
		c.Check(context.Background(), q.Name, q.Qtype, &m)
	})
}
