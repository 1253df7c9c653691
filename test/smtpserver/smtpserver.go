// Package smtpserver is an SMTP server on loopback for tests: it speaks enough
// of RFC 5321 (EHLO/HELO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP,
// QUIT) for a client to deliver a message, and keeps what it received. It can
// refuse recipients or the message, to test a client's failures. Tests only.
package smtpserver

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one message as the server received it.
type Message struct {
	From string
	To   []string
	Data []byte // as received, dot-unstuffed, CRLF line ends
	TLS  bool   // sent after STARTTLS
	User string // the AUTH PLAIN user; "": none
}

// Server is a running server.
type Server struct {
	// RefuseRcpt, when set, is the reply to every RCPT, e.g. "550 5.1.1 no such user".
	RefuseRcpt string
	// RefuseData, when set, is the reply after the message's end, e.g. "554 5.7.1 rejected".
	RefuseData string
	// TLS, when set, makes the server offer STARTTLS.
	TLS *tls.Config
	// Password is what AUTH PLAIN accepts (any user); "": AUTH is not offered.
	Password string

	ln       net.Listener
	mu       sync.Mutex
	messages []Message
	arrived  chan struct{}
	wg       sync.WaitGroup
}

// Start listens on 127.0.0.1 on a free port; configure s before the first client.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, arrived: make(chan struct{}, 1000)}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// StartT is Start for a test: edit, when not nil, configures the server before its
// first client, and the server stops when the test ends.
func StartT(t testing.TB, edit func(*Server)) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(s)
	}
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's HOST:PORT.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and waits for its connections to end.
func (s *Server) Close() {
	s.ln.Close()
	s.wg.Wait()
}

// Messages are the messages received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Wait waits up to timeout for n messages in all and returns them; fewer when
// the time ran out.
func (s *Server) Wait(n int, timeout time.Duration) []Message {
	deadline := time.After(timeout)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.arrived:
		case <-deadline:
			return s.Messages()
		}
	}
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			s.session(c)
		}()
	}
}

// session is one client's conversation.
func (s *Server) session(c net.Conn) {
	tp := textproto.NewConn(c)
	reply := func(format string, args ...any) bool { return tp.PrintfLine(format, args...) == nil }
	if !reply("220 smtpserver.test ESMTP ready") {
		return
	}
	var m Message
	greeted := false
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			greeted, m = true, Message{TLS: m.TLS, User: m.User}
			ext := []string{"250-smtpserver.test", "250-8BITMIME"}
			if s.TLS != nil && !m.TLS {
				ext = append(ext, "250-STARTTLS")
			}
			if s.Password != "" && m.TLS {
				ext = append(ext, "250-AUTH PLAIN")
			}
			ext = append(ext, "250 SMTPUTF8")
			for _, e := range ext {
				if !reply("%s", e) {
					return
				}
			}
		case "STARTTLS":
			if s.TLS == nil || m.TLS {
				reply("502 5.5.1 not offered")
				continue
			}
			if !reply("220 2.0.0 go ahead") {
				return
			}
			tc := tls.Server(c, s.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, tp = tc, textproto.NewConn(tc)
			reply = func(format string, args ...any) bool { return tp.PrintfLine(format, args...) == nil }
			m, greeted = Message{TLS: true}, false
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if !strings.EqualFold(mech, "PLAIN") || err != nil || len(parts) != 3 || parts[2] != s.Password || s.Password == "" {
				reply("535 5.7.8 authentication failed")
				continue
			}
			m.User = parts[1]
			reply("235 2.7.0 authenticated")
		case "MAIL":
			if !greeted {
				reply("503 5.5.1 say EHLO first")
				continue
			}
			m.From = address(arg, "FROM:")
			reply("250 2.1.0 ok")
		case "RCPT":
			if m.From == "" {
				reply("503 5.5.1 MAIL first")
				continue
			}
			if s.RefuseRcpt != "" {
				reply("%s", s.RefuseRcpt)
				continue
			}
			m.To = append(m.To, address(arg, "TO:"))
			reply("250 2.1.5 ok")
		case "DATA":
			if len(m.To) == 0 {
				reply("503 5.5.1 RCPT first")
				continue
			}
			if !reply("354 end with <CRLF>.<CRLF>") {
				return
			}
			lines, err := tp.ReadDotLines()
			if err != nil {
				return
			}
			if s.RefuseData != "" {
				reply("%s", s.RefuseData)
				m = Message{TLS: m.TLS, User: m.User}
				continue
			}
			m.Data = []byte(strings.Join(lines, "\r\n") + "\r\n")
			s.mu.Lock()
			s.messages = append(s.messages, m)
			s.mu.Unlock()
			s.arrived <- struct{}{}
			reply("250 2.0.0 queued")
			m = Message{TLS: m.TLS, User: m.User}
		case "RSET":
			m = Message{TLS: m.TLS, User: m.User}
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("500 5.5.2 %s not understood", fmt.Sprint(verb))
		}
	}
}

// address is the path of "FROM:<a@b>" or "TO:<a@b> PARAMS".
func address(arg, prefix string) string {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return ""
	}
	a := strings.TrimSpace(arg[len(prefix):])
	a, _, _ = strings.Cut(a, " ")
	return strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
}
