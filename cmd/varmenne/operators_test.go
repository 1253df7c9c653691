package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/audit"
)

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOperatorAdd(t *testing.T) {
	isolate(t)
	data := newData(t)
	out := t.TempDir()
	base := []string{"--data", data}

	err, stdout, _ := runCmd(t, append([]string{"operator", "add", "maija", "--role", "administrator", "--out", out}, base...)...)
	if err != nil {
		t.Fatalf("operator add with a certificate: %v", err)
	}
	cert := readPEMCert(t, filepath.Join(out, "maija.pem"))
	ca := readPEMCert(t, filepath.Join(data, "pki", "operator-ca.pem"))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("maija's certificate does not verify as a client certificate of the operator CA: %v", err)
	}
	if cert.Subject.CommonName != "maija" || len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != "administrator" {
		t.Errorf("certificate subject %v", cert.Subject)
	}
	if fi, err := os.Stat(filepath.Join(out, "maija.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want mode 0600", fi.Mode(), err)
	}
	if !strings.Contains(stdout, admin.CertFingerprint(cert)) {
		t.Errorf("output %q lacks the certificate's fingerprint", stdout)
	}

	err, stdout, _ = runCmd(t, append([]string{"operator", "add", "e-palvelu", "--role", "registrar", "--token"}, base...)...)
	if err != nil {
		t.Fatalf("operator add with a token: %v", err)
	}
	token := regexp.MustCompile(`token: (e-palvelu\.[A-Za-z0-9_-]{43})`).FindStringSubmatch(stdout)
	if token == nil {
		t.Fatalf("no token in %q", stdout)
	}

	tests := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"no role", []string{"operator", "add", "pekka"}, []string{"--role is required"}},
		{"an unknown role", []string{"operator", "add", "pekka", "--role", "root"}, []string{`role "root" is unknown`, "administrator, registrar or auditor"}},
		{"a registrar who is also an administrator", []string{"operator", "add", "pekka", "--role", "registrar,administrator"}, []string{"a registrar is never an administrator"}},
		{"a taken name", []string{"operator", "add", "maija", "--role", "registrar", "--token"}, []string{"operator maija already exists"}},
		{"a name with spaces", []string{"operator", "add", "Maija M", "--role", "auditor", "--token"}, []string{"operator name", "lower-case letters"}},
		{"no name", []string{"operator", "add", "--role", "auditor"}, []string{"give the operator's name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, _, _ := runCmd(t, append(tt.args, base...)...)
			wantOneLineError(t, err, tt.wants...)
		})
	}

	err, stdout, _ = runCmd(t, "operator", "list", "--data", data)
	if err != nil || !strings.Contains(stdout, "maija") || !strings.Contains(stdout, "e-palvelu") || !strings.Contains(stdout, "registrar") {
		t.Fatalf("operator list: %v %q", err, stdout)
	}
	err, stdout, _ = runCmd(t, "audit", "export", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var e admin.EventView
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit export line %q: %v", line, err)
		}
		// The first start made the first administrator ("system"); every
		// command after it acts as that administrator.
		if want := map[bool]string{true: "system", false: admin.BootstrapOperator}[e.Seq == 1]; e.Actor != want {
			t.Errorf("event %+v: actor is not %s", e, want)
		}
		actions = append(actions, e.Action)
	}
	if strings.Join(actions, " ") != "operator.add operator-ca.create operator.add operator.add" {
		t.Errorf("audit actions %v", actions)
	}
	if strings.Contains(stdout, token[1]) {
		t.Error("the token is in the audit log")
	}
}

// TestAuditExportAndTamperedRow writes events, exports them by time, then edits
// one row of the audit log in the SQLite file directly: audit verify must name
// that event as the first broken link.
func TestAuditExportAndTamperedRow(t *testing.T) {
	isolate(t)
	data := newData(t)
	for i, name := range []string{"a1", "a2", "a3", "a4"} {
		if err, _, _ := runCmd(t, "operator", "add", name, "--role", "auditor", "--token", "--data", data); err != nil {
			t.Fatalf("operator %d: %v", i, err)
		}
	}
	err, stdout, _ := runCmd(t, "audit", "verify", "--data", data)
	if err != nil || !strings.Contains(stdout, "intact: 5 events") { // the first administrator and four auditors
		t.Fatalf("audit verify before: %v %q", err, stdout)
	}

	db, err := sql.Open("sqlite", dbPath(data))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var third int64
	if err := db.QueryRow(`SELECT at FROM audit_log WHERE seq = 3`).Scan(&third); err != nil {
		t.Fatal(err)
	}
	since := time.UnixMicro(third).UTC().Format(time.RFC3339Nano)
	err, stdout, _ = runCmd(t, "audit", "export", "--data", data, "--since", since)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var e admin.EventView
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		seqs = append(seqs, e.Seq)
	}
	if len(seqs) < 3 || seqs[0] != 3 || seqs[len(seqs)-1] != 5 {
		t.Fatalf("export --since the third event's time gave events %v, want 3 to 5", seqs)
	}
	wantOneLineError(t, func() error {
		err, _, _ := runCmd(t, "audit", "export", "--data", data, "--since", "yesterday")
		return err
	}(),
		"--since", `"yesterday"`, "RFC 3339")

	if _, err := db.ExecContext(context.Background(), `UPDATE audit_log SET object = 'operator=a2 role=administrator credential=token' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	err, _, _ = runCmd(t, "audit", "verify", "--data", data)
	wantOneLineError(t, err, "broken at event 2", "contents do not match its hash", "events 1 to 1 are intact")
}

// TestAdminListenerAddressInUse: a busy default address leaves serve without the
// admin listener and says why; a busy address given explicitly stops the start.
func TestAdminListenerAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := newData(t)
	st, err := new(dbFlags).open(context.Background(), data, existing)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	for _, explicit := range []bool{false, true} {
		c := &adminConfig{listen: ln.Addr().String(), explicit: explicit, dualControl: true,
			keyLifetime: admin.DefaultLifetime, requestLifetime: admin.DefaultLifetime}
		set, _ := loadProfiles("", false)
		svc := newAdminService(c, set, true, st, audit.New(st, nil), log)
		addr, stop, err := startAdmin(context.Background(), c, data, svc, audit.New(st, nil), tls.Certificate{}, log)
		if explicit {
			wantOneLineError(t, err, "cannot listen on --admin-listen "+ln.Addr().String())
			continue
		}
		if err != nil || addr != "" || !strings.Contains(c.busy, "in use; give --admin-listen") {
			t.Fatalf("busy default: %q %v, busy %q; want no listener and the reason", addr, err, c.busy)
		}
		stop()
	}
}
