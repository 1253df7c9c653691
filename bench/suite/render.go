package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/varmenne/varmenne/bench"
)

// render is the results file: the conditions, one table of issuance, one of CRLs,
// and each target of issue 9 with its verdict.
func (s *suite) render() string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	title := "full run"
	if s.p.quick {
		title = "quick run (make bench-quick)"
	}
	w("# varmenne benchmark, %s, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), title)
	w("Machine: %s, %d CPUs, %s; load average at the end %s. Took %s.\n\n", cpuModel(), runtime.NumCPU(), runtime.Version(),
		loadAverage(), time.Since(s.began).Round(time.Second))
	w("Workload: \"varmenne-bench\" in tight mode (polls every 5 ms), one account per run, one name per order, P-256 certificate keys made before the clock starts, http-01 from the load generator's own loopback responder; orders per run: %s; a warm-up of 12 orders first. Server and load generator share the machine. varmenne runs with its rate limits at 1 000 000 (counted, never refusing); SQLite is durable (WAL, synchronous FULL), PostgreSQL is a private `store/pgtest` cluster with its default (durable) settings. Raw signing: %d goroutines signing for %s (SoftHSM: %d sessions; varmenne serves with `--pkcs11-sessions %d`).\n\n",
		s.ordersText(), s.p.rawSigners, s.p.signSeconds, s.p.pkcsSessions, s.p.pkcsSessions)
	for name, why := range s.peerErr {
		w("**%s was not measured:** %s\n\n", name, why)
	}
	if s.pgErr != "" {
		w("**PostgreSQL was not measured:** %s\n\n", s.pgErr)
	}

	w("| # | what | database | issuer key | C | per second | order p50 ms | p95 | p99 | failed | server CPU ms/cert | ratio |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, k := range s.p.keys {
		if r, ok := s.raw[k.name]; ok {
			w("| 1 | raw signing (signatures/s) | | %s | %d | %.0f | | | | | | |\n", k.name, s.p.rawSigners, r)
		}
	}
	for _, r := range s.runs {
		section, ratio := "2", ""
		switch r.target {
		case "varmenne":
			if raw, ok := s.raw[r.key]; ok && r.rep != nil && raw > 0 {
				ratio = fmt.Sprintf("%.3g × raw", r.rep.CertsPerSec/raw)
			}
		default:
			section = "4"
			if v := s.find("varmenne", "sqlite", r.match, r.c); v != nil && r.rep != nil && r.rep.CertsPerSec > 0 {
				ratio = fmt.Sprintf("varmenne SQLite %.2f ×", v.rep.CertsPerSec/r.rep.CertsPerSec)
				if r.rep.Failed > 0 {
					ratio = "not comparable: the peer failed orders"
				}
			}
		}
		if r.rep == nil {
			w("| %s | %s | %s | %s | %d | error: %s | | | | | | |\n", section, r.target, r.db, r.key, r.c, oneLine(r.err))
			continue
		}
		o := r.rep.Step(bench.StepOrder)
		failed := fmt.Sprint(r.rep.Failed)
		if r.rep.Failed > 0 {
			failed += " (" + errorsText(r.rep) + ")"
		}
		w("| %s | %s | %s | %s | %d | %.1f | %.0f | %.0f | %.0f | %s | %.1f | %s |\n", section, r.target, r.db, r.key, r.c,
			r.rep.CertsPerSec, o.P50, o.P95, o.P99, failed, r.rep.ServerCPUPerCert*1000, ratio)
	}
	w("\nSection 3 is the ratio column of the varmenne rows (certificates/s ÷ signatures/s of the same key), section 4's ratio is varmenne on SQLite with the matching key at the same C ÷ the peer. Server CPU counts the server process and its children (PostgreSQL's postmaster and backends for varmenne on PostgreSQL).\n\n")

	w("Per-step latency of the varmenne runs (p50 / p99 ms):\n\n| database | issuer key | C | newOrder | challenge | finalize | download |\n|---|---|---|---|---|---|---|\n")
	for _, r := range s.runs {
		if r.rep == nil {
			continue
		}
		w("| %s %s | %s | %d |", r.target, r.db, r.key, r.c)
		for _, st := range []string{bench.StepNewOrder, bench.StepChallenge, bench.StepFinalize, bench.StepDownload} {
			l := r.rep.Step(st)
			w(" %.0f / %.0f |", l.P50, l.P99)
		}
		w("\n")
	}

	w("\n## 5. CRL of N revoked entries, RSA-4096 file key\n\n")
	w("| entries | x509.CreateRevocationList s | allocated MiB | varmenne build + check s | allocated MiB | republish after one more revocation s | allocated MiB | republish ÷ x509 time | ÷ x509 memory |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range s.crls {
		if c.err != "" {
			w("| %d | error: %s | | | | | | | |\n", c.n, oneLine(c.err))
			continue
		}
		w("| %d | %.3f | %.0f | %.3f | %.0f | %.3f | %.0f | %.2f | %.2f |\n", c.n, c.bareSec, c.bareMB, c.buildSec, c.buildMB,
			c.repSec, c.repMB, c.repSec/c.bareSec, c.repMB/c.bareMB)
	}
	w("\nPeak live heap above the entries (MiB): ")
	for _, c := range s.crls {
		w("%d entries: x509 %.0f, build %.0f, republish %.0f; ", c.n, c.barePeak, c.buildPk, c.repPeak)
	}
	w("\n\n## Targets of issue 19 (and issue 9's CRL target)\n\n")
	for _, t := range s.targets() {
		w("- %s\n", t)
	}
	return b.String()
}

