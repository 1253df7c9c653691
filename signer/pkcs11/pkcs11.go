// Package pkcs11 keeps issuer keys in an HSM, reached through a PKCS#11 module
// (github.com/miekg/pkcs11): a pool of logged-in sessions, keys found by label that
// are crypto.Signers (RSA PKCS#1 v1.5 and ECDSA P-256/P-384), and generation of
// non-extractable keys inside the token for `varmenne init`.
//
// A PKCS#11 session must not run two operations at once, so every signature takes
// a session from the pool and gives it back. When the module reports that sessions
// or the login are gone (the token was removed, someone closed every session or
// logged out), the request that saw it fails and the pool starts a new generation:
// the next request closes what is left, opens new sessions and logs in again, so
// the process recovers without a restart. A refused PIN is never retried: tokens
// lock after a few wrong PINs.
//
// The PIN is held in memory only; it is never logged and never part of an error.
// The package builds no certificates and knows nothing of ACME.
package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	p11 "github.com/miekg/pkcs11"
)

// DefaultSessions is the pool size when Config.Sessions is 0.
const DefaultSessions = 4

// ErrClosed is returned after the pool was closed.
var ErrClosed = errors.New("pkcs11: pool closed")

// Config says which module, token and PIN to use.
type Config struct {
	Module     string // path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
	TokenLabel string // the token to use, found by its label
	Slot       *uint  // the slot to use instead of a label lookup (label still checked if given)
	PIN        string // the user PIN; never logged
	// Serial, when set, is the serial number the token must have: checked whenever
	// the token is found, before any login, so a token put in its place (another
	// token under the same label) is never sent the PIN.
	Serial   string
	Sessions int // sessions in the pool, each running one operation at a time (default 4)
	// OnRelogin, when set, hears of every login after the first: the token lost
	// its sessions or its login and the pool logged in again (err nil), or tried
	// and failed. The audit log records them; it must not use the pool.
	OnRelogin func(err error)
}

// LogValue keeps the PIN out of logs.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("module", c.Module), slog.String("token", c.TokenLabel), slog.Int("sessions", c.Sessions)}
	if c.Slot != nil {
		attrs = append(attrs, slog.Uint64("slot", uint64(*c.Slot)))
	}
	return slog.GroupValue(attrs...)
}

// String keeps the PIN out of anything that formats a Config.
func (c Config) String() string {
	return fmt.Sprintf("pkcs11 module %s token %q", c.Module, c.TokenLabel)
}

func (c Config) validate() error {
	switch {
	case c.Module == "":
		return errors.New("pkcs11: no module path; give the PKCS#11 library of the HSM, e.g. /usr/lib/softhsm/libsofthsm2.so")
	case c.TokenLabel == "" && c.Slot == nil:
		return errors.New("pkcs11: no token label or slot; give the label of the token that holds the keys")
	case c.PIN == "":
		return errors.New("pkcs11: no PIN")
	case c.Sessions < 0:
		return fmt.Errorf("pkcs11: %d sessions; give 1 or more", c.Sessions)
	}
	return nil
}

// module is one loaded PKCS#11 library. A library has one state per process
// (C_Initialize, logins), so every pool on the same path shares one module, and it
// is finalized when the last user lets go.
type module struct {
	path string
	ctx  *p11.Ctx
	refs int
}

var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

func loadModule(path string) (*module, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: module %s: %w", path, err)
	}
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[abs]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := p11.New(abs)
	if ctx == nil {
		return nil, fmt.Errorf("pkcs11: cannot load the PKCS#11 module %s; check the path and that it is a PKCS#11 library", abs)
	}
	if err := ctx.Initialize(); err != nil && !isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("pkcs11: initializing %s: %w", abs, err)
	}
	m := &module{path: abs, ctx: ctx, refs: 1}
	modules.m[abs] = m
	return m, nil
}

func (m *module) release() {
	modules.Lock()
	defer modules.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules.m, m.path)
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
}

