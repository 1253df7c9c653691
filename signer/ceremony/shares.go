package ceremony

// Two-person activation. SOTE's practice statement has at least two people activate
// the issuer keys, so no one person may hold what logs in to the token. The
// ceremony therefore replaces the token's user PIN with a random one that nobody
// sees, and writes it as two shares, one per holder: share 1 is random bytes as long
// as the PIN, share 2 is the PIN XOR share 1. Either share alone is uniformly random
// and says nothing about the PIN; serve combines the two in memory at start.
//
// A share file names its holder, the token (label and serial number) and the
// split it belongs to, carries a checksum of its own lines, and a check value of
// the PIN the two make together (an HMAC keyed with that PIN). A damaged file, a
// share of another split or token, or two shares of one holder is refused before
// anything is sent to the HSM, where a wrong PIN would count against the token's
// retry limit. The check value cannot be searched for the PIN from one share: the
// PIN is 192 random bits, which is why the ceremony makes a new PIN rather than
// splitting one a person chose or typed.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/internal/owneronly"
)

// shareFileMax bounds what is read of a share file.
const shareFileMax = 4 << 10

// Share is one holder's half of a token's PIN, as its file holds it.
type Share struct {
	Holder string
	Index  int    // 1 or 2
	Set    string // random, the same in the two shares of one split
	Token  string // label of the token
	Serial string // serial number of the token
	Made   time.Time
	Path   string // the file it was read from, for messages

	secret   []byte // the share itself
	pinCheck string // HMAC-SHA256 keyed by the PIN over the split's identity, hex
}

// Activation is what two shares make: the PIN, the token's serial number, and the
// holders in share order. A PIN given whole has no holders.
type Activation struct {
	PIN     string
	Serial  string
	Holders []string
}

// newSplit makes a new random PIN for the token and its two shares, share i for
// holders[i].
func newSplit(token, serial string, holders [2]string, now time.Time) (string, [2]Share, error) {
	raw := make([]byte, 24)
	set := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", [2]Share{}, err
	}
	if _, err := rand.Read(set); err != nil {
		return "", [2]Share{}, err
	}
	pin := hex.EncodeToString(raw) // printable: PKCS#11 PINs are text
	a := make([]byte, len(pin))
	if _, err := rand.Read(a); err != nil {
		return "", [2]Share{}, err
	}
	b := xor(a, []byte(pin))
	var shares [2]Share
	for i, secret := range [][]byte{a, b} {
		shares[i] = Share{Holder: holders[i], Index: i + 1, Set: hex.EncodeToString(set), Token: token, Serial: serial,
			Made: now.UTC().Truncate(time.Second), secret: secret}
		shares[i].pinCheck = pinCheck(pin, shares[i])
	}
	return pin, shares, nil
}

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// pinCheck is the check value both shares of a split carry: it holds for the PIN
// they make together and no other.
func pinCheck(pin string, s Share) string {
	m := hmac.New(sha256.New, []byte(pin))
	fmt.Fprintf(m, "varmenne activation 1\x00%s\x00%s\x00%s", s.Set, s.Token, s.Serial)
	return hex.EncodeToString(m.Sum(nil))
}

// Combine makes the PIN of two shares of one split for the token labelled token,
// refusing with the reason two shares that are not the two halves of one split,
// or that are not for token. Nothing is sent to the HSM.
func Combine(a, b Share, token string) (Activation, error) {
	if a.Index > b.Index {
		a, b = b, a
	}
	switch {
	case a.Holder == b.Holder:
		return Activation{}, fmt.Errorf("activation shares %s and %s are both %s's: two different holders each give their own share", a.Path, b.Path, a.Holder)
	case token != "" && (a.Token != token || b.Token != token):
		other := a
		if a.Token == token {
			other = b
		}
		return Activation{}, fmt.Errorf("activation share %s is for token %q (serial %s), not %q: give the shares of token %q, or --pkcs11-token %q if that token is meant", other.Path, other.Token, other.Serial, token, token, other.Token)
	case a.Set != b.Set:
		return Activation{}, fmt.Errorf("activation shares %s (%s, made %s) and %s (%s, made %s) are from different ceremonies: give the two shares of the latest one",
			a.Path, a.Holder, a.Made.Format(time.DateOnly), b.Path, b.Holder, b.Made.Format(time.DateOnly))
	case a.Index == b.Index:
		return Activation{}, fmt.Errorf("activation shares %s and %s are both share %d of 2: give one share of each holder", a.Path, b.Path, a.Index)
	case len(a.secret) != len(b.secret) || a.pinCheck != b.pinCheck:
		return Activation{}, fmt.Errorf("activation shares %s and %s do not make the PIN they were split from (one was altered): nothing was sent to the HSM", a.Path, b.Path)
	}
	pin := string(xor(a.secret, b.secret))
	if !hmac.Equal([]byte(pinCheck(pin, a)), []byte(a.pinCheck)) {
		return Activation{}, fmt.Errorf("activation shares %s and %s do not make the PIN they were split from (one was altered): nothing was sent to the HSM", a.Path, b.Path)
	}
	return Activation{PIN: pin, Serial: a.Serial, Holders: []string{a.Holder, b.Holder}}, nil
}

