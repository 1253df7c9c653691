//go:build !linux

package main

// Elsewhere than Linux no /proc/PID/environ shows the environment a process
// started with; the PIN is read from VARMENNE_PKCS11_PIN and unset
// (ceremony.HSM.ReadPIN), as before.

func dropPINFromEnviron() error { return nil }

func inheritedPIN() (string, error) { return "", nil }
