// Package nonce issues and redeems ACME replay nonces (RFC 8555 section 6.5).
//
// A nonce is this instance's prefix followed by random bytes, all base64url. The
// in-memory Pool keeps a bounded window of outstanding nonces: a nonce is accepted
// once, a nonce evicted from the window or issued before a restart is refused with
// badNonce, which every client answers by retrying with the fresh nonce it is given.
// Shared does the same for any number of replicas on one database: a nonce issued by
// one is accepted once by any of them.
package nonce

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/varmenne/varmenne/acme"
)

const (
	prefixLen = 4  // base64url characters naming the issuing instance
	randomLen = 16 // random bytes in each nonce
	// Len is the length of every nonce this package issues.
	Len = prefixLen + (randomLen*8+5)/6
)

// Pool is an in-memory nonce service for one process.
type Pool struct {
	prefix string
	max    int
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	live  map[string]*list.Element
	order *list.List // of entry, oldest first
}

type entry struct {
	nonce  string
	issued time.Time
}

// NewPool makes a pool that remembers at most max outstanding nonces, each for ttl.
func NewPool(max int, ttl time.Duration) *Pool {
	return &Pool{
		prefix: newPrefix(),
		max:    max,
		ttl:    ttl,
		now:    time.Now,
		live:   make(map[string]*list.Element),
		order:  list.New(),
	}
}

// Issue returns a fresh nonce; it never fails.
func (p *Pool) Issue(context.Context) (string, error) {
	n := newNonce(p.prefix)
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.order.Len() >= p.max {
		oldest := p.order.Front()
		delete(p.live, oldest.Value.(entry).nonce)
		p.order.Remove(oldest)
	}
	p.live[n] = p.order.PushBack(entry{nonce: n, issued: p.now()})
	return n, nil
}

// Redeem accepts n once. Every refusal is a badNonce *acme.Error.
func (p *Pool) Redeem(_ context.Context, n string) error {
	if err := checkForm(n); err != nil {
		return err
	}
	if !strings.HasPrefix(n, p.prefix) {
		return acme.Errorf(acme.BadNonce, "the nonce was issued by another server instance or before a restart; retry with the nonce in this response")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	el, ok := p.live[n]
	if !ok {
		return acme.Errorf(acme.BadNonce, "the nonce was already used or has expired; retry with the nonce in this response")
	}
	delete(p.live, n)
	p.order.Remove(el)
	if p.now().Sub(el.Value.(entry).issued) > p.ttl {
		return acme.Errorf(acme.BadNonce, "the nonce has expired; retry with the nonce in this response")
	}
	return nil
}

// newNonce is prefix followed by randomLen random bytes, base64url.
func newNonce(prefix string) string {
	var b [randomLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("nonce: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// newPrefix names an issuing instance.
func newPrefix() string {
	var b [prefixLen * 6 / 8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("nonce: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func checkForm(n string) error {
	if n == "" {
		return acme.Errorf(acme.BadNonce, "the JWS protected header has no nonce; get one from newNonce")
	}
	if len(n) != Len {
		return acme.Errorf(acme.BadNonce, "the nonce has %d characters; this server's nonces have %d", len(n), Len)
	}
	if _, err := base64.RawURLEncoding.DecodeString(n[prefixLen:]); err != nil || strings.ContainsAny(n, "+/=") {
		return acme.Errorf(acme.BadNonce, "the nonce is not base64url")
	}
	return nil
}
