package validate

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/varmenne/varmenne/acme/validate/dnssec"
)

// dns-01 and CAA ask the resolver directly instead of through net.Resolver: CAA is a
// record type the standard library cannot look up, and both must tell SERVFAIL and
// timeouts ("cannot know") apart from NXDOMAIN and empty answers ("nothing there"),
// which net.Resolver folds together.

// typeCAA is RR type 257 (RFC 8659); dnsmessage has no constant for it.
const typeCAA = dnsmessage.Type(257)

const (
	// maxCNAMEs bounds an alias chain, as resolvers do; a longer one is a loop or abuse.
	maxCNAMEs = 8
	// dnsTryTimeout bounds one query to one server, so a lost UDP packet is retried
	// within the validation deadline.
	dnsTryTimeout = 2 * time.Second
	// dnsRounds is how often every server is asked before a failure is final.
	dnsRounds = 2
	// ednsSize is the UDP answer size we offer (the DNS flag day 2020 value).
	ednsSize = 1232
)

// lookupError says why a DNS question got no usable answer. reason is written for a
// problem detail.
type lookupError struct {
	name   string
	reason string
	bogus  bool // the answer failed DNSSEC validation
}

func (e *lookupError) Error() string {
	if e.bogus {
		return e.reason // says the name itself
	}
	return "DNS lookup of " + e.name + " failed: " + e.reason
}

// rrset is the answer to one question after following CNAMEs.
type rrset struct {
	owner    string                    // the name the records belong to, no trailing dot
	aliases  []string                  // the CNAME targets followed, in order
	records  []dnsmessage.ResourceBody // the records of the asked type at owner
	nxdomain bool                      // owner does not exist
}

// via says which aliases were followed, for a problem detail.
func (s *rrset) via() string {
	if len(s.aliases) == 0 {
		return ""
	}
	return " (following CNAME to " + strings.Join(s.aliases, " → ") + ")"
}

// lookup asks for the records of typ at name and follows CNAMEs, whether the
// resolver already chased them in its answer or stopped at an alias.
func (v *Validator) lookup(ctx context.Context, name string, typ dnsmessage.Type) (*rrset, error) {
	target := strings.ToLower(strings.TrimSuffix(name, "."))
	set := &rrset{owner: target}
	for {
		m, err := v.query(ctx, target, typ)
		if err != nil {
			return nil, err
		}
		owner := target
		for {
			var next string
			for _, rr := range m.Answers {
				if !sameName(rr.Header.Name, owner) {
					continue
				}
				switch {
				case rr.Header.Type == typ:
					set.records = append(set.records, rr.Body)
				case rr.Header.Type == dnsmessage.TypeCNAME:
					next = trimDot(rr.Body.(*dnsmessage.CNAMEResource).CNAME.String())
				}
			}
			set.owner = owner
			if len(set.records) > 0 || next == "" {
				break
			}
			if len(set.aliases) == maxCNAMEs {
				return nil, &lookupError{name: name, reason: fmt.Sprintf("the CNAME chain is longer than %d aliases", maxCNAMEs)}
			}
			set.aliases = append(set.aliases, next)
			owner = next
		}
		if len(set.records) > 0 || owner == target || m.RCode == dnsmessage.RCodeNameError {
			set.nxdomain = len(set.records) == 0 && m.RCode == dnsmessage.RCodeNameError
			return set, nil
		}
		// The answer ended at an alias without records: the resolver did not chase
		// it (or its target has none); ask for the target ourselves.
		target = owner
	}
}

// query asks the configured servers one question, retrying lost packets and other
// servers, and returns the first NOERROR or NXDOMAIN answer once DNSSEC found it
// secure or provably unsigned.
func (v *Validator) query(ctx context.Context, name string, typ dnsmessage.Type) (*dnsmessage.Message, error) {
	m, raw, err := v.ask(ctx, name, typ)
	if err != nil {
		return nil, err
	}
	full, err := unpack(name, raw)
	if err != nil {
		return nil, err
	}
	if err := v.dnssec.Check(ctx, name, uint16(typ), full); err != nil {
		var b *dnssec.BogusError
		if errors.As(err, &b) {
			return nil, &lookupError{name: name, reason: b.Error(), bogus: true}
		}
		return nil, err
	}
	return m, nil
}

// askDNSSEC is the DNSSEC checker's way to the resolver: one question, unchecked.
func (v *Validator) askDNSSEC(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	_, raw, err := v.ask(ctx, strings.TrimSuffix(name, "."), dnsmessage.Type(qtype))
	var le *lookupError
	if errors.As(err, &le) && le.name == "" {
		le.name = "the root zone"
	}
	if err != nil {
		return nil, err
	}
	return unpack(name, raw)
}

// unpack reads an answer as the DNSSEC checker needs it, with its signatures and
// proofs (miekg/dns; the lookup itself reads it with dnsmessage).
func unpack(name string, raw []byte) (*dns.Msg, error) {
	var m dns.Msg
	if err := m.Unpack(raw); err != nil {
		return nil, &lookupError{name: name, reason: "the DNS server sent an answer this validator cannot read"}
	}
	return &m, nil
}

