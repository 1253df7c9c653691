// Package progress tells the person at a long command how far it has got. On a
// terminal it keeps one line up to date in place (a carriage return, no newline):
// the count, the rate and the time left. Anywhere else (a pipe, a log file, CI) it
// prints nothing while the work runs and one summary line when it ends, so logs get
// one line, not hundreds. It knows nothing of what is counted; a Meter is safe for
// concurrent use.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Meter counts the items of one piece of work and writes its line.
type Meter struct {
	w     io.Writer
	label string

	// Set before the first Begin; New sets them from the writer and the clock.
	Terminal bool             // redraw a line in place; otherwise only the summary
	Now      func() time.Time // the clock
	Every    time.Duration    // the least time between two redraws

	mu      sync.Mutex
	started time.Time // the first Begin: the summary's duration
	began   time.Time // the latest Begin: the rate's
	total   int
	done    int
	failed  int
	drawn   int       // the width of the line on the terminal; 0: none drawn
	last    time.Time // of the last redraw
}

// New is a meter writing to w, whose lines begin with label (e.g. "revoking
// certificates"). It draws in place when w is a terminal.
func New(w io.Writer, label string) *Meter {
	return &Meter{w: w, label: label, Terminal: IsTerminal(w), Now: time.Now, Every: 100 * time.Millisecond}
}

// IsTerminal says whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Begin starts the count of total items (negative: unknown). Called again, it
// starts again: a transaction that is retried counts its items anew.
func (m *Meter) Begin(total int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.Now()
	if m.started.IsZero() {
		m.started = now
	}
	m.began, m.total, m.done, m.failed = now, total, 0, 0
	m.draw(now, true)
}

// Add counts n items done.
func (m *Meter) Add(n int) { m.count(n, 0) }

// Fail counts n items that ended in failure; they count towards the total too.
func (m *Meter) Fail(n int) { m.count(0, n) }

func (m *Meter) count(done, failed int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done += done
	m.failed += failed
	now := m.Now()
	m.draw(now, m.total >= 0 && m.done+m.failed >= m.total)
}

// Finish writes the summary line: on a terminal in place of the progress line, else
// on a line of its own. A meter that never began writes nothing.
func (m *Meter) Finish() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started.IsZero() {
		return
	}
	now := m.Now()
	s := m.Summary(now)
	if m.Terminal {
		m.put("\r" + pad(s, m.drawn) + "\n")
		m.drawn = 0
		return
	}
	m.put(s + "\n")
}

// Abandon ends a progress line drawn on the terminal, so that an error printed
// next starts on a line of its own; it writes no summary.
func (m *Meter) Abandon() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Terminal && m.drawn > 0 {
		m.put("\n")
		m.drawn = 0
	}
}

// Summary is the line Finish writes: "label: 5000 of 5000 in 12.3s (406/s)", with
// ", N failed" when items failed.
func (m *Meter) Summary(now time.Time) string {
	n := m.done + m.failed
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s in %s (%s)", m.label, m.count0(n), now.Sub(m.started).Round(time.Millisecond), rate(n, now.Sub(m.began)))
	if m.failed > 0 {
		fmt.Fprintf(&b, ", %d failed", m.failed)
	}
	return b.String()
}

// Line is the progress line: "label: 1234 of 5000 (24%), 406/s, 9s left" (no rate
// before the first item, no share or time left when the total is unknown).
func (m *Meter) Line(now time.Time) string {
	n := m.done + m.failed
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", m.label, m.count0(n))
	if m.total > 0 {
		fmt.Fprintf(&b, " (%d%%)", n*100/m.total)
	}
	elapsed := now.Sub(m.began)
	if n > 0 {
		fmt.Fprintf(&b, ", %s", rate(n, elapsed))
	}
	if m.failed > 0 {
		fmt.Fprintf(&b, ", %d failed", m.failed)
	}
	if m.total > 0 && n > 0 && n < m.total {
		left := time.Duration(float64(elapsed) / float64(n) * float64(m.total-n))
		fmt.Fprintf(&b, ", %s left", roundLeft(left))
	}
	return b.String()
}

// count0 is "n of total", or "n" when the total is unknown.
func (m *Meter) count0(n int) string {
	if m.total >= 0 {
		return fmt.Sprintf("%d of %d", n, m.total)
	}
	return fmt.Sprint(n)
}

// draw redraws the terminal line when Every has passed since the last redraw, or
// when forced.
func (m *Meter) draw(now time.Time, force bool) {
	if !m.Terminal || (!force && now.Sub(m.last) < m.Every) {
		return
	}
	s := m.Line(now)
	m.put("\r" + pad(s, m.drawn))
	m.drawn = len(s)
	m.last = now
}

func (m *Meter) put(s string) { _, _ = io.WriteString(m.w, s) }

// pad fills s with spaces to width, so that it covers a longer line drawn before.
func pad(s string, width int) string {
	if len(s) < width {
		return s + strings.Repeat(" ", width-len(s))
	}
	return s
}

// rate is n per second over d: "406/s", "2.5/s", or "-/s" before any time passed.
func rate(n int, d time.Duration) string {
	if d <= 0 {
		return "-/s"
	}
	r := float64(n) / d.Seconds()
	if r >= 10 {
		return fmt.Sprintf("%.0f/s", r)
	}
	return fmt.Sprintf("%.1f/s", r)
}

// roundLeft rounds the time left to what a person reads: seconds, then minutes.
func roundLeft(d time.Duration) time.Duration {
	if d >= 10*time.Minute {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