// session is one slot of the pool: a PKCS#11 session handle, valid while open and
// gen is the pool's generation.
type session struct {
	h    p11.SessionHandle
	gen  uint64
	open bool
}

// Pool is a fixed number of sessions on one token, logged in once. It is safe for
// concurrent use.
type Pool struct {
	cfg  Config
	mod  *module
	idle chan *session
	done chan struct{} // closed by Close

	// ops is held shared by every operation on the module and exclusively while
	// the sessions of an older generation are closed: a module may crash when a
	// session is closed under an operation running in another thread (SoftHSM2
	// does), so a reset waits for operations in flight to finish.
	ops sync.RWMutex

	// mu guards the fields below and is held while sessions are re-established, so
	// one goroutine logs in again while the others wait.
	mu       sync.Mutex
	gen      uint64 // bumped when the module says sessions or the login are gone
	reset    bool   // the sessions of older generations must be closed before reuse
	slot     uint
	slotGen  uint64 // the generation slot was found in
	serial   string // the token's serial number, read when it was found
	loginGen uint64 // the generation the login succeeded in
	fatal    error  // the PIN was refused: never try it again
	closed   bool
}

// Open loads the module, finds the token, opens one session and logs in; a wrong
// PIN or a missing token is reported here, not at the first signature.
func Open(cfg Config) (*Pool, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Sessions == 0 {
		cfg.Sessions = DefaultSessions
	}
	mod, err := loadModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, mod: mod, idle: make(chan *session, cfg.Sessions), done: make(chan struct{}), gen: 1}
	for range cfg.Sessions {
		p.idle <- &session{}
	}
	if err := p.with(context.Background(), func(*session) error { return nil }); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close waits (up to 10 s) for operations in progress, closes the sessions and
// unloads the module when no other pool uses it.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	timeout := time.After(10 * time.Second)
	for range cap(p.idle) {
		select {
		case s := <-p.idle:
			p.ops.Lock()
			p.mu.Lock()
			if s.open && s.gen == p.gen && !p.reset {
				_ = p.mod.ctx.CloseSession(s.h)
			}
			p.mu.Unlock()
			p.ops.Unlock()
		case <-timeout:
		}
	}
	p.mod.release()
	return nil
}

// with takes a free session (waiting until ctx ends), makes it ready — open in
// the current generation and logged in —, runs fn on it and gives it back.
func (p *Pool) with(ctx context.Context, fn func(s *session) error) error {
	var s *session
	select {
	case s = <-p.idle:
	case <-p.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("pkcs11: waiting for a free session: %w", ctx.Err())
	}
	for {
		p.ops.RLock()
		p.mu.Lock()
		reset := p.reset
		p.mu.Unlock()
		if !reset {
			break
		}
		p.ops.RUnlock()
		p.resetSessions()
	}
	err := p.prepare(s)
	if err == nil {
		err = fn(s)
		p.settle(s, err)
	}
	p.ops.RUnlock()
	p.idle <- s
	return err
}

// resetSessions closes every session this process has on the token, once no
// operation runs. Closing them all rather than the old handles one by one matters:
// a module may hand out a closed handle's number again, and closing it by number
// could end a new session. It also drops what is left of the old login.
func (p *Pool) resetSessions() {
	p.ops.Lock()
	defer p.ops.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reset {
		_ = p.mod.ctx.CloseAllSessions(p.slot)
		p.reset = false
	}
}

