//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/varmenne/varmenne/signer/ceremony"
)

// The HSM PIN given in VARMENNE_PKCS11_PIN would stay readable in
// /proc/PID/environ for the life of the process: the kernel shows the
// environment the process started with, whatever it unsets since. So a varmenne
// started with the PIN there runs itself again at once, the same process and
// arguments, with an environment without it; the PIN goes to the new image
// through a pipe, whose reading end it inherits, named by pinFDEnv. Started so,
// varmenne reads the pipe first thing and holds the PIN in memory only.

// pinFDEnv names the inherited descriptor holding the PIN.
const pinFDEnv = "VARMENNE_PKCS11_PIN_FD"

// maxPIN bounds a PIN: it must fit the pipe's buffer, written before the exec.
const maxPIN = 1024

// dropPINFromEnviron runs varmenne again without ceremony.PINEnv in its
// environment when it is there; it returns only when there is nothing to do or it
// cannot, with the error that says to give a PIN file instead.
func dropPINFromEnviron() error {
	pin, ok := os.LookupEnv(ceremony.PINEnv)
	if !ok || pin == "" {
		return nil // no secret to hide; an empty PIN is refused where a PIN is needed
	}
	refuse := func(why string) error {
		return fmt.Errorf("the HSM PIN is in %s, where /proc/%d/environ would show it while varmenne runs, and %s: give --pkcs11-pin-file FILE (its owner's only) instead", ceremony.PINEnv, os.Getpid(), why)
	}
	if _, again := os.LookupEnv(pinFDEnv); again {
		return refuse(pinFDEnv + " is set as well")
	}
	if len(pin) > maxPIN {
		return refuse(fmt.Sprintf("it is longer than %d bytes", maxPIN))
	}
	var p [2]int
	// Without O_CLOEXEC: the reading end must survive the exec; the writing end is
	// closed before it.
	if err := syscall.Pipe2(p[:], 0); err != nil {
		return refuse("no pipe could be made for it: " + err.Error())
	}
	r, w := p[0], p[1]
	_, err := syscall.Write(w, []byte(pin))
	syscall.Close(w)
	if err != nil {
		syscall.Close(r)
		return refuse("it could not be written to a pipe: " + err.Error())
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, ceremony.PINEnv+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, pinFDEnv+"="+strconv.Itoa(r))
	// /proc/self/exe is this very program, even if its file was replaced since.
	err = syscall.Exec("/proc/self/exe", os.Args, env)
	syscall.Close(r)
	return refuse("varmenne could not run itself again without it: " + err.Error())
}

// inheritedPIN reads the PIN from the descriptor pinFDEnv names, set by
// dropPINFromEnviron before it ran this process, and closes it; "" when there is
// none.
func inheritedPIN() (string, error) {
	v, ok := os.LookupEnv(pinFDEnv)
	if !ok {
		return "", nil
	}
	os.Unsetenv(pinFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return "", fmt.Errorf("%s=%q is not a descriptor varmenne passed itself", pinFDEnv, v)
	}
	f := os.NewFile(uintptr(fd), "HSM PIN pipe")
	b, err := io.ReadAll(io.LimitReader(f, maxPIN+1))
	f.Close()
	if err != nil {
		return "", fmt.Errorf("reading the HSM PIN from descriptor %d: %w", fd, err)
	}
	if len(b) == 0 || len(b) > maxPIN {
		return "", fmt.Errorf("descriptor %d does not hold an HSM PIN", fd)
	}
	return string(b), nil
}
