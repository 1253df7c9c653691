// Package nonce issues and redeems ACME replay nonces (RFC 8555 section 6.5).
//
// A nonce is this instance's prefix followed by random bytes, all base64url. The
// in-memory Pool stores nothing when it issues: its nonces carry their issue time
// and a MAC, and only used ones are remembered until they expire, so a flood of
// new-nonce requests evicts no client's nonce. A nonce is accepted once; an expired
// one, or one issued before a restart, is refused with badNonce, which every
// client answers by retrying with the fresh nonce it is given.
// Shared does the same for any number of replicas on one database: a nonce issued by
// one is accepted once by any of them.
package nonce

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
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

// Pool is an in-memory nonce service for one process. Issuing stores nothing: a
// nonce carries its issue time and a MAC under the pool's key, so a flood of
// new-nonce requests, however large, evicts no client's nonce. Redeeming records
// the nonce as used until it expires; the used set is bounded by max, and when
// it is full the oldest entries leave it and every nonce issued before them is
// refused as expired (never accepted twice). Only redemptions, each a signed
// request, can fill it.
type Pool struct {
	prefix string
	key    [32]byte
	max    int
	ttl    time.Duration
	now    func() time.Time

	mu       sync.Mutex
	used     map[string]time.Time // redeemed nonce → its issue time
	order    *list.List           // of entry, in the order redeemed
	lowWater time.Time            // nonces issued before it are refused
}

type entry struct {
	nonce  string
	issued time.Time
}

// The random part of a pool nonce: issue time, random bytes, MAC.
const (
	timeLen = 6 // milliseconds since the Unix epoch, big-endian
	saltLen = 4
	macLen  = randomLen - timeLen - saltLen
)

// NewPool makes a pool whose nonces live ttl and that remembers at most max used
// nonces.
func NewPool(max int, ttl time.Duration) *Pool {
	p := &Pool{prefix: newPrefix(), max: max, ttl: ttl, now: time.Now, used: map[string]time.Time{}, order: list.New()}
	if _, err := rand.Read(p.key[:]); err != nil {
		panic("nonce: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return p
}

// Issue returns a fresh nonce; it never fails and stores nothing.
func (p *Pool) Issue(context.Context) (string, error) {
	var b [randomLen]byte
	ms := uint64(p.now().UnixMilli())
	for i := range timeLen {
		b[i] = byte(ms >> (8 * (timeLen - 1 - i)))
	}
	if _, err := rand.Read(b[timeLen : timeLen+saltLen]); err != nil {
		panic("nonce: no randomness: " + err.Error())
	}
	copy(b[timeLen+saltLen:], p.mac(b[:timeLen+saltLen]))
	return p.prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (p *Pool) mac(b []byte) []byte {
	h := hmac.New(sha256.New, p.key[:])
	h.Write([]byte(p.prefix))
	h.Write(b)
	return h.Sum(nil)[:macLen]
}

// Redeem accepts n once. Every refusal is a badNonce *acme.Error.
func (p *Pool) Redeem(_ context.Context, n string) error {
	if err := checkForm(n); err != nil {
		return err
	}
	if !strings.HasPrefix(n, p.prefix) {
		return acme.Errorf(acme.BadNonce, "the nonce was issued by another server instance or before a restart; retry with the nonce in this response")
	}
	b, _ := base64.RawURLEncoding.DecodeString(n[prefixLen:]) // checkForm decoded it
	if !hmac.Equal(b[timeLen+saltLen:], p.mac(b[:timeLen+saltLen])) {
		return acme.Errorf(acme.BadNonce, "the nonce was not issued by this server; retry with the nonce in this response")
	}
	var ms uint64
	for i := range timeLen {
		ms = ms<<8 | uint64(b[i])
	}
	issued := time.UnixMilli(int64(ms))
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case now.Sub(issued) > p.ttl:
		return acme.Errorf(acme.BadNonce, "the nonce has expired; retry with the nonce in this response")
	case issued.Before(p.lowWater):
		return acme.Errorf(acme.BadNonce, "the nonce is older than this server remembers used nonces for; retry with the nonce in this response")
	}
	if _, ok := p.used[n]; ok {
		return acme.Errorf(acme.BadNonce, "the nonce was already used; retry with the nonce in this response")
	}
	// Forget what expired; then, if still full, raise the low-water mark past the
	// oldest remembered ones, so that none of them can be accepted again.
	for e := p.order.Front(); e != nil && now.Sub(e.Value.(entry).issued) > p.ttl; e = p.order.Front() {
		delete(p.used, e.Value.(entry).nonce)
		p.order.Remove(e)
	}
	for p.order.Len() >= p.max {
		e := p.order.Front()
		old := e.Value.(entry)
		if !old.issued.Before(p.lowWater) {
			p.lowWater = old.issued.Add(time.Millisecond)
		}
		delete(p.used, old.nonce)
		p.order.Remove(e)
	}
	if issued.Before(p.lowWater) {
		return acme.Errorf(acme.BadNonce, "the nonce is older than this server remembers used nonces for; retry with the nonce in this response")
	}
	p.used[n] = issued
	p.order.PushBack(entry{nonce: n, issued: issued})
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
