package flagenv

import (
	"errors"
	"flag"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantPort int
		wantList []string
		wantErr  string // "" means success
	}{
		{"defaults", nil, nil, 80, nil, ""},
		{"a flag", []string{"--http01-port", "5002"}, nil, 5002, nil, ""},
		{"from the environment", nil, map[string]string{"VARMENNE_HTTP01_PORT": "5003"}, 5003, nil, ""},
		{"the command line wins over the environment", []string{"--http01-port", "5002"}, map[string]string{"VARMENNE_HTTP01_PORT": "5003"}, 5002, nil, ""},
		{"a bad environment value names the variable", nil, map[string]string{"VARMENNE_HTTP01_PORT": "eighty"}, 0, nil, `VARMENNE_HTTP01_PORT="eighty"`},
		{"a list repeated and comma-separated", []string{"--name", "a, b", "--name", "c,,"}, nil, 80, []string{"a", "b", "c"}, ""},
		{"a list from the environment", nil, map[string]string{"VARMENNE_NAME": "x,y"}, 80, []string{"x", "y"}, ""},
		{"a positional argument", []string{"extra"}, nil, 0, nil, `unexpected argument "extra"`},
		{"an unknown flag names the command", []string{"--nope"}, nil, 0, nil, "cmd: flag provided but not defined: -nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("VARMENNE_HTTP01_PORT", "")
			t.Setenv("VARMENNE_NAME", "")
			for _, k := range []string{"VARMENNE_HTTP01_PORT", "VARMENNE_NAME"} {
				if v, ok := tt.env[k]; ok {
					t.Setenv(k, v)
				} else {
					unsetenv(t, k)
				}
			}
			fs := NewFlagSet("cmd", io.Discard)
			port := fs.Int("http01-port", 80, "")
			var names List
			fs.Var(&names, "name", "")
			err := Parse(fs, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || *port != tt.wantPort || !slices.Equal(names, tt.wantList) {
				t.Errorf("Parse = %v; port %d names %q, want %d %q", err, *port, names, tt.wantPort, tt.wantList)
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	var out strings.Builder
	fs := NewFlagSet("cmd", &out)
	fs.Int("http01-port", 80, "port http-01 validation connects to")
	if err := Parse(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse -h = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "http01-port") {
		t.Errorf("-h printed %q, want the flags", out.String())
	}
}

// unsetenv removes k for the rest of the test (t.Setenv restores it afterwards).
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "")
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}
