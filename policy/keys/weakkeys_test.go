package keys

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

// opensslEntry is the key's entry as openssl-vulnkey's rule makes it with the
// reference tools: "openssl rsa -noout -modulus" piped to sha1sum, the digest's
// characters 21 to 40. keyFile is a private key, or a public one with pubin.
func opensslEntry(t *testing.T, keyFile string, pubin bool) string {
	t.Helper()
	for _, tool := range []string{"openssl", "sha1sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to check the list format against the reference tools", tool)
		}
	}
	args := []string{"rsa", "-in", keyFile, "-noout", "-modulus"}
	if pubin {
		args = append(args, "-pubin")
	}
	modulus, err := exec.Command("openssl", args...).Output()
	if err != nil {
		t.Fatalf("openssl %s: %v", strings.Join(args, " "), err)
	}
	if !bytes.HasPrefix(modulus, []byte("Modulus=")) {
		t.Fatalf("openssl printed %q, not a Modulus= line", modulus)
	}
	sum := exec.Command("sha1sum")
	sum.Stdin = bytes.NewReader(modulus)
	out, err := sum.Output()
	if err != nil {
		t.Fatalf("sha1sum: %v", err)
	}
	digest, _, _ := strings.Cut(string(out), " ")
	if len(digest) != 40 {
		t.Fatalf("sha1sum printed %q", out)
	}
	return digest[20:]
}

func writePublicPEM(t *testing.T, pub *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWeakKeyEntryIsOpenSSLs: the entry this package computes for a key is the one
// openssl and sha1sum give, for every RSA size the checks accept, for a key openssl
// has just generated, and for a modulus whose top byte is below 0x10 (OpenSSL prints
// no leading zero; a byte-wise hex encoding would).
func TestWeakKeyEntryIsOpenSSLs(t *testing.T) {
	for _, size := range []string{"2048", "3072", "4096"} {
		t.Run("testdata RSA-"+size, func(t *testing.T) {
			file := "testdata/rsa" + size + ".pem"
			if got, want := WeakKeyEntry(loadRSA(t, "rsa"+size+".pem")), opensslEntry(t, file, true); got != want {
				t.Errorf("entry %s, openssl and sha1sum give %s", got, want)
			}
		})
	}
	t.Run("a key openssl generates now", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "key.pem")
		if out, err := exec.Command("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", keyFile).CombinedOutput(); err != nil {
			t.Fatalf("openssl genpkey: %v: %s", err, out)
		}
		data, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			t.Fatal("openssl wrote no PEM")
		}
		priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := WeakKeyEntry(&priv.(*rsa.PrivateKey).PublicKey), opensslEntry(t, keyFile, false); got != want {
			t.Errorf("entry %s, openssl and sha1sum give %s", got, want)
		}
	})
	t.Run("a modulus whose top byte is below 0x10", func(t *testing.T) {
		n := modulusOfBits(t, newRand(7), 2044)
		if top := n.Bytes()[0]; top >= 0x10 {
			t.Fatalf("top byte %#x", top)
		}
		key := rsaKey(n)
		if got, want := WeakKeyEntry(key), opensslEntry(t, writePublicPEM(t, key), true); got != want {
			t.Errorf("entry %s, openssl and sha1sum give %s", got, want)
		}
	})
}

// writeList writes an openssl-blacklist file and returns its path.
func writeList(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "blacklist.RSA-2048")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// randomEntries are n entries drawn from rng, as lines.
func randomEntries(rng *mrand.ChaCha8, n int) []string {
	lines := make([]string, n)
	var e weakEntry
	for i := range lines {
		_, _ = rng.Read(e[:])
		lines[i] = hex.EncodeToString(e[:])
	}
	return lines
}

// header is a comment block as the lists carry one.
var header = []string{
	"# Test list in the format of Debian's openssl-blacklist package:",
	"# the last 20 hex characters of sha1(\"Modulus=<hex>\\n\"), one a line.",
	"#",
}

func TestWeakKeysRefuseListedKeys(t *testing.T) {
	fresh, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k3072, k4096 := loadRSA(t, "rsa3072.pem"), loadRSA(t, "rsa4096.pem")
	lines := append(append([]string{}, header...), randomEntries(newRand(3), 50)...)
	lines = append(lines, WeakKeyEntry(&fresh.PublicKey), WeakKeyEntry(k3072), WeakKeyEntry(k4096))
	weak, err := ReadWeakKeys(writeList(t, lines...))
	if err != nil {
		t.Fatal(err)
	}
	const detail = "one of the predictable keys Debian's OpenSSL generated in 2006–2008 (CVE-2008-0166); generate a new key on an up-to-date system"
	for _, tt := range []struct {
		name string
		key  *rsa.PublicKey
		want string
	}{
		{"a listed 2048-bit key generated now is refused", &fresh.PublicKey, detail},
		{"a listed 3072-bit key is refused", k3072, detail},
		{"a listed 4096-bit key is refused", k4096, detail},
		{"a 2048-bit key not listed is accepted", &other.PublicKey, ""},
		{"a key not listed but refused otherwise keeps its own detail", rsaKey(modulusOfBits(t, newRand(4), 2048, 997)), "divisible by a small prime"},
	} {
		t.Run(tt.name+"/account", func(t *testing.T) {
			expect(t, CheckAccountKey(tt.key, weak), acme.BadPublicKey, tt.want)
		})
		t.Run(tt.name+"/certificate", func(t *testing.T) {
			expect(t, CheckCertificateKey(tt.key, weak), acme.BadCSR, tt.want)
		})
	}
	t.Run("without lists the listed key is accepted", func(t *testing.T) {
		expect(t, CheckCertificateKey(&fresh.PublicKey, nil), acme.BadCSR, "")
	})
}

