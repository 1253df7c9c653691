// Package flagenv is the command-line convention varmenne's commands share: a flag
// set that reports errors once, as one line, and fills every flag not given on the
// command line from VARMENNE_<FLAG> in the environment (--http01-port from
// VARMENNE_HTTP01_PORT). It knows nothing of what the flags mean.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Prefix starts the environment variable of every flag.
const Prefix = "VARMENNE_"

// NewFlagSet makes a flag set that reports errors as one line (returned by Parse)
// and prints -h to stderr.
func NewFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// EnvName is the environment variable of the flag name: VARMENNE_ and the name in
// upper case with "-" as "_".
func EnvName(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args and then fills every flag not given on the command line from
// its environment variable (EnvName). -h prints the flags and returns flag.ErrHelp;
// a positional argument is an error.
func Parse(fs *flag.FlagSet, args []string) error {
	out := fs.Output()       // where -h prints the flags: the command's stderr
	fs.SetOutput(io.Discard) // errors are reported once, by the command's main
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := EnvName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

// List is a repeatable flag; a value may also hold several comma-separated items.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Set appends the value's comma-separated items, trimmed, skipping empty ones.
func (l *List) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