// ask sends one question to the configured servers, retrying lost packets and other
// servers, and returns the first NOERROR or NXDOMAIN answer, parsed and as sent.
func (v *Validator) ask(ctx context.Context, name string, typ dnsmessage.Type) (*dnsmessage.Message, []byte, error) {
	q, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return nil, nil, &lookupError{name: name, reason: "the name cannot be asked in DNS"}
	}
	question := dnsmessage.Question{Name: q, Type: typ, Class: dnsmessage.ClassINET}
	var last error
	for range dnsRounds {
		for _, server := range v.dnsServers {
			if ctx.Err() != nil {
				return nil, nil, v.lookupFailure(ctx, name, last)
			}
			m, raw, err := exchange(ctx, server, question)
			switch {
			case err != nil:
				last = err
			case m.RCode == dnsmessage.RCodeSuccess || m.RCode == dnsmessage.RCodeNameError:
				return m, raw, nil
			default:
				// SERVFAIL, REFUSED…: another server, or a second try, may know.
				last = rcodeError(m.RCode)
			}
		}
	}
	return nil, nil, v.lookupFailure(ctx, name, last)
}

// rcodeError is an answer that says the server could not answer.
type rcodeError dnsmessage.RCode

func (e rcodeError) Error() string {
	// The mnemonics of RFC 1035 and RFC 6895, as dig shows them.
	name, ok := map[dnsmessage.RCode]string{
		dnsmessage.RCodeFormatError:    "FORMERR",
		dnsmessage.RCodeServerFailure:  "SERVFAIL",
		dnsmessage.RCodeNotImplemented: "NOTIMP",
		dnsmessage.RCodeRefused:        "REFUSED",
	}[dnsmessage.RCode(e)]
	if !ok {
		name = fmt.Sprintf("RCODE %d", int(e))
	}
	return "the DNS server answered " + name
}

// lookupFailure explains the last failure of a lookup without resolver internals.
func (v *Validator) lookupFailure(ctx context.Context, name string, err error) *lookupError {
	var rc rcodeError
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return &lookupError{name: name, reason: "the validation was cancelled"}
	case errors.As(err, &rc):
		return &lookupError{name: name, reason: rc.Error()}
	case ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout():
		return &lookupError{name: name, reason: fmt.Sprintf("no answer within the validation deadline of %s", v.cfg.Timeout)}
	default:
		return &lookupError{name: name, reason: "the DNS server could not be reached or sent an unusable answer"}
	}
}

// exchange sends one question to server over UDP, and over TCP when the answer was
// truncated. Answers that do not match the question and its random ID are ignored,
// so an off-path guess cannot answer for the server.
// The question asks for signatures and proofs (EDNS DO) and for the data unchecked
// (CD): the validator judges DNSSEC itself.
func exchange(ctx context.Context, server string, q dnsmessage.Question) (*dnsmessage.Message, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsTryTimeout)
	defer cancel()
	m, raw, err := exchangeOver(ctx, "udp", server, q)
	if err == nil && m.Truncated {
		m, raw, err = exchangeOver(ctx, "tcp", server, q)
	}
	return m, raw, err
}

func exchangeOver(ctx context.Context, network, server string, q dnsmessage.Question) (*dnsmessage.Message, []byte, error) {
	var idb [2]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, nil, err
	}
	id := binary.BigEndian.Uint16(idb[:])
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true, CheckingDisabled: true})
	b.EnableCompression()
	var opt dnsmessage.ResourceHeader
	err := errors.Join(b.StartQuestions(), b.Question(q), b.StartAdditionals(),
		opt.SetEDNS0(ednsSize, dnsmessage.RCodeSuccess, true), b.OPTResource(opt, dnsmessage.OPTResource{}))
	if err != nil {
		return nil, nil, err
	}
	msg, err := b.Finish()
	if err != nil {
		return nil, nil, err
	}

	var d net.Dialer
	c, err := d.DialContext(ctx, network, server)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline)
	}

	if network == "tcp" {
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
			return nil, nil, err
		}
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return nil, nil, err
		}
		buf := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, nil, err
		}
		m, ok := answerTo(buf, id, q)
		if !ok {
			return nil, nil, errors.New("validate: the DNS server sent an answer to another question")
		}
		return m, buf, nil
	}

	if _, err := c.Write(msg); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, nil, err
		}
		if m, ok := answerTo(buf[:n], id, q); ok {
			return m, buf[:n], nil
		}
	}
}

// answerTo parses b and reports whether it answers question q with id.
func answerTo(b []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, bool) {
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil || !m.Response || m.ID != id || len(m.Questions) != 1 {
		return nil, false
	}
	got := m.Questions[0]
	if got.Type != q.Type || got.Class != q.Class || !sameName(got.Name, trimDot(q.Name.String())) {
		return nil, false
	}
	return &m, true
}

// sameName compares a name from a message with a lower-case name without the dot.
func sameName(n dnsmessage.Name, name string) bool {
	return strings.EqualFold(trimDot(n.String()), name)
}

func trimDot(s string) string { return strings.TrimSuffix(s, ".") }

// systemDNSServers are the name servers of /etc/resolv.conf, or the loopback
// resolver when it names none (as the Go resolver assumes).
func systemDNSServers() []string {
	var out []string
	if f, err := os.Open("/etc/resolv.conf"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 || fields[0] != "nameserver" {
				continue
			}
			if ip, err := netip.ParseAddr(fields[1]); err == nil {
				out = append(out, netip.AddrPortFrom(ip, 53).String())
			}
		}
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:53", "[::1]:53"}
	}
	return out
}
