package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"log/syslog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
)

// facility is syslog's authpriv (10): security messages, kept from other users.
const facility = 10

// severityCode is syslog's severity of s (RFC 5424 6.2.1).
func severityCode(s Severity) int {
	switch s {
	case Critical:
		return 2
	case Warning:
		return 4
	case Notice:
		return 5
	default:
		return 6
	}
}

// Syslog is the sink of target: "local" for the local syslog daemon (its
// socket, log/syslog), or udp://HOST:PORT or tcp://HOST:PORT for a syslog server
// that takes RFC 5424 messages (over TCP framed by octet counting, RFC 6587).
func Syslog(target, host string) (Sink, error) {
	if target == "local" {
		w, err := syslog.New(syslog.LOG_AUTHPRIV|syslog.LOG_NOTICE, "varmenne")
		if err != nil {
			return nil, fmt.Errorf("--alert-syslog local: no local syslog daemon answers (%v); give udp://HOST:PORT or tcp://HOST:PORT of a syslog server", err)
		}
		return &localSyslog{w: w}, nil
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "udp" && u.Scheme != "tcp") || u.Port() == "" || u.Path != "" || u.User != nil {
		return nil, fmt.Errorf("--alert-syslog %q: give local, udp://HOST:PORT or tcp://HOST:PORT", target)
	}
	return &netSyslog{network: u.Scheme, addr: u.Host, host: host, pid: os.Getpid()}, nil
}

type localSyslog struct{ w *syslog.Writer }

func (l *localSyslog) Name() string { return "syslog" }

func (l *localSyslog) Send(_ context.Context, a Alert) error {
	msg := message(a)
	switch a.Severity {
	case Critical:
		return l.w.Crit(msg)
	case Warning:
		return l.w.Warning(msg)
	case Notice:
		return l.w.Notice(msg)
	default:
		return l.w.Info(msg)
	}
}

// message is the text of a: its kind, summary and fields as JSON.
func message(a Alert) string {
	fields, _ := json.Marshal(a.Fields)
	return a.Kind + ": " + a.Summary + " " + string(fields)
}

// netSyslog sends RFC 5424 messages to a syslog server, dialling again after a
// failed write.
type netSyslog struct {
	network, addr, host string
	pid                 int

	mu   sync.Mutex
	conn net.Conn
}

func (n *netSyslog) Name() string { return "syslog " + n.network + "://" + n.addr }

func (n *netSyslog) Send(ctx context.Context, a Alert) error {
	line := n.format(a)
	if n.network == "tcp" {
		line = strconv.Itoa(len(line)) + " " + line
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for try := 0; try < 2; try++ {
		if n.conn == nil {
			var d net.Dialer
			c, err := d.DialContext(ctx, n.network, n.addr)
			if err != nil {
				return err
			}
			n.conn = c
		}
		if dl, ok := ctx.Deadline(); ok {
			n.conn.SetWriteDeadline(dl)
		}
		if _, err := n.conn.Write([]byte(line)); err == nil {
			return nil
		} else if try == 1 {
			return err
		}
		n.conn.Close()
		n.conn = nil
	}
	return nil
}

// format is a as an RFC 5424 message: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID
// MSGID STRUCTURED-DATA MSG, the kind as MSGID, no structured data, and the
// summary and fields as MSG.
func (n *netSyslog) format(a Alert) string {
	pri := facility*8 + severityCode(a.Severity)
	return fmt.Sprintf("<%d>1 %s %s varmenne %d %s - %s", pri, a.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		header(n.host), n.pid, header(a.Kind), message(a))
}

// header makes s a header field of RFC 5424: printable US-ASCII without spaces,
// at most 48 characters, "-" when empty.
func header(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if len(s) > 48 {
		s = s[:48]
	}
	if s == "" {
		return "-"
	}
	return s
}
