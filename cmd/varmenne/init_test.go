package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

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
		{"a ceremony without share files", []string{"--pkcs11-module", "/x.so", "--pkcs11-token", "t", "--operator", "A", "--operator", "B"}, "give --share-out FILE twice"},
		{"a ceremony with one share file", []string{"--pkcs11-module", "/x.so", "--pkcs11-token", "t", "--operator", "A", "--operator", "B", "--share-out", "/tmp/a"}, "(got 1)"},
		{"a share file that exists", []string{"--pkcs11-module", "/x.so", "--pkcs11-token", "t", "--operator", "A", "--operator", "B", "--share-out", "/etc/hostname", "--share-out", "/tmp/b"}, "a share is never overwritten"},
		{"a share file in a directory that does not exist", []string{"--pkcs11-module", "/x.so", "--pkcs11-token", "t", "--operator", "A", "--operator", "B", "--share-out", "/nonexistent/a", "--share-out", "/tmp/b"}, "its directory /nonexistent does not exist"},
		{"share files with --tls-only", []string{"--pkcs11-module", "/x.so", "--pkcs11-token", "t", "--operator", "A", "--operator", "B", "--tls-only", "--share-out", "/tmp/a"}, "give no --share-out"},
		{"--tls-only and --reshare", []string{"--pkcs11-module", "/x.so", "--pkcs11-token", "t", "--operator", "A", "--operator", "B", "--tls-only", "--reshare"}, "separate steps"},
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
