package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// Report is what one run measured.
type Report struct {
	Directory   string  `json:"directory"`
	Mode        string  `json:"mode"` // tight or stock
	KeyType     string  `json:"key_type"`
	Profile     string  `json:"profile,omitempty"`
	Accounts    int     `json:"accounts"`
	Concurrency int     `json:"concurrency"`
	Orders      int     `json:"orders"`
	Issued      int     `json:"issued"`
	Failed      int     `json:"failed"`
	Seconds     float64 `json:"seconds"`
	CertsPerSec float64 `json:"certs_per_second"`
	// Latency of each step in milliseconds (successful orders only).
	Steps []StepLatency `json:"steps"`
	// Errors counts failed orders by ACME problem type (or "transport", "timeout").
	Errors map[string]int `json:"errors,omitempty"`
	// FirstErrors holds one message per problem type, for the reader.
	FirstErrors map[string]string `json:"first_errors,omitempty"`
	// ServerCPUPerCert is the CPU time (user + system) of the given server
	// processes and their children, in seconds per issued certificate; 0 without PIDs.
	ServerCPUPerCert float64 `json:"server_cpu_seconds_per_cert,omitempty"`
}

// StepLatency holds the percentiles of one step.
type StepLatency struct {
	Step string  `json:"step"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// Step returns the latencies of the named step.
func (r *Report) Step(name string) StepLatency {
	for _, s := range r.Steps {
		if s.Step == name {
			return s
		}
	}
	return StepLatency{Step: name}
}

// WriteText prints the report for a person.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s  %s mode, %s keys, %d accounts, concurrency %d\n", r.Directory, r.Mode, r.KeyType, r.Accounts, r.Concurrency)
	fmt.Fprintf(w, "issued %d of %d in %.2f s: %.1f certificates/s", r.Issued, r.Orders, r.Seconds, r.CertsPerSec)
	if r.ServerCPUPerCert > 0 {
		fmt.Fprintf(w, ", server CPU %.1f ms/certificate", r.ServerCPUPerCert*1000)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-10s %9s %9s %9s %9s\n", "step (ms)", "p50", "p95", "p99", "max")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "%-10s %9.1f %9.1f %9.1f %9.1f\n", s.Step, s.P50, s.P95, s.P99, s.Max)
	}
	if r.Failed > 0 {
		fmt.Fprintf(w, "failed orders: %d\n", r.Failed)
		var types []string
		for t := range r.Errors {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			fmt.Fprintf(w, "  %5d  %s (e.g. %s)\n", r.Errors[t], t, r.FirstErrors[t])
		}
	}
}

// recorder collects the outcome of every order.
type recorder struct {
	mu     sync.Mutex
	times  map[string][]time.Duration
	errs   map[string]int
	first  map[string]string
	issued int
	failed int
}

func newRecorder(n int) *recorder {
	r := &recorder{times: map[string][]time.Duration{}, errs: map[string]int{}, first: map[string]string{}}
	for _, s := range steps {
		r.times[s] = make([]time.Duration, 0, n)
	}
	return r
}

func (r *recorder) add(times map[string]time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed++
		kind := ProblemType(err)
		r.errs[kind]++
		if _, ok := r.first[kind]; !ok {
			r.first[kind] = err.Error()
		}
		return
	}
	r.issued++
	for s, d := range times {
		r.times[s] = append(r.times[s], d)
	}
}

func (r *recorder) counts() (issued, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issued, r.failed
}

func (r *recorder) report(cfg Config, elapsed, cpu time.Duration) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	mode := "tight"
	if cfg.Stock {
		mode = "stock"
	}
	accounts := len(cfg.EAB)
	if accounts == 0 {
		accounts = cfg.Accounts
	}
	rep := &Report{Directory: cfg.Directory, Mode: mode, KeyType: cfg.KeyType, Profile: cfg.Profile, Accounts: accounts,
		Concurrency: cfg.Concurrency, Orders: cfg.Orders, Issued: r.issued, Failed: r.failed, Seconds: elapsed.Seconds(),
		CertsPerSec: float64(r.issued) / elapsed.Seconds()}
	for _, s := range steps {
		p := Percentiles(r.times[s], 50, 95, 99, 100)
		rep.Steps = append(rep.Steps, StepLatency{Step: s, P50: ms(p[0]), P95: ms(p[1]), P99: ms(p[2]), Max: ms(p[3])})
	}
	if r.failed > 0 {
		rep.Errors, rep.FirstErrors = r.errs, r.first
	}
	if len(cfg.ServerPIDs) > 0 && r.issued > 0 {
		rep.ServerCPUPerCert = cpu.Seconds() / float64(r.issued)
	}
	return rep
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Percentiles returns the nearest-rank percentiles ps (0 < p ≤ 100) of ds; zeros
// when ds is empty. ds is sorted in place.
func Percentiles(ds []time.Duration, ps ...float64) []time.Duration {
	out := make([]time.Duration, len(ps))
	if len(ds) == 0 {
		return out
	}
	slices.Sort(ds)
	for i, p := range ps {
		rank := int(p/100*float64(len(ds))+0.999999) - 1
		out[i] = ds[min(max(rank, 0), len(ds)-1)]
	}
	return out
}

// ProblemType names what made an order fail: the ACME problem type (e.g.
// urn:ietf:params:acme:error:serverInternal) of the server's answer, of the failed
// order or of the failed challenge; else "timeout" or "transport".
func ProblemType(err error) string {
	var ae *acme.Error
	var oe *acme.OrderError
	var aze *acme.AuthorizationError
	switch {
	case errors.As(err, &oe) && oe.Problem != nil:
		return problemOrStatus(oe.Problem)
	case errors.As(err, &aze) && len(aze.Errors) > 0:
		if errors.As(aze.Errors[0], &ae) {
			return problemOrStatus(ae)
		}
		return "authorization invalid"
	case errors.As(err, &ae):
		return problemOrStatus(ae)
	case errors.Is(err, ErrStalled):
		return "stalled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &oe):
		return "order " + oe.Status
	}
	return "transport"
}

func problemOrStatus(e *acme.Error) string {
	if e.ProblemType != "" {
		return e.ProblemType
	}
	return "HTTP " + strconv.Itoa(e.StatusCode)
}

// newOrderWithProfile sends newOrder with a profile, signed with the client's
// account key and kid, and returns the order's URL.
func newOrderWithProfile(ctx context.Context, c *acme.Client, name, profile string) (string, error) {
	dir, err := c.Discover(ctx)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(map[string]any{
		"identifiers": []map[string]string{{"type": "dns", "value": name}},
		"profile":     profile,
	})
	if err != nil {
		return "", err
	}
	for attempt := 0; ; attempt++ {
		nonce, err := fetchNonce(ctx, c.HTTPClient, dir.NonceURL)
		if err != nil {
			return "", err
		}
		body, err := jwstest.Sign(c.Key, string(c.KID), nonce, dir.OrderURL, payload)
		if err != nil {
			return "", err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, dir.OrderURL, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/jose+json")
		res, err := c.HTTPClient.Do(req)
		if err != nil {
			return "", err
		}
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if res.StatusCode == http.StatusCreated {
			if loc := res.Header.Get("Location"); loc != "" {
				return loc, nil
			}
			return "", errors.New("newOrder answered 201 without a Location")
		}
		p := &acme.Error{StatusCode: res.StatusCode, Header: res.Header}
		var doc struct {
			Type   string `json:"type"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(raw, &doc) == nil {
			p.ProblemType, p.Detail = doc.Type, doc.Detail
		}
		if strings.HasSuffix(p.ProblemType, ":badNonce") && attempt < 3 {
			continue // as x/crypto/acme does
		}
		return "", p
	}
}

func fetchNonce(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return "", err
	}
	res, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	res.Body.Close()
	n := res.Header.Get("Replay-Nonce")
	if n == "" {
		return "", fmt.Errorf("no Replay-Nonce from %s (HTTP %d)", url, res.StatusCode)
	}
	return n, nil
}

// cpuTime is the CPU time (user + system) the processes pids and their live
// children used so far, with the children they reaped (a PostgreSQL postmaster's
// backends). Unreadable processes count zero.
func cpuTime(pids []int) time.Duration {
	if len(pids) == 0 {
		return 0
	}
	var total time.Duration
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
		total += procCPU(p)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || want[pid] {
			continue
		}
		if f := procStat(pid); len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); want[ppid] {
				total += procCPU(pid)
			}
		}
	}
	return total
}

// procStat returns the fields of /proc/PID/stat after the command name (state, ppid, …).
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// procCPU is utime + stime + cutime + cstime of one process (fields 14–17 of
// /proc/PID/stat, in USER_HZ = 100 ticks a second).
func procCPU(pid int) time.Duration {
	f := procStat(pid)
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / 100)
}
