// Command bench is syncd's benchmark harness (`make bench`). In one run it
// measures, side by side on this machine: a no-op HTTP baseline and syncd's
// ingest under the same load generator; apply throughput from a pre-filled
// stream against a batched-SQL limit and a one-transaction-per-event loop;
// the replay skip path; apply into a database whose ledger already holds
// millions of rows, and with retention pruning beside it; apply with the
// audit trail on and off; ingest and apply
// together at a steady rate; and syncd's peak memory. It prints a table and
// writes bench/RESULTS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

type options struct {
	root     string
	adminURL string
	loadFor  time.Duration
	conc     int
	entities int
	out      string
	profiles string
	only     string
	// Apply workers of the consumer, and the hot-key workload's size.
	workers                 int
	hotCustomers, hotEvents int
	// ledgerRows is the history the ledger holds for the ledger-size
	// measurement (-long: 100 million).
	ledgerRows int64
	e2eStore   string
	syncdEnv   []string
}

func main() {
	noop := flag.String("noop", "", "internal: serve the no-op baseline on this address")
	var o options
	flag.DurationVar(&o.loadFor, "load-for", 8*time.Second, "duration of each HTTP load run")
	flag.IntVar(&o.conc, "concurrency", 32, "requests in flight in closed-loop runs")
	flag.IntVar(&o.entities, "entities", 7000, "entities in the apply mix (about 2.6 events each)")
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "where to write the results")
	flag.StringVar(&o.profiles, "profiles", "bench/profiles", "where to write pprof profiles (git-ignored)")
	flag.StringVar(&o.only, "only", "", "run one part: http, apply, hotkey, ledger, audit, e2e or store (default all); e2e and store run at 100 × -concurrency req/s")
	flag.IntVar(&o.workers, "apply-workers", 0, "the consumer's apply workers (default syncd's)")
	flag.IntVar(&o.hotCustomers, "hot-customers", 20000, "customers in the hot-key workload")
	flag.IntVar(&o.hotEvents, "hot-events", 130000, "customer.updated events in the hot-key workload")
	flag.Int64Var(&o.ledgerRows, "ledger-rows", 10_000_000, "rows in the ledger for the apply-with-history measurement")
	flag.BoolVar(&keepDBs, "keep-dbs", false, "leave each measurement's database behind (to read its plans and pg_stat_statements)")
	flag.StringVar(&o.e2eStore, "e2e-store", "", "with -only e2e: put the process's data dir (JetStream's store) under this directory, e.g. /dev/shm, to see what the webhooks wait for")
	syncdEnv := flag.String("syncd-env", "", "extra environment for the end-to-end runs' syncd serve, space-separated K=V (e.g. SYNCD_BATCH_LINGER=300ms)")
	long := flag.Bool("long", false, "long mode: a ledger of 100 million rows (a fill of about half an hour)")
	flag.Parse()
	o.syncdEnv = strings.Fields(*syncdEnv)
	if *long {
		o.ledgerRows = 100_000_000
	}
	if *noop != "" {
		serveNoop(*noop)
		return
	}
	o.root, _ = os.Getwd()
	o.adminURL = os.Getenv("TEST_DATABASE_URL")
	if o.adminURL == "" {
		o.adminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	if err := run(o); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

// serveNoop is the baseline: read the body, answer 200.
func serveNoop(addr string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io_ReadAll(r)
		if r.URL.Path == "/v1/traces" {
			// Also the OTLP sink of the traced ingest run: an empty 200
			// is a full success to the exporter.
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"stored"}`))
	})
	log.Fatal(http.ListenAndServe(addr, h))
}

type row struct {
	name, value, target, verdict string
}

func run(o options) error {
	ctx := context.Background()
	start := time.Now()
	tmp, err := os.MkdirTemp("", "syncd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	_ = os.MkdirAll(o.profiles, 0o755)
	fx, err := loadFixtures(o.root)
	if err != nil {
		return err
	}
	bin := filepath.Join(tmp, "syncd")
	self := filepath.Join(tmp, "bench")
	for _, b := range [][]string{{bin, "./cmd/syncd"}, {self, "./bench"}} {
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b[1], err, out)
		}
	}
	var rows []row
	add := func(name, value, target, verdict string) {
		rows = append(rows, row{name, value, target, verdict})
		fmt.Printf("%-58s %-34s %s %s\n", name, value, target, verdict)
	}

	if o.only == "e2e" {
		store := tmp
		if o.e2eStore != "" {
			store = o.e2eStore
		}
		e2e, err := benchEndToEnd(ctx, o, bin, store, mixSource(fx, 3), float64(o.conc)*100)
		fmt.Printf("e2e: %+v %v\n%s; %s\n", e2e, err, e2e.cpuNote(), e2e.group.note())
		return err
	}
	if o.only == "store" {
		st, err := benchStoreAlone(ctx, o, fx, tmp, float64(o.conc)*100)
		if err == nil {
			fmt.Printf("store alone: %s %s\n", st.value(), st.errs())
		}
		return err
	}
	if o.only == "ledger" {
		lr, err := benchLedger(ctx, o, fx)
		if err != nil {
			return err
		}
		for _, r := range ledgerRows(lr) {
			add(r.name, r.value, r.target, r.verdict)
		}
		return nil
	}
	if o.only == "audit" {
		a, err := benchAudit(ctx, o, fx)
		if err != nil {
			return err
		}
		for _, r := range auditRows(a) {
			add(r.name, r.value, r.target, r.verdict)
		}
		return nil
	}
	if o.only == "apply" || o.only == "hotkey" {
		bench := benchApply
		if o.only == "hotkey" {
			bench = benchHotKey
		}
		ap, err := bench(ctx, o, fx)
		if err != nil {
			return err
		}
		fmt.Printf("%s %d events: syncd %.0f/s, limit %.0f/s (%s), naive %.0f/s, skip %.0f/s; %.2f× limit, %.1f× naive\n",
			o.only, ap.events, ap.syncd, ap.limit, ap.limitHow, ap.naive, ap.skip, ap.syncd/ap.limit, ap.syncd/ap.naive)
		return nil
	}
	// 1, 2. The no-op baseline and syncd's ingest (serve --role ingest:
	// verify + PubAck) run side by side, alternating, three rounds each;
	// the best round of each counts, so a noisy moment on a shared
	// machine does not decide a ratio.
	workos, stripe := signedSources(fx)
	noopAddr := freeAddr()
	noop, err := startProcess(self, []string{"-noop", noopAddr}, nil, "http://"+noopAddr+"/")
	if err != nil {
		return err
	}
	// Ingest runs with each JetStream sync setting: always (the default,
	// fsync before every PubAck) and interval (background fsync).
	ing, err := startSyncd(bin, tmp, "ingest", "", o.profiles, "SYNCD_JETSTREAM_SYNC=always")
	if err != nil {
		noop.stop()
		return err
	}
	ingI, err := startSyncd(bin, tmp, "ingest", "", o.profiles, "SYNCD_JETSTREAM_SYNC=interval")
	if err != nil {
		ing.stop()
		noop.stop()
		return err
	}
	const rounds = 3
	best := func(r, b loadResult) loadResult {
		if r.RPS() > b.RPS() {
			return r
		}
		return b
	}
	var baseW, baseS, ingW, ingS, ingIW, ingIS loadResult
	for range rounds {
		baseW = best(closedLoop("http://"+noopAddr, workos, o.conc, o.loadFor/2), baseW)
		ingW = best(closedLoop(ing.base, workos, o.conc, o.loadFor/2), ingW)
		ingIW = best(closedLoop(ingI.base, workos, o.conc, o.loadFor/2), ingIW)
		baseS = best(closedLoop("http://"+noopAddr, stripe, o.conc, o.loadFor/2), baseS)
		ingS = best(closedLoop(ing.base, stripe, o.conc, o.loadFor/2), ingS)
		ingIS = best(closedLoop(ingI.base, stripe, o.conc, o.loadFor/2), ingIS)
	}
	before := sampleCPU(ing.cmd.Process.Pid)
	ing.profile("ingest-cpu", o.loadFor/2, stripe, o.conc)
	ingCPU := sampleCPU(ing.cmd.Process.Pid).since(before)
	ingGroup := ing.groupCommit()
	ing.stop()
	ingI.stop()
	// 2b. The same ingest with tracing on (OTLP export to the no-op
	// server), to show what tracing costs, and that off costs nothing.
	traced, err := startSyncd(bin, tmp, "ingest", "", o.profiles, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+noopAddr)
	if err != nil {
		noop.stop()
		return err
	}
	var tracedS loadResult
	for range rounds {
		tracedS = best(closedLoop(traced.base, stripe, o.conc, o.loadFor/2), tracedS)
	}
	traced.stop()
	noop.stop()
	add("1. HTTP baseline, no-op (WorkOS-size bodies)", fmt.Sprintf("%.0f req/s p50 %s p99 %s", baseW.RPS(), ms(baseW.P50), ms(baseW.P99)), "", "")
	add("1. HTTP baseline, no-op (Stripe-size bodies)", fmt.Sprintf("%.0f req/s p50 %s p99 %s", baseS.RPS(), ms(baseS.P50), ms(baseS.P99)), "", "")
	for _, p := range []struct {
		name      string
		got, base loadResult
	}{{"WorkOS", ingW, baseW}, {"Stripe", ingS, baseS}} {
		ratio := p.got.RPS() / p.base.RPS()
		why := ""
		if ratio < 0.5 {
			why = "the embedded server fsyncs each message before its PubAck; " + ingGroup.note() + ", and each batch costs about four fsyncs of its own (nats-server stages it in a file store made and removed per batch); CPU of 2 cores during a Stripe run: " + ingCPU.note()
		}
		add("2. Ingest "+p.name+" (verify + PubAck, sync always)", fmt.Sprintf("%.0f req/s p50 %s p99 %s, %.2f× baseline", p.got.RPS(), ms(p.got.P50), ms(p.got.P99), ratio), "≥ 0.50×", verdict(ratio >= 0.5 && p.got.Errors == 0, joinNotes(errNote(p.got), why)))
	}
	for _, p := range []struct {
		name        string
		got, always loadResult
		base        loadResult
	}{{"WorkOS", ingIW, ingW, baseW}, {"Stripe", ingIS, ingS, baseS}} {
		add("2. Ingest "+p.name+" (sync interval)", fmt.Sprintf("%.0f req/s p50 %s p99 %s, %.2f× baseline, %.2f× sync always", p.got.RPS(), ms(p.got.P50), ms(p.got.P99), p.got.RPS()/p.base.RPS(), p.got.RPS()/p.always.RPS()), "", verdict(p.got.Errors == 0, errNote(p.got)))
	}

	add("2. Ingest Stripe, tracing on (OTLP export)", fmt.Sprintf("%.0f req/s p50 %s p99 %s, %.2f× tracing off", tracedS.RPS(), ms(tracedS.P50), ms(tracedS.P99), tracedS.RPS()/ingS.RPS()), "", errNote(tracedS))
	if o.only == "http" {
		return nil
	}
	// 3, 4. Apply and skip path, with the references.
	ap, err := benchApply(ctx, o, fx)
	if err != nil {
		return err
	}
	hot, err := benchHotKey(ctx, o, fx)
	if err != nil {
		return err
	}
	for _, w := range []struct {
		name string
		r    applyResult
	}{{"realistic mix", ap}, {"hot keys", hot}} {
		add(fmt.Sprintf("3. Apply, %s: syncd consumer (%d events)", w.name, w.r.events), fmt.Sprintf("%.0f events/s", w.r.syncd), "", "")
		add(fmt.Sprintf("3. Apply, %s: limit, the best SQL for the same rows", w.name), fmt.Sprintf("%.0f events/s (%s)", w.r.limit, w.r.limitHow), "", "")
		add(fmt.Sprintf("3. Apply, %s: one transaction per event", w.name), fmt.Sprintf("%.0f events/s", w.r.naive), "", "")
		add(fmt.Sprintf("3. Apply, %s: ratio to the limit", w.name), fmt.Sprintf("%.2f×", w.r.syncd/w.r.limit), "≥ 0.40×", verdict(w.r.syncd/w.r.limit >= 0.4, ""))
		add(fmt.Sprintf("3. Apply, %s: ratio to one tx per event", w.name), fmt.Sprintf("%.1f×", w.r.syncd/w.r.naive), "≥ 5×", verdict(w.r.syncd/w.r.naive >= 5, ""))
	}
	add("4. Replay of applied events (skip path)", fmt.Sprintf("%.0f events/s, %.1f× apply", ap.skip, ap.skip/ap.syncd), "≥ 2×", verdict(ap.skip/ap.syncd >= 2, ""))

	// 5, 6. End to end at half the peak ingest rate, one process.
	e2e, err := benchEndToEnd(ctx, o, bin, tmp, mixSource(fx, 3), (ingW.RPS()+ingS.RPS())/4)
	if err != nil {
		return err
	}
	// 5a. The same with JetStream's store on tmpfs: what the webhooks wait
	// for when their fsyncs do not queue behind Postgres's writes on the
	// one disk (a stand-in for a disk of its own; tmpfs is not durable).
	var own *e2eResult
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		r, err := benchEndToEnd(ctx, o, bin, "/dev/shm", mixSource(fx, 3), e2e.rate)
		if err != nil {
			return err
		}
		own = &r
	}
	// 5c. The store alone at the same rate: the least a webhook waits.
	st, err := benchStoreAlone(ctx, o, fx, tmp, e2e.rate)
	if err != nil {
		return err
	}
	why := ""
	if e2e.lag >= time.Second || e2e.load.P99 > 20*time.Millisecond || e2e.load.Errors > 0 {
		why = fmt.Sprintf("apply alone sustains about %.0f events/s of this mix here (best SQL %.0f); %s; %s", ap.syncd, ap.limit, e2e.cpuNote(), e2e.group.note())
		if own != nil {
			why += fmt.Sprintf("; with JetStream's store off this disk (5a) p99 is %s", ms(own.load.P99))
		}
		why += "; " + st.note()
	}
	add(fmt.Sprintf("5. End to end, realistic mix at %.0f req/s (half peak ingest)", e2e.rate), fmt.Sprintf("p99 %s (p50 %s), lag at end %s (%d pending)", ms(e2e.load.P99), ms(e2e.load.P50), e2e.lag.Round(time.Millisecond), e2e.pendingAtEnd), "p99 ≤ 20 ms, lag < 1 s", verdict(e2e.load.P99 <= 20*time.Millisecond && e2e.lag < time.Second && e2e.load.Errors == 0, joinNotes(errNote(e2e.load), why)))
	if own != nil {
		add("5a. The same, JetStream's store on tmpfs (a disk of its own, not durable: a diagnostic)", fmt.Sprintf("p99 %s (p50 %s), lag at end %s (%d pending)", ms(own.load.P99), ms(own.load.P50), own.lag.Round(time.Millisecond), own.pendingAtEnd), "", errNote(own.load))
	}
	add(fmt.Sprintf("5c. JetStream alone at %.0f msg/s: the mix's messages into the same store on this disk, no HTTP, Postgres or consumer (PubAck latency)", e2e.rate), st.value(), "", st.errs())
	// The same at a quarter of the peak (or ¾ of apply, if lower): the
	// latency and lag of a machine that is not saturated.
	steady, err := benchEndToEnd(ctx, o, bin, tmp, mixSource(fx, 4), min(0.75*ap.syncd, (ingW.RPS()+ingS.RPS())/8))
	if err != nil {
		return err
	}
	add(fmt.Sprintf("5b. End to end, realistic mix at %.0f req/s (a quarter of peak ingest)", steady.rate), fmt.Sprintf("p99 %s, lag at end %s (%d pending)", ms(steady.load.P99), steady.lag.Round(time.Millisecond), steady.pendingAtEnd), "", "")
	add("6. Peak RSS of syncd serve (end-to-end at half peak)", fmt.Sprintf("%.0f MB", float64(max(e2e.peakRSS, steady.peakRSS))/1e6), "≤ 150 MB", verdict(max(e2e.peakRSS, steady.peakRSS) <= 150e6, ""))

	// 7, 8. Apply with a long history in the ledger; retention beside it.
	lr, err := benchLedger(ctx, o, fx)
	if err != nil {
		return err
	}
	for _, r := range ledgerRows(lr) {
		add(r.name, r.value, r.target, r.verdict)
	}

	// 9. The audit trail's cost to apply.
	au, err := benchAudit(ctx, o, fx)
	if err != nil {
		return err
	}
	for _, r := range auditRows(au) {
		add(r.name, r.value, r.target, r.verdict)
	}

	return writeResults(o, rows, time.Since(start))
}

// ledgerRows states the ledger measurements and their ratios.
func ledgerRows(lr ledgerResult) []row {
	size := float64(lr.rows) / 1e6
	ratio := lr.full / lr.empty
	return []row{
		{fmt.Sprintf("7. Apply into an empty ledger (%d events, best of %d)", lr.events, lr.rounds), fmt.Sprintf("%.0f events/s", lr.empty), "", ""},
		{fmt.Sprintf("7. Apply into a ledger of %.0fM rows, right after the fill", size), fmt.Sprintf("%.0f events/s, %.2f× empty (fill took %s)", lr.full, ratio, lr.fillTook.Round(time.Second)), "≥ 0.80×", verdict(ratio >= 0.8, "")},
		retentionRow(fmt.Sprintf("8. Apply, %.0fM-row ledger, retention pruning beside it at steady state", size), lr.retention.steady, verdict(lr.retention.steady.blocks > 0 && lr.retention.steady.cost <= 0.05, "")),
		retentionRow("8b. The same, retention catching up on a backlog of half the ledger", lr.retention.catchUp, ""),
	}
}

func retentionRow(name string, p phaseResult, v string) row {
	target := ""
	if v != "" {
		target = "≤ 5 %"
	}
	return row{name, fmt.Sprintf("%.1f %% slower (median of %d blocks; %.0f events/s with, %.0f without; pruned %d rows, %.0f/s while on)",
		100*p.cost, p.blocks, p.with, p.without, p.pruned, p.prunedPerSec), target, v}
}

func verdict(ok bool, note string) string {
	if ok {
		return "met"
	}
	if note != "" {
		return "MISSED (" + note + ")"
	}
	return "MISSED"
}

func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}

func errNote(r loadResult) string {
	if r.Errors > 0 {
		return fmt.Sprintf("%d errors", r.Errors)
	}
	return ""
}

func writeResults(o options, rows []row, took time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark results\n\nWritten by `make bench` on %s in %s.\n\n", time.Now().UTC().Format(time.RFC3339), took.Round(time.Second))
	fmt.Fprintf(&b, "Machine: %s\n\n", machine())
	fmt.Fprintf(&b, "| measure | result | target | |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.name, r.value, r.target, r.verdict)
	}
	if notes, err := os.ReadFile(filepath.Join(o.root, "bench", "NOTES.md")); err == nil {
		b.WriteString("\n")
		b.Write(notes)
	}
	fmt.Printf("\nwrote %s\n", o.out)
	return os.WriteFile(o.out, []byte(b.String()), 0o644)
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
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1] + " kB memory"
	}
	pg := ""
	if out, err := exec.Command("psql", "--version").Output(); err == nil {
		pg = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s, %s/%s, %s; embedded nats-server, one process each for load generator and server",
		cpu, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, pg)
}
