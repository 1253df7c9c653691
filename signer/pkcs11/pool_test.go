package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/signertest"
	"github.com/varmenne/varmenne/store"
)

func TestOpenRefusals(t *testing.T) {
	good := testConfig(t, 2)
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no module", func(c *Config) { c.Module = "" }, "no module path"},
		{"module that is not a PKCS#11 library", func(c *Config) { c.Module = "/etc/hostname" }, "cannot load the PKCS#11 module"},
		{"unknown token", func(c *Config) { c.TokenLabel = "no-such-token" }, `no token labelled "no-such-token"`},
		{"no PIN", func(c *Config) { c.PIN = "" }, "no PIN"},
		{"wrong PIN", func(c *Config) { c.PIN = "wrong-" + c.PIN }, "refused the PIN"},
		{"a token with another serial number", func(c *Config) { c.Serial = "0123456789abcdef" }, "not the token the PIN belongs to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			p, err := Open(cfg)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), good.PIN) {
				t.Errorf("error %q contains the PIN", err)
			}
		})
	}
	t.Run("Config formats without its PIN", func(t *testing.T) {
		for _, s := range []string{good.String(), good.LogValue().String()} {
			if strings.Contains(s, good.PIN) {
				t.Errorf("%q contains the PIN", s)
			}
		}
	})
}

func TestGeneratedKeysStayInTheToken(t *testing.T) {
	p := openPool(t, 2)
	ctx := context.Background()
	label := "gen-" + randomHex()
	k, err := p.Generate(ctx, label, "ecdsa-p256")
	if err != nil {
		t.Fatal(err)
	}
	info := k.Info()
	if !info.Sensitive || info.Extractable || !info.NeverExtractable {
		t.Errorf("key attributes %+v: want sensitive, not extractable, never extractable", info)
	}
	if info.Label != label || len(info.ID) != 32 || info.Type != "ecdsa-p256" {
		t.Errorf("key info %+v: want label %s, a 16-byte id and type ecdsa-p256", info, label)
	}
	t.Run("a label in use is refused", func(t *testing.T) {
		if _, err := p.Generate(ctx, label, "ecdsa-p256"); err == nil || !strings.Contains(err.Error(), "already holds") {
			t.Errorf("second Generate(%s) = %v, want a refusal", label, err)
		}
	})
	t.Run("found again by label with the same public key", func(t *testing.T) {
		again, err := p.Key(ctx, label)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Public().(*ecdsa.PublicKey).Equal(k.Public()) {
			t.Error("public key differs")
		}
	})
	t.Run("an unknown label is an error", func(t *testing.T) {
		if _, err := p.Key(ctx, "no-such-key"); err == nil || !strings.Contains(err.Error(), "no private key labelled") {
			t.Errorf("Key(no-such-key) = %v", err)
		}
	})
}

func TestSignRefusesBadDigests(t *testing.T) {
	p := openPool(t, 1)
	for _, kind := range []string{"rsa-2048", "ecdsa-p256"} {
		k := key(t, p, kind)
		d := sha256.Sum256([]byte("x"))
		if _, err := k.Sign(rand.Reader, d[:20], crypto.SHA256); err == nil {
			t.Errorf("%s signed a digest of the wrong length", kind)
		}
		if _, err := k.Sign(rand.Reader, d[:], crypto.Hash(0)); err == nil {
			t.Errorf("%s signed without a hash", kind)
		}
	}
}

// TestRecoversFromLostSessions: someone closes every session or logs out while
// requests run. Requests in flight fail with an error, never with a signature that
// does not verify; once the fault is over the very next request succeeds, without
// a new pool.
func TestRecoversFromLostSessions(t *testing.T) {
	for _, op := range []string{"close all sessions", "logout"} {
		t.Run(op, func(t *testing.T) {
			// Every login after the first is heard of (the audit log records it).
			var relogins atomic.Int64
			cfg := testConfig(t, 3)
			cfg.OnRelogin = func(error) { relogins.Add(1) }
			p, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			k := key(t, p, "ecdsa-p256")
			pub := k.Public().(*ecdsa.PublicKey)
			d := sha256.Sum256([]byte("load"))

			var ok, failed atomic.Int64
			var bad atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
						switch {
						case err != nil:
							failed.Add(1)
						case !ecdsa.VerifyASN1(pub, d[:], sig):
							bad.Add(1)
						default:
							ok.Add(1)
						}
					}
				}()
			}
			// Let the load start, fault it a few times, then stop it.
			waitFor(t, func() bool { return ok.Load() >= 20 })
			for range 3 {
				hsmOp(t, p, op)
				before := ok.Load()
				waitFor(t, func() bool { return ok.Load() > before+10 })
			}
			close(stop)
			wg.Wait()
			if bad.Load() != 0 {
				t.Fatalf("%d signatures returned that do not verify", bad.Load())
			}
			t.Logf("under load: %d signed, %d failed", ok.Load(), failed.Load())
			if failed.Load() == 0 {
				t.Errorf("no request failed: the %s never reached the pool", op)
			}

			// Sequentially: the first request after the fault may fail, the next succeeds.
			hsmOp(t, p, op)
			var errs []error
			for range 2 {
				sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
				if err == nil && !ecdsa.VerifyASN1(pub, d[:], sig) {
					t.Fatal("a signature that does not verify was returned")
				}
				errs = append(errs, err)
			}
			if errs[1] != nil {
				t.Errorf("second request after %s failed: %v (first: %v)", op, errs[1], errs[0])
			}
			if relogins.Load() == 0 {
				t.Errorf("the pool logged in again after the %s, but OnRelogin heard nothing", op)
			}

			// The same through signer.CA: the second issuance after the fault yields a
			// certificate that verifies (Issue returns none that does not).
			_, iss := signertest.PKI(t, k)
			ca := signer.New(iss, signertest.Profile(), signertest.NewRecorder(), nil, nil)
			hsmOp(t, p, op)
			for i := range 2 {
				sub, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				got, err := ca.Issue(context.Background(), signer.Request{OrderID: "o", PublicKey: sub.Public(), Names: []string{"www.example.fi"}})
				if i == 1 && err != nil {
					t.Errorf("second issuance after %s failed: %v", op, err)
				}
				if err == nil && got.Cert.CheckSignatureFrom(iss.Cert) != nil {
					t.Error("an issued certificate does not verify")
				}
			}
		})
	}
}

