package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCeremonyActor(t *testing.T) {
	tests := []struct {
		name      string
		operators []string
		want      string // actor, or "" for a refusal
	}{
		{"two different people", []string{"Aino", "Eero"}, "Aino+Eero"},
		{"three people", []string{"Aino", "Eero", "Liisa"}, "Aino+Eero+Liisa"},
		{"one person", []string{"Aino"}, ""},
		{"the same person twice", []string{"Aino", " Aino "}, ""},
		{"an empty name", []string{"Aino", " "}, ""},
		{"nobody", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ceremonyActor(tt.operators)
			if tt.want == "" {
				if err == nil {
					t.Errorf("accepted %q as %q", tt.operators, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ceremonyActor(%q) = %q, %v; want %q", tt.operators, got, err, tt.want)
			}
		})
	}
}

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pin")
	if err := os.WriteFile(file, []byte("123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pinFile string
		env     string
		want    string // "" means an error
	}{
		{"from the file, newline dropped", file, "", "123456"},
		{"the file wins over the environment", file, "999999", "123456"},
		{"from the environment", "", "654321", "654321"},
		{"neither", "", "", ""},
		{"empty file", empty, "", ""},
		{"missing file", filepath.Join(dir, "nope"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(pinEnv, tt.env)
			} else {
				t.Setenv(pinEnv, "")
				os.Unsetenv(pinEnv)
			}
			h := &hsmConfig{pinFile: tt.pinFile}
			got, err := h.readPIN()
			if tt.want == "" {
				if err == nil {
					t.Errorf("readPIN = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("readPIN = %q, %v; want %q", got, err, tt.want)
			}
			if tt.pinFile == "" {
				if _, ok := os.LookupEnv(pinEnv); ok {
					t.Errorf("%s is still in the environment after reading it", pinEnv)
				}
			}
		})
	}
}

func TestInitRefusals(t *testing.T) {
	data := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no HSM", []string{"--operator", "A", "--operator", "B"}, "--pkcs11-module"},
		{"one operator", []string{"--pkcs11-module", "/x.so", "--pkcs11-token", "t", "--operator", "A"}, "two operators"},
		{"unknown key type", []string{"--pkcs11-module", "/x.so", "--pkcs11-token", "t", "--operator", "A", "--operator", "B", "--key-type", "dsa"}, "--key-type"},
		{"a PIN flag does not exist", []string{"--pkcs11-pin", "1234"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), append([]string{"init", "--data", data}, tt.args...), &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("init %v = %v, want an error saying %q", tt.args, err, tt.want)
			}
		})
	}
}