func TestReadWeakKeys(t *testing.T) {
	entries := randomEntries(newRand(5), 5)
	first := writeList(t, append(append([]string{}, header...), entries[:3]...)...)
	// A second list with comments between entries, a blank line, CRLF line ends and
	// one entry the first list has too.
	second := filepath.Join(t.TempDir(), "blacklist.RSA-4096")
	text := "# RSA-4096\r\n" + entries[2] + "\r\n\r\n# more\r\n" + entries[3] + "\r\n  " + entries[4] + "  \r\n"
	if err := os.WriteFile(second, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	weak, err := ReadWeakKeys(first, second)
	if err != nil {
		t.Fatal(err)
	}
	if got := weak.Files(); len(got) != 2 || got[0] != (WeakKeysFile{first, 3}) || got[1] != (WeakKeysFile{second, 3}) {
		t.Errorf("files %+v, want 3 entries from each", got)
	}
	if weak.Len() != 5 {
		t.Errorf("%d distinct entries, want 5 (one is in both files)", weak.Len())
	}
	for _, line := range entries {
		var e weakEntry
		_, _ = hex.Decode(e[:], []byte(line))
		if _, found := searchWeak(weak, e); !found {
			t.Errorf("entry %s was not kept", line)
		}
	}
	var nilSet *WeakKeys
	if nilSet.Len() != 0 || nilSet.Files() != nil || nilSet.contains(loadRSA(t, "rsa2048.pem")) {
		t.Error("the nil set is not empty")
	}
}

func searchWeak(w *WeakKeys, e weakEntry) (int, bool) {
	for i, x := range w.entries {
		if x == e {
			return i, true
		}
	}
	return 0, false
}

func TestReadWeakKeysRefusesMalformedFiles(t *testing.T) {
	good := "0123456789abcdef0123"
	for _, tt := range []struct {
		name  string
		lines []string
		wants []string // besides the path
	}{
		{"upper-case hex", []string{"# list", good, "0123456789ABCDEF0123"}, []string{"line 3", "upper case"}},
		{"19 characters", []string{good, good[:19]}, []string{"line 2", `"` + good[:19] + `"`, "20 lower-case hex characters"}},
		{"21 characters", []string{good + "4"}, []string{"line 1", "20 lower-case hex characters"}},
		{"a whole SHA-1 digest", []string{"#", "#", "da39a3ee5e6b4b0d3255bfef95601890afd80709"}, []string{"line 3", "whole SHA-1 digest", "last 20 characters"}},
		{"a character that is not hex", []string{good, "0123456789abcdef012g"}, []string{"line 2", "20 lower-case hex characters"}},
		{"a space inside an entry", []string{"0123456789 abcdef0123"}, []string{"line 1"}},
		{"openssl's output instead of its digest", []string{"Modulus=C1FD62EA10F90B9AF29008C06460EAD5"}, []string{"line 1", `"Modulus=C1FD62EA10F90B9AF29008C06460EAD5"`}},
		{"a Git LFS pointer", []string{"version https://git-lfs.github.com/spec/v1", "oid sha256:4d7a2146", "size 6190000"}, []string{"line 1", "Git LFS pointer"}},
		{"comments only", []string{"# nothing", "#", ""}, []string{"holds no entries"}},
		{"a line longer than 4 KiB", []string{good, strings.Repeat("#", maxWeakLine+1)}, []string{"line 2", "longer than 4096 bytes"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeList(t, tt.lines...)
			_, err := ReadWeakKeys(writeList(t, good), path)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range append([]string{path}, tt.wants...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
	t.Run("an empty file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "empty")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadWeakKeys(path); err == nil || !strings.Contains(err.Error(), path+": holds no entries") {
			t.Errorf("error %v, want one saying %s holds no entries", err, path)
		}
	})
	t.Run("a missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing")
		if _, err := ReadWeakKeys(path); err == nil || err.Error() != path+": cannot be read: no such file or directory" {
			t.Errorf("error %v, want one naming the file once and saying it cannot be read", err)
		}
	})
}

// BenchmarkWeakKeysLookup is the cost the lists add to each RSA key check: the
// SHA-1 of the modulus line and one binary search in about as many entries as the
// published lists hold for one key size (~300,000).
func BenchmarkWeakKeysLookup(b *testing.B) {
	const n = 300_000
	rng := newRand(9)
	lines := randomEntries(rng, n)
	path := filepath.Join(b.TempDir(), "list")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	weak, err := ReadWeakKeys(path)
	if err != nil {
		b.Fatal(err)
	}
	if weak.Len() != n {
		b.Fatalf("%d entries", weak.Len())
	}
	key := rsaKey(randomBits(rng, 2048))
	for b.Loop() {
		if weak.contains(key) {
			b.Fatal("a random key is listed")
		}
	}
	b.ReportMetric(float64(len(weak.entries)*weakEntrySize)/(1<<20), "MiB-held")
}

// BenchmarkReadWeakKeys is the start-up cost of loading one list of ~300,000 entries.
func BenchmarkReadWeakKeys(b *testing.B) {
	path := filepath.Join(b.TempDir(), "list")
	if err := os.WriteFile(path, []byte(strings.Join(randomEntries(newRand(10), 300_000), "\n")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ReadWeakKeys(path); err != nil {
			b.Fatal(err)
		}
	}
}
