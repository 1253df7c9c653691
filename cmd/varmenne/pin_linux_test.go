//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/signer/ceremony"
)

// TestInheritedPIN: the re-run varmenne reads the PIN from the descriptor its
// first run passed, and leaves neither the descriptor nor its variable behind.
// (That the PIN leaves /proc/PID/environ is shown on the built binary by
// test/e2e's TestHSMPINFromEnvironment.)
func TestInheritedPIN(t *testing.T) {
	isolate(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("123456"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Setenv(pinFDEnv, strconv.Itoa(int(r.Fd())))
	pin, err := inheritedPIN()
	if err != nil || pin != "123456" {
		t.Fatalf("inheritedPIN = %q, %v", pin, err)
	}
	if _, ok := os.LookupEnv(pinFDEnv); ok {
		t.Errorf("%s is still set", pinFDEnv)
	}
	if _, err := r.Stat(); err == nil {
		t.Errorf("the pipe is still open")
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