// prepare makes s ready; the caller holds p.ops shared.
func (p *Pool) prepare(s *session) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.fatal != nil {
		return p.fatal
	}
	if s.open && s.gen == p.gen && p.loginGen == p.gen {
		return nil
	}
	if s.open && s.gen != p.gen {
		s.open = false // closed by the reset of its generation
	}
	if p.slotGen != p.gen {
		slot, serial, err := findSlot(p.mod.ctx, p.cfg)
		if err != nil {
			return err
		}
		p.slot, p.serial, p.slotGen = slot, serial, p.gen
	}
	if !s.open {
		h, err := p.mod.ctx.OpenSession(p.slot, p11.CKF_SERIAL_SESSION)
		if err != nil {
			p.lostLocked(err)
			return fmt.Errorf("pkcs11: opening a session on token %q: %w", p.cfg.TokenLabel, err)
		}
		s.h, s.gen, s.open = h, p.gen, true
	}
	if p.loginGen != p.gen {
		err := p.mod.ctx.Login(s.h, p11.CKU_USER, p.cfg.PIN)
		if isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
			err = nil
		}
		if p.gen > 1 && p.cfg.OnRelogin != nil {
			p.cfg.OnRelogin(err)
		}
		if err != nil && !isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
			_ = p.mod.ctx.CloseSession(s.h)
			s.open = false
			if pinRefused(err) {
				p.fatal = fmt.Errorf("pkcs11: token %q refused the PIN (%w); fix the PIN and restart", p.cfg.TokenLabel, err)
				return p.fatal
			}
			p.lostLocked(err)
			return fmt.Errorf("pkcs11: logging in to token %q: %w", p.cfg.TokenLabel, err)
		}
		p.loginGen = p.gen
	}
	return nil
}

// settle looks at how an operation on s ended; the caller holds p.ops shared.
func (p *Pool) settle(s *session, err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case s.gen != p.gen:
		// Already replaced by a newer generation.
	case lost(err):
		p.lostLocked(err)
	case s.open:
		// An operation that failed otherwise may have left the session in a state
		// no one should inherit; this handle is still ours to close.
		_ = p.mod.ctx.CloseSession(s.h)
		s.open = false
	}
}

// lostLocked starts a new generation when err says sessions or the login are gone.
func (p *Pool) lostLocked(err error) {
	if lost(err) {
		p.gen++
		p.reset = true
	}
}

// findSlot finds the token by slot or label, exactly one token matching, and
// returns its slot and serial number; a token whose serial is not cfg.Serial is
// refused. It logs nothing in: a refusal here costs no PIN try.
func findSlot(c *p11.Ctx, cfg Config) (uint, string, error) {
	var slot uint
	if cfg.Slot != nil {
		slot = *cfg.Slot
	} else {
		slots, err := c.GetSlotList(true)
		if err != nil {
			return 0, "", fmt.Errorf("pkcs11: listing slots: %w", err)
		}
		var found []uint
		for _, s := range slots {
			ti, err := c.GetTokenInfo(s)
			if err == nil && ti.Label == cfg.TokenLabel {
				found = append(found, s)
			}
		}
		switch len(found) {
		case 0:
			return 0, "", fmt.Errorf("pkcs11: no token labelled %q in %s; check the label or initialise the token", cfg.TokenLabel, cfg.Module)
		case 1:
			slot = found[0]
		default:
			return 0, "", fmt.Errorf("pkcs11: %d tokens are labelled %q; give --pkcs11-slot", len(found), cfg.TokenLabel)
		}
	}
	ti, err := c.GetTokenInfo(slot)
	if err != nil {
		return 0, "", fmt.Errorf("pkcs11: slot %d: %w", slot, err)
	}
	if cfg.Slot != nil && cfg.TokenLabel != "" && ti.Label != cfg.TokenLabel {
		return 0, "", fmt.Errorf("pkcs11: slot %d holds token %q, not %q", slot, ti.Label, cfg.TokenLabel)
	}
	serial := strings.TrimSpace(ti.SerialNumber)
	if cfg.Serial != "" && serial != cfg.Serial {
		return 0, "", fmt.Errorf("pkcs11: token %q has serial number %s, not %s: it is not the token the PIN belongs to; nothing was sent to it", ti.Label, serial, cfg.Serial)
	}
	return slot, serial, nil
}

