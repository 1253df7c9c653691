package keys

import (
	"bufio"
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"slices"
)

// Debian's OpenSSL from September 2006 to May 2008 seeded its generator with little
// more than the process ID (CVE-2008-0166), so every RSA key it made is one of about
// 2^15 per key size, architecture and random-file state, and all of them are known.
// The lists of them come in the format of Debian's openssl-blacklist package, which
// openssl-vulnkey reads: after comment lines beginning with "#", one line per key,
// the last 20 hex characters (80 bits) of the lower-case SHA-1 hex digest of
// "Modulus=<the modulus in upper-case hex, without leading zeros>\n" — the line
// "openssl rsa -noout -modulus" prints. The lists are not shipped: an operator loads
// them at start (serve --weak-keys).

// weakEntrySize is the bytes of one entry: the last 80 bits of the SHA-1 digest.
const weakEntrySize = 10

type weakEntry [weakEntrySize]byte

// WeakKeys is a set of known weak RSA keys read from openssl-blacklist files. It is
// read-only once made, so one set serves every request; the nil set holds no keys.
type WeakKeys struct {
	entries []weakEntry // sorted, each once: a binary search per key
	files   []WeakKeysFile
}

// WeakKeysFile is what one file gave the set.
type WeakKeysFile struct {
	Path    string
	Entries int // entry lines read, a key listed twice counted twice
}

// ReadWeakKeys reads openssl-blacklist files into one set. A file that cannot be
// read, holds a line that is neither a comment nor an entry, or holds no entry at all
// is refused with its path, and the line's number and what is wrong with it.
func ReadWeakKeys(paths ...string) (*WeakKeys, error) {
	w := &WeakKeys{}
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%s: cannot be read: %v", path, err)
		}
		n, err := w.read(path, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		w.files = append(w.files, WeakKeysFile{Path: path, Entries: n})
	}
	slices.SortFunc(w.entries, compareWeak)
	w.entries = slices.Compact(w.entries)
	return w, nil
}

// maxWeakLine bounds a line: an entry is 20 characters, a comment a sentence.
const maxWeakLine = 4096

// read adds the entries of one file and returns how many it held.
func (w *WeakKeys) read(path string, r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxWeakLine)
	line, entries := 0, 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		e, err := parseWeakEntry(text)
		if err != nil {
			if line == 1 && bytes.HasPrefix(text, []byte("version https://git-lfs.github.com/spec/")) {
				err = errors.New("the file is a Git LFS pointer, not the list: fetch the list itself")
			}
			return 0, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		w.entries = append(w.entries, e)
		entries++
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return 0, fmt.Errorf("%s line %d: longer than %d bytes: not an openssl-blacklist file", path, line+1, maxWeakLine)
	case err != nil:
		return 0, fmt.Errorf("%s: cannot be read: %v", path, err)
	case entries == 0:
		return 0, fmt.Errorf("%s: holds no entries (%d lines of comments or blank): not an openssl-blacklist file", path, line)
	}
	return entries, nil
}

// parseWeakEntry reads one entry line, already trimmed.
func parseWeakEntry(text []byte) (weakEntry, error) {
	var e weakEntry
	if len(text) == 2*weakEntrySize {
		if _, err := hex.Decode(e[:], text); err == nil && !bytes.ContainsAny(text, "ABCDEF") {
			return e, nil
		}
	}
	shown := string(text)
	if len(shown) > 48 {
		shown = shown[:48] + "…"
	}
	isHex := len(bytes.Trim(text, "0123456789abcdefABCDEF")) == 0
	switch {
	case isHex && len(text) == 2*sha1.Size:
		return e, fmt.Errorf("%q is a whole SHA-1 digest; the format keeps only its last 20 characters", shown)
	case isHex && len(text) == 2*weakEntrySize:
		// openssl-vulnkey compares the text: an upper-case list matches no key there.
		return e, fmt.Errorf("%q is in upper case; the format's hex digits are lower case", shown)
	default:
		return e, fmt.Errorf("%q is not an entry: want 20 lower-case hex characters, the end of the SHA-1 digest of the key's \"Modulus=…\" line", shown)
	}
}

func compareWeak(a, b weakEntry) int { return bytes.Compare(a[:], b[:]) }

// Len is the number of distinct entries.
func (w *WeakKeys) Len() int {
	if w == nil {
		return 0
	}
	return len(w.entries)
}

// Files says what each file gave, in the order read.
func (w *WeakKeys) Files() []WeakKeysFile {
	if w == nil {
		return nil
	}
	return slices.Clone(w.files)
}

// contains reports whether k is listed.
func (w *WeakKeys) contains(k *rsa.PublicKey) bool {
	if w == nil || len(w.entries) == 0 {
		return false
	}
	_, found := slices.BinarySearchFunc(w.entries, weakFingerprint(k.N), compareWeak)
	return found
}

// weakFingerprint is the entry of the modulus n.
func weakFingerprint(n *big.Int) weakEntry {
	// The line as OpenSSL's BN_print writes it: upper case, no leading zeros.
	line := make([]byte, 0, len("Modulus=")+n.BitLen()/4+2)
	line = append(line, "Modulus="...)
	line = n.Append(line, 16)
	for i := len("Modulus="); i < len(line); i++ {
		if c := line[i]; c >= 'a' && c <= 'f' {
			line[i] = c - 'a' + 'A'
		}
	}
	line = append(line, '\n')
	// SHA-1 is the format's; nothing here relies on its resisting collisions.
	sum := sha1.Sum(line)
	return weakEntry(sum[sha1.Size-weakEntrySize:])
}

// WeakKeyEntry is the line an openssl-blacklist file lists k by, the one
// "openssl rsa -pubin -noout -modulus | sha1sum | cut -c 21-40" prints.
func WeakKeyEntry(k *rsa.PublicKey) string {
	e := weakFingerprint(k.N)
	return hex.EncodeToString(e[:])
}