// waitFor polls cond; it gives up (failing the test) after a minute, which no
// healthy run comes near.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSignHonoursTheDeadline: with every session busy, a signature whose context
// ends fails with the context's error and leaves no goroutine behind.
func TestSignHonoursTheDeadline(t *testing.T) {
	p := openPool(t, 1)
	k := key(t, p, "ecdsa-p256")
	held := <-p.idle // every session busy
	d := sha256.Sum256([]byte("late"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := k.SignContext(ctx, rand.Reader, d[:], crypto.SHA256)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SignContext with every session busy = %v, want context.DeadlineExceeded", err)
	}
	p.idle <- held

	if n := goroutinesIn("signer/pkcs11.(*Key)"); n != 0 {
		t.Errorf("%d goroutines still inside the key after the deadline", n)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := k.SignContext(done, rand.Reader, d[:], crypto.SHA256); !errors.Is(err, context.Canceled) {
		t.Errorf("SignContext with an ended context = %v, want context.Canceled", err)
	}
	if _, err := k.SignContext(context.Background(), rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Errorf("the session is free again, but SignContext failed: %v", err)
	}
}

func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) && !strings.Contains(g, "goroutinesIn") {
			n++
		}
	}
	return n
}

func TestClosedPoolRefuses(t *testing.T) {
	p, err := Open(testConfig(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	k := key(t, p, "ecdsa-p256")
	p.Close()
	d := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, ErrClosed) {
		t.Errorf("Sign after Close = %v, want ErrClosed", err)
	}
}

func TestLostErrors(t *testing.T) {
	tests := []struct {
		err  error
		lost bool
	}{
		{p11.Error(p11.CKR_SESSION_HANDLE_INVALID), true},
		{p11.Error(p11.CKR_SESSION_CLOSED), true},
		{p11.Error(p11.CKR_USER_NOT_LOGGED_IN), true},
		{p11.Error(p11.CKR_DEVICE_REMOVED), true},
		{p11.Error(p11.CKR_TOKEN_NOT_PRESENT), true},
		{fmt.Errorf("wrapped: %w", p11.Error(p11.CKR_DEVICE_REMOVED)), true},
		{p11.Error(p11.CKR_DATA_LEN_RANGE), false},
		{p11.Error(p11.CKR_PIN_INCORRECT), false},
		{errors.New("not a PKCS#11 error"), false},
	}
	for _, tt := range tests {
		if got := lost(tt.err); got != tt.lost {
			t.Errorf("lost(%v) = %v, want %v", tt.err, got, tt.lost)
		}
	}
}

// TestIssueThroughClosedPool: a signature the token never started is reported as
// signer.ErrUnsigned, so the CA closes the intent and frees the subject's key.
func TestIssueThroughClosedPool(t *testing.T) {
	p, err := Open(testConfig(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	k := key(t, p, "ecdsa-p256")
	_, iss := signertest.PKI(t, k)
	rec := &failRecorder{}
	ca := signer.New(iss, signertest.Profile(), rec, nil, nil)
	p.Close()
	sub, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err = ca.Issue(context.Background(), signer.Request{OrderID: "o", PublicKey: sub.Public(), Names: []string{"www.example.fi"}})
	if !errors.Is(err, signer.ErrUnsigned) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Issue through a closed pool = %v, want ErrUnsigned and ErrClosed", err)
	}
	if len(rec.failed) != 1 || !strings.Contains(rec.failed[0], "issuer key not used") {
		t.Errorf("intents closed: %q, want one, saying the key was not used", rec.failed)
	}
}

type failRecorder struct {
	mu     sync.Mutex
	failed []string
}

func (r *failRecorder) RecordIntent(context.Context, store.IssuanceIntent) error { return nil }
func (r *failRecorder) FailIntent(_ context.Context, serial, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, reason)
	return nil
}
