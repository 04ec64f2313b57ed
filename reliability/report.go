package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func recoveryText(r *result) string {
	switch {
	case r.recoveryLimit == 0:
		return "—"
	case !r.recoveryKnown:
		return "not recovered"
	}
	return fmt.Sprintf("%.1f s", r.recovery.Seconds())
}

func limitText(r *result) string {
	if r.recoveryLimit == 0 {
		return ""
	}
	return fmt.Sprintf(" (≤ %.0f s)", r.recoveryLimit.Seconds())
}

func verdictText(r *result) string {
	if r.passed() {
		return "pass"
	}
	return "FAIL"
}

func printResult(r *result) {
	fmt.Printf("   %s in %s: sent %d, 2xx %d, 5xx %d, 4xx %d, applied %d, lost %d, late %d, twice %d, dead-lettered %d, recovery %s%s\n",
		verdictText(r), r.took.Round(time.Second), r.sent, r.ok, r.serverErr, r.rejected, r.applied, r.lost, r.late, r.twice, r.deadLettered, recoveryText(r), limitText(r))
	for _, n := range r.notes {
		fmt.Printf("   note: %s\n", n)
	}
	for _, f := range r.failures {
		fmt.Printf("   FAIL: %s\n", f)
	}
}

// table is the markdown table of the results.
func table(w io.Writer, results []*result, conv *convergence) {
	fmt.Fprintln(w, "| scenario | sent | 2xx | 5xx | 4xx | applied | lost | applied twice | dead-lettered | recovery | |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %s%s | %s |\n",
			r.name, r.sent, r.ok, r.serverErr, r.rejected, r.applied, r.lost, r.twice, r.deadLettered, recoveryText(r), limitText(r), verdictText(r))
	}
	if conv != nil {
		v := "pass"
		if !conv.ok {
			v = "FAIL"
		}
		fmt.Fprintf(w, "| convergence property test, %d histories | | | | | | | | | (%s) | %s |\n", conv.histories, conv.took.Round(time.Second), v)
	}
}

func printTable(w io.Writer, results []*result, conv *convergence) {
	fmt.Fprintln(w)
	table(w, results, conv)
}

func writeReport(h *harness, o options, results []*result, conv *convergence, took time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability\n\nWritten by `make reliability` on %s in %s.\n\n", time.Now().UTC().Format(time.RFC3339), took.Round(time.Second))
	fmt.Fprintf(&b, "- Commit: %s\n- Machine: %s\n- Load: %.0f signed webhooks/s (WorkOS `user.created` and Stripe `customer.created`, alternating, each creating a row of its own), plus bursts of %d before a kill; drain deadline %s\n\n",
		commit(h.root), machine(), o.rate, burstSize, o.drain)
	table(&b, results, conv)
	b.WriteString(`
Columns: **sent** webhooks sent (load, and the scenario's poison or hostile
events); **2xx** answered 2xx, a promise that the event is durable; **5xx**
answered 5xx or not answered at all (process down: the provider retries);
**4xx** refused (expected only of hostile envelopes); **applied** 2xx'd
events with their ledger row in ` + "`webhook_events`" + `; **lost** 2xx'd events
with no ledger row, no dead letter and not in the stream, or applied
without their row; **applied twice** events with more than one ledger row
or whose row was written more than once (a trigger counts the writes);
**dead-lettered** 2xx'd events in ` + "`DEADLETTER`" + `; **recovery** from the
restart (or the fault's end: Postgres or NATS back, the leader or the
replica killed) until the first event was applied again and every event
2xx'd before it was applied, with the threshold. A row fails on any lost,
applied twice or unexpectedly dead-lettered event, an event still
unapplied at the drain deadline, a recovery over its threshold, or what the
scenario itself requires (poison dead-lettered; hostile envelopes refused
with a 4xx or dead-lettered, the process alive, nothing pending after a
restart).

`)
	for _, r := range results {
		fmt.Fprintf(&b, "### %s — %s\n\n", r.name, verdictText(r))
		for _, f := range r.failures {
			fmt.Fprintf(&b, "- FAIL: %s\n", mdEscape(f))
		}
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", mdEscape(n))
		}
		b.WriteString("\n")
	}
	if conv != nil {
		fmt.Fprintf(&b, "### convergence property test — %s\n\n`SYNCD_CONVERGENCE_HISTORIES=%d SYNCD_CONVERGENCE_SEED=%d go test -run '^TestConvergence' ./consumers` took %s.", map[bool]string{true: "pass", false: "FAIL"}[conv.ok], conv.histories, conv.seed, conv.took.Round(time.Second))
		if conv.summary != "" {
			fmt.Fprintf(&b, " %s", mdEscape(conv.summary))
		}
		b.WriteString("\n")
	}
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(h.root, out)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, []byte(b.String()), 0o644)
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	pg := ""
	if out, err := exec.Command("psql", "--version").Output(); err == nil {
		pg = ", " + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s%s", cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, pg)
}
