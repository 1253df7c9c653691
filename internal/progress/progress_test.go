package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/internal/ptytest"
)

// clock is a test clock that moves only when told.
type clock struct{ t time.Time }

func (c *clock) now() time.Time       { return c.t }
func (c *clock) step(d time.Duration) { c.t = c.t.Add(d) }
func newMeter(w *bytes.Buffer, terminal bool) (*Meter, *clock) {
	c := &clock{t: time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)}
	m := New(w, "revoking certificates")
	m.Terminal, m.Now, m.Every = terminal, c.now, 100*time.Millisecond
	return m, c
}

// TestSummaryOnly: not on a terminal, nothing is written while the work runs and
// one line when it ends.
func TestSummaryOnly(t *testing.T) {
	var out bytes.Buffer
	m, c := newMeter(&out, false)
	m.Begin(400)
	for range 400 {
		c.step(10 * time.Millisecond)
		m.Add(1)
	}
	if out.Len() != 0 {
		t.Fatalf("wrote %q while the work ran", out.String())
	}
	m.Finish()
	if got, want := out.String(), "revoking certificates: 400 of 400 in 4s (100/s)\n"; got != want {
		t.Errorf("summary %q; want %q", got, want)
	}
}

// TestTerminalLine: on a terminal one line is redrawn in place with the count, the
// share, the rate and the time left, at most every Every, and the summary takes
// its place at the end.
func TestTerminalLine(t *testing.T) {
	var out bytes.Buffer
	m, c := newMeter(&out, true)
	m.Begin(1000)
	if got, want := out.String(), "\rrevoking certificates: 0 of 1000 (0%)"; got != want {
		// Begin draws at once, so a slow first item does not leave the screen blank.
		t.Fatalf("after Begin: %q; want %q", got, want)
	}
	out.Reset()
	c.step(time.Second)
	m.Add(250)
	if got, want := out.String(), "\rrevoking certificates: 250 of 1000 (25%), 250/s, 3s left"; !strings.HasPrefix(got, want) {
		t.Fatalf("after 250 in 1s: %q; want %q", got, want)
	}
	out.Reset()
	c.step(10 * time.Millisecond) // less than Every: no redraw
	m.Add(1)
	if out.Len() != 0 {
		t.Errorf("redrew %q within Every of the last redraw", out.String())
	}
	c.step(time.Second)
	m.Fail(1) // a redraw: a second passed
	out.Reset()
	c.step(100 * time.Millisecond)
	m.Add(249)
	got := out.String()
	if !strings.HasPrefix(got, "\r") || strings.Contains(got, "\n") {
		t.Errorf("a redraw %q is not one carriage-return line", got)
	}
	if want := "revoking certificates: 501 of 1000 (50%), 237/s, 1 failed, 2s left"; strings.TrimRight(got[1:], " ") != want {
		t.Errorf("after 501 in 2.11s: %q; want %q", got, want)
	}
	out.Reset()
	m.Add(499) // the last item always redraws
	c.step(time.Second)
	m.Finish()
	got = out.String()
	lines := strings.Split(strings.TrimPrefix(got, "\r"), "\r")
	if len(lines) != 2 || strings.TrimRight(lines[0], " ") != "revoking certificates: 1000 of 1000 (100%), 474/s, 1 failed" ||
		strings.TrimRight(lines[1], " \n") != "revoking certificates: 1000 of 1000 in 3.11s (322/s), 1 failed" || !strings.HasSuffix(got, "\n") {
		t.Errorf("end: %q; want the last progress line, then the summary in its place and a newline", got)
	}
}

// TestShorterLineCoversLonger: a redraw shorter than the line before pads with
// spaces, so no stale characters stay on the screen.
func TestShorterLineCoversLonger(t *testing.T) {
	var out bytes.Buffer
	m, c := newMeter(&out, true)
	m.Begin(100)
	c.step(time.Second)
	m.Add(1) // "…, 1.0/s, 1m39s left"
	before := len(out.String()[strings.LastIndex(out.String(), "\r")+1:])
	m.Begin(-1) // a retried transaction: the count starts again, total unknown
	last := out.String()[strings.LastIndex(out.String(), "\r")+1:]
	if len(last) != before || strings.TrimRight(last, " ") != "revoking certificates: 0" {
		t.Errorf("redraw %q (width %d) does not cover the %d characters before", last, len(last), before)
	}
}

// TestRetryCountsAgain: Begin again starts the count again, but the summary's
// duration is the whole work's.
func TestRetryCountsAgain(t *testing.T) {
	var out bytes.Buffer
	m, c := newMeter(&out, false)
	m.Begin(10)
	m.Add(7)
	c.step(2 * time.Second)
	m.Begin(10)
	c.step(time.Second)
	m.Add(10)
	m.Finish()
	if got, want := out.String(), "revoking certificates: 10 of 10 in 3s (10/s)\n"; got != want {
		t.Errorf("summary %q; want %q", got, want)
	}
}

// TestNothingToDo: a total of 0 is known, and said.
func TestNothingToDo(t *testing.T) {
	var out bytes.Buffer
	m, c := newMeter(&out, false)
	m.Begin(0)
	c.step(3 * time.Millisecond)
	m.Finish()
	if got, want := out.String(), "revoking certificates: 0 of 0 in 3ms (0.0/s)\n"; got != want {
		t.Errorf("summary %q; want %q", got, want)
	}
}

// TestNeverBegun: a meter whose work never began (it failed before) writes nothing,
// and Abandon ends a drawn line only.
func TestNeverBegun(t *testing.T) {
	var out bytes.Buffer
	m, _ := newMeter(&out, true)
	m.Abandon()
	m.Finish()
	if out.Len() != 0 {
		t.Errorf("wrote %q", out.String())
	}
	m.Begin(5)
	out.Reset()
	m.Abandon()
	if out.String() != "\n" {
		t.Errorf("Abandon wrote %q; want a newline ending the drawn line", out.String())
	}
	var nilMeter *Meter
	nilMeter.Begin(1) // a nil meter counts nothing and does not fail
	nilMeter.Add(1)
	nilMeter.Finish()
}

func TestIsTerminal(t *testing.T) {
	tty, _ := ptytest.Open(t)
	if !IsTerminal(tty) {
		t.Errorf("a pty is not a terminal")
	}
	if IsTerminal(&bytes.Buffer{}) {
		t.Errorf("a buffer is a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) {
		t.Errorf("a pipe is a terminal")
	}
	// New draws on the pty: the terminal mode is chosen by what stderr is.
	m := New(tty, "x")
	if !m.Terminal {
		t.Errorf("New on a pty chose the summary mode")
	}
}
