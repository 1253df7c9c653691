package main

// The CLI's operator commands are a front end of the operator service (admin), as
// the admin API and the console are: each command opens the database, acts as an
// authenticated operator, and turns the service's answer or refusal into lines.
// The rules (roles, dual control, register, revocation, audit) are the service's.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/internal/owneronly"
	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/store"
)

// operatorTokenFile is where the first start keeps the bootstrap administrator's
// token, readable only by the data directory's owner.
const operatorTokenFile = "operator.token"

// operatorFlags are the flags every operator command takes.
type operatorFlags struct {
	cmd       string
	data      *string
	db        *dbFlags
	tokenFile *string
}

func addOperatorFlags(fs *flag.FlagSet) *operatorFlags {
	return &operatorFlags{cmd: fs.Name(), data: dataFlag(fs), db: dbFlag(fs),
		tokenFile: fs.String("operator-token-file", "", "file holding the token of the operator this command acts as (default: DATA/"+operatorTokenFile+", the administrator the first start made)")}
}

// session is one operator command's use of the operator service.
type session struct {
	st   *store.SQL
	svc  *admin.Service
	who  *store.Operator
	cmd  string
	data string
}

// open opens the database and authenticates the operator the command acts as.
// profiles names the profile configuration an EAB request is checked against
// ("" the built-in profiles).
func (f *operatorFlags) open(ctx context.Context, profiles string) (*session, error) {
	set, err := loadProfiles(profiles, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.cmd, err)
	}
	st, err := f.db.open(ctx, *f.data, existing)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.cmd, err)
	}
	// The CLI is a development front end until the database says a server of it
	// ran with its issuer keys in an HSM (store.Production): the service checks.
	svc := admin.New(adminServiceConfig(set, true), st, audit.New(st, nil), nil)
	path := *f.tokenFile
	if path == "" {
		path = filepath.Join(*f.data, operatorTokenFile)
	}
	if err := owneronly.Check(path); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", f.cmd, err)
	}
	token, err := os.ReadFile(path)
	if err != nil {
		st.Close()
		if *f.tokenFile == "" && errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no operator credential: %s is missing; start \"varmenne serve --data %s\" once (it writes the first administrator's token there) or give --operator-token-file", f.cmd, path, *f.data)
		}
		return nil, fmt.Errorf("%s: reading the operator token: %w", f.cmd, err)
	}
	who, err := svc.Authenticate(ctx, admin.Credential{Token: strings.TrimSpace(string(token))})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: the token in %s is not a usable operator token: %s", f.cmd, path, refusalText(err))
	}
	return &session{st: st, svc: svc, who: who, cmd: f.cmd, data: *f.data}, nil
}

func (s *session) Close() error { return s.st.Close() }

// fail is the command's one line for a refusal or error of the service.
func (s *session) fail(err error) error { return fmt.Errorf("%s: %s", s.cmd, refusalText(err)) }

// refusalText is what the operator reads of an error: a service refusal's detail
// (it says what to do), else the error.
func refusalText(err error) string {
	var refusal *admin.Error
	if errors.As(err, &refusal) {
		return refusal.Detail
	}
	return err.Error()
}

// adminServiceConfig is the operator service's configuration for a profile set.
// development: the issuer keys are file keys.
func adminServiceConfig(set *profile.Set, development bool) admin.Config {
	c := admin.Config{Development: development, Profiles: set.Names()}
	for _, name := range set.Names() {
		if set.Profiles[name].Test {
			c.TestProfiles = append(c.TestProfiles, name)
		}
	}
	slices.Sort(c.TestProfiles)
	return c
}

// bootstrap makes the first administrator when the database has no operator, and
// writes its token to DATA/operator.token, readable only by its owner, so the
// operator commands work on a new CA. It reports the file it wrote ("" when the
// database had operators already).
func bootstrap(ctx context.Context, data string, svc *admin.Service) (string, error) {
	op, err := svc.Bootstrap(ctx)
	if err != nil || op == nil {
		return "", err
	}
	path := filepath.Join(data, operatorTokenFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("writing the first administrator's token: %w", err)
	}
	if err := f.Chmod(0o600); err != nil { // an existing file keeps its mode otherwise
		f.Close()
		return "", err
	}
	if _, err := f.WriteString(op.Token + "\n"); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// version is the software version, as the build recorded it.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
		return v
	}
	return "unknown"
}

// operatorBootstrap is "varmenne operator bootstrap": offline, on the database
// alone, it makes the first administrator of a database that has no operator
// (as the first start does) and writes its token to DATA/operator.token. Use it
// for a database that serve has not started on yet, e.g. a new PostgreSQL.
func operatorBootstrap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator bootstrap", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := db.open(ctx, *data, creating)
	if err != nil {
		return fmt.Errorf("operator bootstrap: %w", err)
	}
	defer st.Close()
	set, err := loadProfiles("", false)
	if err != nil {
		return fmt.Errorf("operator bootstrap: %w", err)
	}
	path, err := bootstrap(ctx, *data, admin.New(adminServiceConfig(set, true), st, audit.New(st, nil), nil))
	if err != nil {
		return fmt.Errorf("operator bootstrap: %s", refusalText(err))
	}
	if path == "" {
		return errors.New("operator bootstrap: the database has operators already; an administrator adds more with \"varmenne operator add\"")
	}
	fmt.Fprintf(stdout, "first administrator %q made; its token is in %s (readable by you only)\n", admin.BootstrapOperator, path)
	return nil
}
