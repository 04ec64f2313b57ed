package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/syncd/syncd/ingest"
)

const (
	benchWorkOSSecret = "whsec_bench_workos"
	benchStripeSecret = "whsec_bench_stripe"
)

func io_ReadAll(r *http.Request) ([]byte, error) { return io.ReadAll(r.Body) }

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type process struct {
	cmd   *exec.Cmd
	base  string
	pprof string
}

// startProcess runs a server and waits until probe answers.
func startProcess(bin string, args, env []string, probe string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("%s did not become ready at %s", bin, probe)
		}
		time.Sleep(50 * time.Millisecond) // polling a child process's readiness
	}
	return &process{cmd: cmd}, nil
}

// startSyncd runs `syncd serve` with the given role, its own data dir and,
// when dbURL is set, database; extra adds environment (NAME=value) and
// wins. Tracing is off unless extra turns it on.
func startSyncd(bin, tmp, role, dbURL, _ string, extra ...string) (*process, error) {
	return startSyncdIn(bin, tmp, role, dbURL, extra...)
}

// startSyncdIn is startSyncd with the data dir (JetStream's store) under
// storeRoot.
func startSyncdIn(bin, storeRoot, role, dbURL string, extra ...string) (*process, error) {
	addr, pprofAddr := freeAddr(), freeAddr()
	dataDir, err := os.MkdirTemp(storeRoot, "data-")
	if err != nil {
		return nil, err
	}
	env := []string{
		"HTTP_ADDR=" + addr, "SYNCD_DATA_DIR=" + dataDir, "NATS_URL=", "LOG_LEVEL=warn",
		"WORKOS_WEBHOOK_SECRET=" + benchWorkOSSecret, "STRIPE_WEBHOOK_SECRET=" + benchStripeSecret,
		"STRIPE_CONNECT_WEBHOOK_SECRET=", "DATABASE_URL=" + dbURL, "SYNCD_PPROF_ADDR=" + pprofAddr,
		"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=",
	}
	env = append(env, extra...)
	p, err := startProcess(bin, []string{"serve", "--role", role}, env, "http://"+addr+"/readyz")
	if err != nil {
		return nil, err
	}
	p.base, p.pprof = "http://"+addr, "http://"+pprofAddr
	p.cmd.Env = env
	return p, nil
}

// dataDir is the SYNCD_DATA_DIR the process was started with.
func (p *process) dataDir() string {
	for _, e := range p.cmd.Env {
		if v, ok := strings.CutPrefix(e, "SYNCD_DATA_DIR="); ok {
			return v
		}
	}
	return ""
}

// groupCommit is what the process's group commit did so far, from its
// metrics: atomic batches, the webhooks stored in them, and all webhooks
// stored (answered 200).
type groupCommit struct{ batches, batched, stored float64 }

func (p *process) groupCommit() groupCommit {
	var g groupCommit
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		return g
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		switch name {
		case "syncd_ingest_group_batches_total":
			g.batches = f
		case "syncd_ingest_group_batched_total":
			g.batched = f
		default:
			if strings.HasPrefix(name, "syncd_webhook_requests_total{") && strings.Contains(name, `status="200"`) {
				g.stored += f
			}
		}
	}
	return g
}

// note says how many webhooks shared an fsync.
func (g groupCommit) note() string {
	if g.batches == 0 || g.stored == 0 {
		return "group commit formed no batch"
	}
	return fmt.Sprintf("group commit stored %.0f%% of the webhooks in atomic batches, %.1f a batch on average", 100*g.batched/g.stored, g.batched/g.batches)
}

// cpuProfile fetches a CPU profile of the process for d, in the
// background, into bench/profiles/name.pprof; the channel closes when done.
func (p *process) cpuProfile(name string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if p.pprof == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.pprof, max(1, int(d.Seconds()))))
		if err != nil {
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join("bench", "profiles", name+".pprof"))
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	return done
}

// heapProfile saves the process's heap profile to bench/profiles/name.pprof.
func (p *process) heapProfile(name string) {
	if p.pprof == "" {
		return
	}
	resp, err := http.Get(p.pprof + "/debug/pprof/heap")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if f, err := os.Create(filepath.Join("bench", "profiles", name+".pprof")); err == nil {
		_, _ = io.Copy(f, resp.Body)
		f.Close()
	}
}

// profile takes a CPU profile of the process while load runs against it.
func (p *process) profile(name string, d time.Duration, src source, conc int) {
	if p.pprof == "" {
		return
	}
	done := p.cpuProfile(name, d)
	closedLoop(p.base, src, conc, d)
	<-done
}

// peakRSS is the process's high-water resident memory (VmHWM).
func (p *process) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// signedSources give fresh, signed WorkOS and Stripe webhooks of the
// fixtures' sizes. Bodies are rendered once with a placeholder id that is
// replaced per request, so the generator spends its CPU on signing, as a
// provider does, not on JSON.
func signedSources(fx fixtures) (workos, stripe source) {
	// One counter across runs, so no run repeats an id another stored.
	var seq atomic.Int64
	prefix := fmt.Sprint(time.Now().UnixNano())
	// Every user and guest has an email of their own, as WorkOS users do.
	wt := fx.workos("workos/user.created.json", "user.updated", "event_PLACEHOLDERID", map[string]any{"id": "user_load_PLACEHOLDERID", "email": "load_PLACEHOLDERID@load.test"}).body
	st := fx.stripe("stripe/checkout.session.completed.json", "checkout.session.completed", "evt_PLACEHOLDERID", time.Now().Unix(), map[string]any{
		"id": "cs_load_PLACEHOLDERID", "payment_intent": "pi_load_PLACEHOLDERID",
		"metadata": map[string]any{"meeting": meetingJSON("guest_PLACEHOLDERID@load.test")},
	}).body
	render := func(tmpl []byte) []byte {
		return bytes.ReplaceAll(tmpl, []byte("PLACEHOLDERID"), []byte(prefix+"_"+strconv.FormatInt(seq.Add(1), 10)))
	}
	workos = func(int64) request {
		b := render(wt)
		return request{"/webhooks/workos", "WorkOS-Signature", ingest.SignWorkOS(benchWorkOSSecret, b, time.Now()), b}
	}
	stripe = func(int64) request {
		b := render(st)
		return request{"/webhooks/stripe", "Stripe-Signature", ingest.SignStripe(benchStripeSecret, b, time.Now()), b}
	}
	return workos, stripe
}
