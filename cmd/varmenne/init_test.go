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
