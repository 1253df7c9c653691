package ceremony

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/signer/pkcs11"
)

// TestSplitAndCombine: the two shares of a split, written and read back, make the
// PIN; neither share is the PIN, and the order they are given in does not matter.
func TestSplitAndCombine(t *testing.T) {
	pin, shares, err := newSplit("tok", "00aa", [2]string{"Aino Virtanen", "Eero Korhonen"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(pin) < 48 {
		t.Fatalf("the new PIN has %d characters; want 192 random bits", len(pin))
	}
	var read [2]Share
	for i, s := range shares {
		b := s.Marshal()
		if bytes.Contains(b, []byte(pin)) {
			t.Fatalf("share %d holds the PIN in clear", i+1)
		}
		if read[i], err = ParseShare("share", b); err != nil {
			t.Fatal(err)
		}
		if string(read[i].secret) == pin {
			t.Fatalf("share %d is the PIN", i+1)
		}
	}
	for _, order := range [][2]Share{{read[0], read[1]}, {read[1], read[0]}} {
		act, err := Combine(order[0], order[1], "tok")
		if err != nil || act.PIN != pin || !slices.Equal(act.Holders, []string{"Aino Virtanen", "Eero Korhonen"}) || act.Serial != "00aa" {
			t.Fatalf("Combine = %+v, %v; want the PIN, serial 00aa and the holders in share order", act, err)
		}
	}
}

// activationToken is a SoftHSM2 token on which a ceremony split the PIN, with the
// share files it wrote and the record of the split.
type activationToken struct {
	h      HSM
	dir    string // pki/
	shares [2]string
	mem    *memoryLog
	out    string
	oldPIN string // the PIN file the ceremony logged in with
}

func splitToken(t *testing.T) *activationToken {
	t.Helper()
	h := newToken(t)
	pool, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	holders := t.TempDir()
	a := &activationToken{h: h, dir: dir, mem: &memoryLog{},
		shares: [2]string{filepath.Join(holders, "aino.share"), filepath.Join(holders, "eero.share")}}
	var out bytes.Buffer
	c := &Ceremony{Log: audit.New(a.mem, nil), Actor: "Aino Virtanen+Eero Korhonen", Pool: pool, Dir: dir, Now: time.Now(), Out: &out}
	if err := c.SplitPIN(context.Background(), h.Token, []string{"Aino Virtanen", "Eero Korhonen"}, a.shares[:], false); err != nil {
		t.Fatalf("SplitPIN: %v", err)
	}
	pool.Close() // the module is finalised: the next pool logs in afresh
	a.out = out.String()
	a.oldPIN = a.h.PINFile
	a.h.PINFile = ""
	a.h.SharesOnly = true
	a.h.ActivationRecord = filepath.Join(dir, ActivationRecordFile)
	return a
}

// pinTries reads whether the token counted a wrong PIN since its last good login.
func pinTries(t *testing.T, h HSM) bool {
	t.Helper()
	st, err := pkcs11.Inspect(pkcs11.Config{Module: h.Module, TokenLabel: h.Token})
	if err != nil {
		t.Fatal(err)
	}
	return st.PINCountLow
}

// TestSplitPINActivatesWithBothShares: the ceremony gives the token a new PIN in two
// share files, its holders' only, and records who holds which; the PIN it was given
// no longer works; both shares together log in, naming the holders.
func TestSplitPINActivatesWithBothShares(t *testing.T) {
	a := splitToken(t)
	for i, f := range a.shares {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("share file %s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
		if !strings.Contains(a.out, f) || !strings.Contains(string(mustRead(t, f)), []string{"holder: Aino Virtanen", "holder: Eero Korhonen"}[i]) {
			t.Errorf("share %d (%s) is not named for its holder in the file or the output:\n%s", i+1, f, a.out)
		}
	}
	a.mem.mu.Lock()
	events := slices.Clone(a.mem.events)
	a.mem.mu.Unlock()
	if len(events) != 1 || events[0].Action != "hsm.activation.split" || events[0].Outcome != audit.OK ||
		!strings.Contains(events[0].Object, `share1="Aino Virtanen" share2="Eero Korhonen"`) {
		t.Fatalf("recorded %+v; want one hsm.activation.split naming the holders of share 1 and 2", events)
	}
	for _, f := range a.shares {
		s, _ := ReadShare(f)
		if strings.Contains(events[0].Object, string(s.secret)) {
			t.Error("the audit record holds a share")
		}
	}

	t.Run("the PIN given to the ceremony no longer works", func(t *testing.T) {
		h := a.h
		h.SharesOnly, h.PINFile = false, a.oldPIN
		if p, err := h.Open(); err == nil {
			p.Close()
			t.Fatal("the ceremony's PIN still logs in")
		} else if !strings.Contains(err.Error(), "refused the PIN") {
			t.Fatalf("Open with the old PIN = %v", err)
		}
		// This wrong PIN is what a refused share must never cost: the token counted it.
		if !pinTries(t, a.h) {
			t.Fatal("SoftHSM2 did not count a wrong PIN; the refusals below could not show one")
		}
	})

	h := a.h
	h.PINShares = a.shares[:]
	pool, act, err := h.Activate()
	if err != nil {
		t.Fatalf("Activate with both shares: %v", err)
	}
	defer pool.Close()
	if !slices.Equal(act.Holders, []string{"Aino Virtanen", "Eero Korhonen"}) || act.Serial == "" || act.Serial != pool.Serial() {
		t.Errorf("activation %+v (token serial %s)", act, pool.Serial())
	}
	if pinTries(t, a.h) {
		t.Error("the token still counts wrong PINs after the shares logged in")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeShareFile writes s as a share file, its owner's only, and returns its path.
func writeShareFile(t *testing.T, s Share) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "forged.share")
	if err := os.WriteFile(p, s.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestActivationRefusals: whatever is wrong with what two people give, the start is
// refused with the reason, and the token counts no wrong PIN: nothing reached it.
func TestActivationRefusals(t *testing.T) {
	a := splitToken(t)
	aino, eero := a.shares[0], a.shares[1]
	real, err := ReadShare(aino)
	if err != nil {
		t.Fatal(err)
	}
	// Shares a ceremony could have made, consistent in themselves.
	split := func(token, serial string) [2]string {
		_, s, err := newSplit(token, serial, [2]string{"Aino Virtanen", "Eero Korhonen"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return [2]string{writeShareFile(t, s[0]), writeShareFile(t, s[1])}
	}
	earlier := split(a.h.Token, real.Serial)
	otherToken := split("other-token", real.Serial)
	otherSerial := split(a.h.Token, "0000000000000000")

	damaged := filepath.Join(t.TempDir(), "damaged.share")
	b := mustRead(t, eero)
	i := bytes.Index(b, []byte("secret: ")) + len("secret: ")
	b[i] ^= 1
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	eeroShare, err := ReadShare(eero)
	if err != nil {
		t.Fatal(err)
	}
	eeroShare.secret[0] ^= 1 // edited, its checksum made again
	forged := writeShareFile(t, eeroShare)
	exposed := filepath.Join(t.TempDir(), "exposed.share")
	if err := os.WriteFile(exposed, mustRead(t, eero), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(exposed, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		shares  []string
		pinFile bool
		env     string
		want    string
		// noRecord: a data directory without pki/activation, so the token's serial
		// number is what refuses
		noRecord bool
	}{
		{"nothing given", nil, false, "", "no activation shares given", false},
		{"one share", []string{aino}, false, "", "one activation share activates nothing", false},
		{"the same holder's share twice", []string{aino, aino}, false, "", "are both Aino Virtanen's", false},
		{"three shares", []string{aino, eero, aino}, false, "", "3 activation shares given", false},
		{"a PIN file instead of shares", nil, true, "", "a PIN given whole (--pkcs11-pin-file) would let one person activate them", false},
		{"the PIN in the environment instead of shares", nil, false, "123456", "a PIN given whole ($" + PINEnv + ")", false},
		{"both shares and a PIN file", []string{aino, eero}, true, "", "both activation shares and a PIN", false},
		{"a share with a damaged line", []string{aino, damaged}, false, "", "is damaged or was edited", false},
		{"a share edited and its checksum made again", []string{aino, forged}, false, "", "do not make the PIN they were split from", false},
		{"a share swapped for one of another split", []string{aino, earlier[1]}, false, "", "are from different ceremonies", false},
		{"both shares of another token", otherToken[:], false, "", `is for token "other-token"`, false},
		{"shares of a token of the same label and another serial number", otherSerial[:], false, "", "not the token the PIN belongs to", true},
		{"both shares of a split a later step replaced", earlier[:], false, "", "which a later ceremony step replaced", false},
		{"a share group and others may read", []string{aino, exposed}, false, "", "readable by group or others", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(PINEnv, tt.env)
			}
			h := a.h
			h.PINShares = tt.shares
			if tt.pinFile {
				h.PINFile = a.oldPIN
			}
			if tt.noRecord {
				h.ActivationRecord = ""
			}
			pool, _, err := h.Activate()
			if err == nil {
				pool.Close()
				t.Fatal("activated")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("refusal %q; want one line saying %q", err, tt.want)
			}
			if pinTries(t, a.h) {
				t.Fatal("the token counted a wrong PIN: the refused activation reached it")
			}
		})
	}
}
