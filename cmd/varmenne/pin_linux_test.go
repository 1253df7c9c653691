//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/varmenne/varmenne/signer/ceremony"
)

// TestInheritedPIN: the re-run varmenne reads the PIN from the descriptor its
// first run passed, and leaves neither the descriptor nor its variable behind.
// (Only init runs with the PIN, briefly: serve takes no PIN whole, and test/e2e's
// TestHSMPINFromEnvironment shows it refused there.)
func TestInheritedPIN(t *testing.T) {
	isolate(t)
	// Raw descriptors, as the first run passes them: an *os.File would close its
	// descriptor again when collected, perhaps another file's by then.
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w := p[0], p[1]
	if _, err := syscall.Write(w, []byte("123456")); err != nil {
		t.Fatal(err)
	}
	syscall.Close(w)
	t.Setenv(pinFDEnv, strconv.Itoa(r))
	pin, err := inheritedPIN()
	if err != nil || pin != "123456" {
		t.Fatalf("inheritedPIN = %q, %v", pin, err)
	}
	if _, ok := os.LookupEnv(pinFDEnv); ok {
		t.Errorf("%s is still set", pinFDEnv)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(r, &st); err == nil {
		t.Errorf("descriptor %d is still open", r)
	}
	for _, v := range []string{"abc", "1", "-4"} {
		t.Setenv(pinFDEnv, v)
		if pin, err := inheritedPIN(); err == nil {
			t.Errorf("%s=%s: inheritedPIN = %q, want an error", pinFDEnv, v, pin)
		}
	}
	t.Setenv(pinFDEnv, "")
	os.Unsetenv(pinFDEnv)
	if pin, err := inheritedPIN(); pin != "" || err != nil {
		t.Errorf("without %s: %q, %v", pinFDEnv, pin, err)
	}
}

// TestDropPINFromEnvironRefuses: when varmenne cannot pass the PIN on safely it
// says to use a PIN file, and never echoes the PIN.
func TestDropPINFromEnvironRefuses(t *testing.T) {
	isolate(t)
	t.Setenv(ceremony.PINEnv, "")
	os.Unsetenv(ceremony.PINEnv)
	if err := dropPINFromEnviron(); err != nil {
		t.Fatalf("without a PIN: %v", err)
	}
	t.Setenv(ceremony.PINEnv, "")
	if err := dropPINFromEnviron(); err != nil {
		t.Fatalf("with an empty PIN: %v", err)
	}
	for name, set := range map[string]func(){
		"the descriptor variable set as well": func() { t.Setenv(ceremony.PINEnv, "123456"); t.Setenv(pinFDEnv, "3") },
		"a PIN longer than a pipe takes": func() {
			t.Setenv(ceremony.PINEnv, strings.Repeat("1", maxPIN+1))
			t.Setenv(pinFDEnv, "")
			os.Unsetenv(pinFDEnv)
		},
	} {
		t.Run(name, func(t *testing.T) {
			set()
			err := dropPINFromEnviron()
			if err == nil || !strings.Contains(err.Error(), "--pkcs11-pin-file") || strings.Contains(err.Error(), "123456") || strings.Contains(err.Error(), "1111") {
				t.Fatalf("err %v: want a refusal naming --pkcs11-pin-file without the PIN", err)
			}
		})
	}
}
