// Command reliability is syncd's fault harness (`make reliability`). It
// builds bin/syncd and bin/nats-server (from the module pinned in go.mod),
// then runs scenarios against real processes on loopback ports: under a
// steady load of signed WorkOS and Stripe webhooks from its own generator
// it kills, stops and restarts syncd, Postgres and NATS, and ends each
// scenario by checking every 2xx'd event against Postgres. It prints a
// table, writes it to docs/RELIABILITY.md and exits 1 if any scenario
// missed its threshold (the table is written all the same).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	only      string
	rate      float64
	drain     time.Duration
	out       string
	histories int
	keep      bool
}

func main() {
	var o options
	flag.StringVar(&o.only, "only", "", "comma-separated scenarios to run (default all): "+strings.Join(scenarioNames(), ", ")+", convergence")
	flag.Float64Var(&o.rate, "rate", 40, "steady load, webhooks per second")
	flag.DurationVar(&o.drain, "drain", 60*time.Second, "how long after a fault (or the load) ends every 2xx'd event may take to be applied before it counts as not applied")
	flag.StringVar(&o.out, "out", "docs/RELIABILITY.md", "where to write the table")
	flag.IntVar(&o.histories, "histories", 10000, "random histories for the convergence property test")
	flag.BoolVar(&o.keep, "keep", false, "keep the work dir (process logs, stores) even when every scenario passed")
	flag.Parse()
	os.Exit(run(o))
}

// harness is what the scenarios share: binaries, the Postgres server,
// the run's work dir and every process started, so that none outlives it.
type harness struct {
	root, work        string
	syncdBin, natsBin string
	adminURL          string
	rate              float64
	drain             time.Duration
	runID             string

	mu    sync.Mutex
	procs []*proc
	pg    *pgCluster
}

func (h *harness) track(p *proc) {
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
}

// stopAll kills whatever is still running; a scenario stops its own
// processes, this is the backstop for failures and interrupts.
func (h *harness) stopAll() {
	h.mu.Lock()
	procs := append([]*proc(nil), h.procs...)
	pg := h.pg
	h.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	if pg != nil {
		pg.destroy()
	}
}

// ownPG is the harness's own Postgres cluster, made on first use.
func (h *harness) ownPG() (*pgCluster, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pg != nil {
		return h.pg, nil
	}
	pg, err := newPGCluster(h.work)
	if err != nil {
		return nil, err
	}
	h.pg = pg
	return pg, nil
}

func run(o options) int {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	start := time.Now()
	root, _ := os.Getwd()
	h := &harness{root: root, rate: o.rate, drain: o.drain, runID: fmt.Sprintf("r%d", time.Now().Unix()%1_000_000)}
	h.adminURL = os.Getenv("TEST_DATABASE_URL")
	if h.adminURL == "" {
		h.adminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	work, err := os.MkdirTemp("", "syncd-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		return 1
	}
	// Searchable by the postgres user, which runs the harness's own
	// cluster when the harness is root.
	_ = os.Chmod(work, 0o755)
	h.work = work
	defer h.stopAll()

	selected, err := selectScenarios(o.only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		return 2
	}
	fmt.Printf("reliability: work dir %s (process logs)\n", work)
	if err := h.build(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		return 1
	}

	var results []*result
	for _, sc := range selected.scenarios {
		r := &result{name: sc.title, recoveryLimit: sc.limit}
		fmt.Printf("\n== %s\n", sc.title)
		t := time.Now()
		sctx, scancel := context.WithTimeout(ctx, 5*time.Minute)
		if err := sc.run(sctx, h, r); err != nil {
			r.fail("scenario did not complete: %v", err)
		}
		scancel()
		h.stopAll()
		r.took = time.Since(t)
		printResult(r)
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	var conv *convergence
	if selected.convergence && ctx.Err() == nil {
		conv = h.runConvergence(ctx, o.histories)
	}

	printTable(os.Stdout, results, conv)
	if err := writeReport(h, o, results, conv, time.Since(start)); err != nil {
		fmt.Fprintln(os.Stderr, "reliability: write report:", err)
	} else {
		fmt.Printf("\nwrote %s (%s)\n", o.out, time.Since(start).Round(time.Second))
	}
	failed := ctx.Err() != nil || (conv != nil && !conv.ok)
	for _, r := range results {
		failed = failed || !r.passed()
	}
	if failed || o.keep {
		fmt.Printf("process logs kept in %s\n", work)
	} else {
		os.RemoveAll(work)
	}
	if failed {
		return 1
	}
	return 0
}

// build compiles syncd and nats-server into bin/. nats-server is built
// from the module go.mod pins, so a fresh machine needs nothing beyond
// the Go module proxy.
func (h *harness) build(ctx context.Context) error {
	h.syncdBin = filepath.Join(h.root, "bin", "syncd")
	h.natsBin = filepath.Join(h.root, "bin", "nats-server")
	for _, b := range [][2]string{{h.syncdBin, "./cmd/syncd"}, {h.natsBin, "github.com/nats-io/nats-server/v2"}} {
		fmt.Printf("reliability: go build -o %s %s\n", b[0], b[1])
		bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		out, err := exec.CommandContext(bctx, "go", "build", "-o", b[0], b[1]).CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return nil
}

type selection struct {
	scenarios   []scenario
	convergence bool
}

func selectScenarios(only string) (selection, error) {
	if only == "" {
		return selection{scenarios: scenarios, convergence: true}, nil
	}
	var s selection
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		if name == "convergence" {
			s.convergence = true
			continue
		}
		found := false
		for _, sc := range scenarios {
			if sc.name == name {
				s.scenarios, found = append(s.scenarios, sc), true
			}
		}
		if !found {
			return s, fmt.Errorf("-only: unknown scenario %q (want %s, convergence)", name, strings.Join(scenarioNames(), ", "))
		}
	}
	return s, nil
}

func scenarioNames() []string {
	var out []string
	for _, sc := range scenarios {
		out = append(out, sc.name)
	}
	return out
}

// convergence is the outcome of the convergence property test run at the
// size `make test` does not afford.
type convergence struct {
	histories int
	seed      int64
	ok        bool
	took      time.Duration
	summary   string
}

// runConvergence runs the property test in consumers with many histories.
func (h *harness) runConvergence(ctx context.Context, histories int) *convergence {
	fmt.Printf("\n== convergence property test, %d histories\n", histories)
	t := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", "test", "-count=1", "-timeout=14m", "-run", "^TestConvergence", "./consumers")
	// A new seed each run, so runs explore different histories; the
	// report names it to reproduce a failure.
	seed := time.Now().UnixNano()%1_000_000_000 + 1
	cmd.Env = append(os.Environ(), fmt.Sprintf("SYNCD_CONVERGENCE_HISTORIES=%d", histories), fmt.Sprintf("SYNCD_CONVERGENCE_SEED=%d", seed), "TEST_DATABASE_URL="+h.adminURL)
	out, err := cmd.CombinedOutput()
	c := &convergence{histories: histories, seed: seed, ok: err == nil, took: time.Since(t)}
	os.Stdout.Write(out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		// The first failure lines say which kind diverged and how.
		var keep []string
		for _, l := range lines {
			// The per-kind totals, not the row dumps.
			if strings.Contains(l, "histories diverged") {
				keep = append(keep, strings.TrimSpace(l))
			}
			if len(keep) >= 12 {
				break
			}
		}
		c.summary = strings.Join(keep, "; ")
		if c.summary == "" {
			c.summary = err.Error()
		}
	}
	return c
}