// The lines of a share file, in order; sum is a SHA-256 of the lines before it.
var shareKeys = []string{"version", "holder", "share", "token", "serial", "set", "made", "secret", "pin-check", "sum"}

// Marshal is the share as its file holds it.
func (s Share) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# varmenne activation share: %s's half of the PIN of HSM token %q.\n", s.Holder, s.Token)
	b.WriteString("# Alone it activates nothing; with the other holder's share it activates the CA's keys.\n")
	b.WriteString("# Keep it where only you can reach it, and never next to the other share.\n")
	body := s.body()
	b.WriteString(body)
	fmt.Fprintf(&b, "sum: %s\n", sum(body))
	return b.Bytes()
}

func (s Share) body() string {
	vals := []string{"1", s.Holder, fmt.Sprintf("%d of 2", s.Index), s.Token, s.Serial, s.Set, s.Made.UTC().Format(time.RFC3339),
		base64.StdEncoding.EncodeToString(s.secret), s.pinCheck}
	var b strings.Builder
	for i, v := range vals {
		fmt.Fprintf(&b, "%s: %s\n", shareKeys[i], v)
	}
	return b.String()
}

func sum(body string) string {
	h := sha256.Sum256([]byte(body))
	return hex.EncodeToString(h[:])
}

// ParseShare reads a share file's content; path names it in messages.
func ParseShare(path string, content []byte) (Share, error) {
	bad := func(why string) (Share, error) {
		return Share{}, fmt.Errorf("%s is not an activation share that varmenne init wrote (%s)", path, why)
	}
	vals := map[string]string{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok || !slices.Contains(shareKeys, k) {
			return bad(fmt.Sprintf("unexpected line %q", line))
		}
		if _, dup := vals[k]; dup {
			return bad(k + " given twice")
		}
		vals[k] = v
		order = append(order, k)
	}
	if !slices.Equal(order, shareKeys) {
		return bad("its lines are missing or out of order")
	}
	if vals["version"] != "1" {
		return bad("version " + vals["version"])
	}
	s := Share{Holder: vals["holder"], Token: vals["token"], Serial: vals["serial"], Set: vals["set"], pinCheck: vals["pin-check"], Path: path}
	var body strings.Builder
	for _, k := range shareKeys[:len(shareKeys)-1] {
		fmt.Fprintf(&body, "%s: %s\n", k, vals[k])
	}
	if sum(body.String()) != vals["sum"] {
		return Share{}, fmt.Errorf("activation share %s is damaged or was edited (its checksum does not match): ask %s for an intact copy", path, s.Holder)
	}
	idx, ok := strings.CutSuffix(vals["share"], " of 2")
	n, err := strconv.Atoi(idx)
	if !ok || err != nil || (n != 1 && n != 2) {
		return bad("share " + vals["share"])
	}
	s.Index = n
	if s.Made, err = time.Parse(time.RFC3339, vals["made"]); err != nil {
		return bad("made " + vals["made"])
	}
	if s.secret, err = base64.StdEncoding.DecodeString(vals["secret"]); err != nil || len(s.secret) == 0 {
		return bad("secret")
	}
	return s, nil
}

// ReadShare reads a share file, which group and others may not use.
func ReadShare(path string) (Share, error) {
	if err := owneronly.Check(path); err != nil {
		return Share{}, fmt.Errorf("activation share: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return Share{}, fmt.Errorf("cannot read the activation share: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, shareFileMax+1))
	if err != nil {
		return Share{}, fmt.Errorf("cannot read the activation share: %w", err)
	}
	if len(b) > shareFileMax {
		return Share{}, fmt.Errorf("%s is not an activation share that varmenne init wrote (over %d bytes)", path, shareFileMax)
	}
	return ParseShare(path, b)
}

// writeShare writes a new share file, its owner's only; an existing file is never
// replaced, as it may be a share still in use.
func writeShare(path string, s Share) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("init: writing %s's activation share: %w", s.Holder, err)
	}
	_, err = f.Write(s.Marshal())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("init: writing %s's activation share: %w", s.Holder, err)
	}
	return nil
}

