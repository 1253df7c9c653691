package pkcs11

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"

	p11 "github.com/miekg/pkcs11"
	"github.com/varmenne/varmenne/signer/pkcs11/softhsmtest"
)

// One SoftHSM2 token for the package: SoftHSM reads its configuration when the
// module is initialised, so every test of the process shares one token directory.
var testToken = sync.OnceValues(func() (*softhsmtest.Token, error) {
	if err := softhsmtest.Check(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "varmenne-softhsm-")
	if err != nil {
		return nil, err
	}
	conf, err := softhsmtest.Config(dir)
	if err != nil {
		return nil, err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	return softhsmtest.NewToken(conf, "varmenne-unit")
})

func TestMain(m *testing.M) {
	code := m.Run()
	if tok, err := testToken(); err == nil && tok != nil {
		os.RemoveAll(tok.Conf[:len(tok.Conf)-len("/softhsm2.conf")])
	}
	os.Exit(code)
}

func token(t testing.TB) *softhsmtest.Token {
	t.Helper()
	tok, err := testToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func testConfig(t testing.TB, sessions int) Config {
	tok := token(t)
	return Config{Module: softhsmtest.Module, TokenLabel: tok.Label, PIN: tok.PIN, Sessions: sessions}
}

func openPool(t testing.TB, sessions int) *Pool {
	t.Helper()
	p, err := Open(testConfig(t, sessions))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Keys of each kind, generated once per process in the shared token.
var (
	keyLabelsMu sync.Mutex
	keyLabels   = map[string]string{}
)

// key returns the token's key of kind on pool p, generating it on first use.
func key(t testing.TB, p *Pool, kind string) *Key {
	t.Helper()
	keyLabelsMu.Lock()
	defer keyLabelsMu.Unlock()
	ctx := context.Background()
	if label, ok := keyLabels[kind]; ok {
		k, err := p.Key(ctx, label)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	label := "unit-" + kind + "-" + randomHex()
	k, err := p.Generate(ctx, label, kind)
	if err != nil {
		t.Fatal(err)
	}
	keyLabels[kind] = label
	return k
}

func randomHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hsmOp is another user of the same module in this process, as an operator tool
// or a second application would be: it acts on the token behind the pool's back.
func hsmOp(t testing.TB, p *Pool, op string) {
	t.Helper()
	m, err := loadModule(p.cfg.Module)
	if err != nil {
		t.Fatal(err)
	}
	defer m.release()
	p.mu.Lock()
	slot := p.slot
	p.mu.Unlock()
	switch op {
	case "close all sessions":
		// SoftHSM2 frees a session's memory on close, so closing one while another
		// thread is inside C_Sign on it crashes the process: that is a flaw of the
		// module, not a fault an HSM reports. The second handle therefore closes
		// the sessions between two PKCS#11 calls; requests that hold a session
		// then still run into the closed handle.
		p.ops.Lock()
		defer p.ops.Unlock()
		if err := m.ctx.CloseAllSessions(slot); err != nil {
			t.Fatal(err)
		}
	case "logout":
		h, err := m.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.ctx.Logout(h); err != nil {
			t.Fatal(err)
		}
		_ = m.ctx.CloseSession(h)
	default:
		panic(fmt.Sprintf("unknown op %q", op))
	}
}