func (s *suite) ordersText() string {
	var parts []string
	for _, c := range s.p.concurrency {
		parts = append(parts, fmt.Sprintf("%d at C = %d", s.p.orders[c], c))
	}
	return strings.Join(parts, ", ")
}

func (s *suite) find(target, db, match string, c int) *run {
	for i := range s.runs {
		r := &s.runs[i]
		if r.target == target && (db == "" || r.db == db) && r.match == match && r.c == c && r.rep != nil {
			if target == "varmenne" && strings.Contains(r.key, "SoftHSM") {
				continue // the peers compare with file keys
			}
			return r
		}
	}
	return nil
}

// targets judges the runs against issue 19's targets (the embedded default: SQLite,
// file P-256 issuer) and issue 9's CRL target.
func (s *suite) targets() []string {
	var out []string
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	const p256 = "p256"
	for _, c := range s.p.concurrency {
		v := s.find("varmenne", "sqlite", p256, c)
		if v == nil {
			continue
		}
		cpu := v.rep.ServerCPUPerCert * 1000
		line := fmt.Sprintf("varmenne SQLite file P-256, C = %d: %.1f certificates/s, %d of %d orders failed (target 0): %s", c,
			v.rep.CertsPerSec, v.rep.Failed, v.rep.Orders, verdict(v.rep.Failed == 0))
		if c == 8 && cpu > 0 {
			line += fmt.Sprintf("; server CPU %.1f ms per certificate (target ≤ 4): %s", cpu, verdict(cpu <= 4))
		}
		if c == 32 {
			o := v.rep.Step(bench.StepOrder)
			line += fmt.Sprintf("; p99 %.0f ms = %.2f × p50 %.0f ms (target ≤ 2): %s", o.P99, o.P99/o.P50, o.P50, verdict(o.P99 <= 2*o.P50))
		}
		out = append(out, line)
		if pg := s.find("varmenne", "postgres", p256, c); pg != nil && c >= 8 {
			q := pg.rep.CertsPerSec / v.rep.CertsPerSec
			line := fmt.Sprintf("PostgreSQL, file P-256, C = %d: %.1f certificates/s = %.2f × SQLite's %.1f (target ≥ 0.7): %s", c,
				pg.rep.CertsPerSec, q, v.rep.CertsPerSec, verdict(q >= 0.7))
			if c == 32 {
				line += fmt.Sprintf("; %d of %d orders failed (target 0): %s", pg.rep.Failed, pg.rep.Orders, verdict(pg.rep.Failed == 0))
			}
			out = append(out, line)
		}
		for _, peer := range []struct {
			name   string
			target float64
		}{{"Pebble", 1}, {"step-ca", 2}} {
			if peer.name == "Pebble" && c != 8 || peer.name == "step-ca" && c < 8 {
				continue
			}
			r := s.find(peer.name, "", p256, c)
			switch {
			case r == nil:
			case r.rep.Failed > 0:
				out = append(out, fmt.Sprintf("vs %s, P-256, C = %d: not comparable, %s failed %d of %d orders (%s)", peer.name, c,
					peer.name, r.rep.Failed, r.rep.Orders, errorsText(r.rep)))
			default:
				q := v.rep.CertsPerSec / r.rep.CertsPerSec
				out = append(out, fmt.Sprintf("vs %s, P-256, C = %d: varmenne %.1f vs %.1f certificates/s = %.2f × (target ≥ %g): %s",
					peer.name, c, v.rep.CertsPerSec, r.rep.CertsPerSec, q, peer.target, verdict(q >= peer.target)))
			}
		}
	}
	for _, r := range s.runs {
		if r.target == "varmenne" && r.key == hsmRSA.name && r.c == 8 && r.rep != nil {
			raw := s.raw[hsmRSA.name]
			if raw == 0 {
				continue
			}
			q := r.rep.CertsPerSec / raw
			out = append(out, fmt.Sprintf("SoftHSM RSA-4096 at C = 8 on %s: %.1f certificates/s = %.2f × the raw %.0f signatures/s (target ≥ 0.5): %s",
				r.db, r.rep.CertsPerSec, q, raw, verdict(q >= 0.5)))
		}
	}
	for _, c := range s.crls {
		if c.n == 1_000_000 && c.err == "" {
			out = append(out, fmt.Sprintf("issue 9: CRL of 1 M entries, republished after one more revocation: %.3f s = %.2f × x509.CreateRevocationList's %.3f s (target ≤ 0.5): %s; %.0f MiB allocated = %.2f × its %.0f MiB (target ≤ 0.25): %s",
				c.repSec, c.repSec/c.bareSec, c.bareSec, verdict(c.repSec <= 0.5*c.bareSec), c.repMB, c.repMB/c.bareMB, c.bareMB, verdict(c.repMB <= 0.25*c.bareMB)))
		}
	}
	if len(out) == 0 {
		out = append(out, "no target is measured by this subset")
	}
	return out
}

func errorsText(r *bench.Report) string {
	var parts []string
	for t, n := range r.Errors {
		parts = append(parts, fmt.Sprintf("%d %s", n, strings.TrimPrefix(t, "urn:ietf:params:acme:error:")))
	}
	return strings.Join(parts, ", ")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