// readShares reads the files and combines them for token: exactly two, of two
// holders, of the split the record file names (when it exists).
func readShares(paths []string, token, record string) (Activation, error) {
	switch {
	case len(paths) == 1:
		return Activation{}, errors.New("one activation share activates nothing: give the other holder's share too (--pkcs11-pin-share FILE twice)")
	case len(paths) != 2:
		return Activation{}, fmt.Errorf("%d activation shares given: give exactly two, one from each holder (--pkcs11-pin-share FILE twice)", len(paths))
	}
	var s [2]Share
	for i, p := range paths {
		var err error
		if s[i], err = ReadShare(p); err != nil {
			return Activation{}, err
		}
	}
	act, err := Combine(s[0], s[1], token)
	if err != nil || record == "" {
		return act, err
	}
	set, made, err := currentSplit(record)
	if err != nil {
		return Activation{}, err
	}
	if set != "" && set != s[0].Set {
		return Activation{}, fmt.Errorf("activation shares %s and %s are of the split made %s, which a later ceremony step replaced (%s names the one made %s): give the holders' current shares",
			s[0].Path, s[1].Path, s[0].Made.Format(time.RFC3339), record, made)
	}
	return act, nil
}

// ActivationRecordFile is the file in pki/ naming the token's current split (no
// secret): shares of an earlier split are refused before they reach the token.
const ActivationRecordFile = "activation"

// writeRecord writes the record of a split to a temporary file beside path; the
// returned function puts it in place, once the token has the new PIN.
func writeRecord(path string, s Share) (func() error, error) {
	tmp := path + ".new"
	body := fmt.Sprintf("# The token's current activation split; its shares are with their holders.\ntoken: %s\nserial: %s\nset: %s\nmade: %s\n",
		s.Token, s.Serial, s.Set, s.Made.UTC().Format(time.RFC3339))
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return func() error { return os.Rename(tmp, path) }, nil
}

// currentSplit reads the set and date of the split the record at path names; ""
// when there is no record.
func currentSplit(path string) (set, made string, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "set: "); ok {
			set = v
		} else if v, ok := strings.CutPrefix(line, "made: "); ok {
			made = v
		}
	}
	if set == "" {
		return "", "", fmt.Errorf("%s names no activation split", path)
	}
	return set, made, nil
}

// SplitPIN gives the token a new random user PIN, which nobody sees, and writes it
// as two shares: the first for holders[0] to outs[0], the second for holders[1] to
// outs[1]. The split is recorded with the holders' names (never the shares). Once
// it returns, the PIN the pool logged in with no longer works; on an error before
// the change, the share files are removed and the PIN is unchanged. reshare marks a
// later ceremony step that hands the activation to new holders.
func (c *Ceremony) SplitPIN(ctx context.Context, token string, holders, outs []string, reshare bool) error {
	if len(holders) < 2 || len(outs) != 2 {
		return errors.New("init: the activation is split for two holders: give --operator twice and --share-out FILE twice, the first share for the first operator")
	}
	if outs[0] == outs[1] {
		return fmt.Errorf("init: both shares would go to %s: give each holder's --share-out its own file, on a medium that holder keeps", outs[0])
	}
	for _, h := range holders[:2] {
		if strings.ContainsFunc(h, func(r rune) bool { return !unicode.IsPrint(r) }) {
			return fmt.Errorf("init: --operator %q: a holder's name is printable text on one line", h)
		}
	}
	serial := c.Pool.Serial()
	pin, shares, err := newSplit(token, serial, [2]string{holders[0], holders[1]}, c.Now)
	if err != nil {
		return err
	}
	e := audit.ActivationSplit{Token: token, Serial: serial, Set: shares[0].Set, Share1: holders[0], Share2: holders[1], Reshare: reshare}
	var written []string
	undo := func() {
		for _, p := range written {
			os.Remove(p)
		}
	}
	for i, s := range shares {
		if err := writeShare(outs[i], s); err != nil {
			undo()
			return c.record(ctx, e, err)
		}
		written = append(written, outs[i])
	}
	record := filepath.Join(c.Dir, ActivationRecordFile)
	putRecord, err := writeRecord(record, shares[0])
	if err != nil {
		undo()
		return c.record(ctx, e, err)
	}
	if err := c.Pool.ChangePIN(ctx, pin); err != nil {
		undo()
		os.Remove(record + ".new")
		return c.record(ctx, e, fmt.Errorf("init: %w", err))
	}
	if err := putRecord(); err != nil {
		err = fmt.Errorf("init: the token's PIN was changed and the shares written, but %s is not in place (%v): rename %[1]s.new to %[1]s", record, err)
		return c.record(ctx, e, err)
	}
	if err := c.record(ctx, e, nil); err != nil {
		return fmt.Errorf("%w (the token's PIN was changed: the shares written are the ones that activate it)", err)
	}
	for i, s := range shares {
		fmt.Fprintf(c.Out, "activation share %d of 2 for %s: %s\n", s.Index, s.Holder, outs[i])
	}
	fmt.Fprintf(c.Out, "Token %q (serial %s) has a new PIN that nobody knows: the PIN given to this ceremony no longer works, and serve starts only with both shares (--pkcs11-pin-share FILE twice). Each holder keeps their own file.\n", token, serial)
	return nil
}