// Serial is the serial number of the pool's token.
func (p *Pool) Serial() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serial
}

// ChangePIN sets the token's user PIN to pin (C_SetPIN, from the PIN the pool
// logged in with). From then on the pool logs in again with the new one.
func (p *Pool) ChangePIN(ctx context.Context, pin string) error {
	if pin == "" {
		return errors.New("pkcs11: no new PIN")
	}
	err := p.with(ctx, func(s *session) error {
		p.mu.Lock()
		slot, old := p.slot, p.cfg.PIN
		p.mu.Unlock()
		// C_SetPIN needs a read-write session; the pool's are read-only.
		rw, err := p.mod.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
		if err != nil {
			return err
		}
		defer p.mod.ctx.CloseSession(rw)
		if err := p.mod.ctx.SetPIN(rw, old, pin); err != nil {
			return err
		}
		p.mu.Lock()
		p.cfg.PIN = pin
		p.mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("pkcs11: changing the PIN of token %q: %w", p.cfg.TokenLabel, err)
	}
	return nil
}

// TokenState is what a token tells without a login.
type TokenState struct {
	Label, Serial string
	// The token's count of wrong PINs: some were given since the last good login
	// (CKF_USER_PIN_COUNT_LOW), the next wrong one locks it, or it is locked.
	PINCountLow, PINFinalTry, PINLocked bool
}

// Inspect finds the token cfg names and reads its state without logging in; the
// PIN is not used.
func Inspect(cfg Config) (TokenState, error) {
	if cfg.Module == "" || (cfg.TokenLabel == "" && cfg.Slot == nil) {
		return TokenState{}, errors.New("pkcs11: give the module and the token's label or slot")
	}
	mod, err := loadModule(cfg.Module)
	if err != nil {
		return TokenState{}, err
	}
	defer mod.release()
	slot, serial, err := findSlot(mod.ctx, cfg)
	if err != nil {
		return TokenState{}, err
	}
	ti, err := mod.ctx.GetTokenInfo(slot)
	if err != nil {
		return TokenState{}, fmt.Errorf("pkcs11: slot %d: %w", slot, err)
	}
	return TokenState{Label: ti.Label, Serial: serial, PINCountLow: ti.Flags&p11.CKF_USER_PIN_COUNT_LOW != 0,
		PINFinalTry: ti.Flags&p11.CKF_USER_PIN_FINAL_TRY != 0, PINLocked: ti.Flags&p11.CKF_USER_PIN_LOCKED != 0}, nil
}

func isCode(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}

// lostCodes are the module's ways of saying that sessions, the login or the token
// are gone; after one, every session of the pool is re-established.
var lostCodes = []uint{
	p11.CKR_SESSION_HANDLE_INVALID,
	p11.CKR_SESSION_CLOSED,
	p11.CKR_USER_NOT_LOGGED_IN,
	p11.CKR_DEVICE_REMOVED,
	p11.CKR_DEVICE_ERROR,
	p11.CKR_TOKEN_NOT_PRESENT,
	p11.CKR_TOKEN_NOT_RECOGNIZED,
	p11.CKR_SLOT_ID_INVALID,
	// Handles of private objects may become invalid when the login is lost.
	p11.CKR_KEY_HANDLE_INVALID,
	p11.CKR_OBJECT_HANDLE_INVALID,
}

func lost(err error) bool {
	for _, c := range lostCodes {
		if isCode(err, c) {
			return true
		}
	}
	return false
}

func pinRefused(err error) bool {
	for _, c := range []uint{p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE, p11.CKR_PIN_EXPIRED, p11.CKR_PIN_LOCKED} {
		if isCode(err, c) {
			return true
		}
	}
	return false
}

// Sessions says how many of the pool's sessions run an operation now, and how
// many the pool has (the metrics read it).
func (p *Pool) Sessions() (inUse, size int) { return cap(p.idle) - len(p.idle), cap(p.idle) }
