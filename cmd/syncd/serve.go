package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/redact"
	"github.com/syncd/syncd/stream"
)

type serveFlags struct {
	common
	httpAddr        string
	role            string
	noMigrate       bool
	workosSecrets   string
	stripeSecrets   string
	connectSecrets  string
	workosTolerance time.Duration
	stripeTolerance time.Duration
	maxBody         int64
	ingestMemory    int64
	publishTimeout  time.Duration
	replayWindow    time.Duration
	replicas        int
	batchSize       int
	applyWorkers    int
	maxAttempts     int
	shutdownTimeout time.Duration
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	var rec reconcile
	var prov provisioning
	var ret retentionFlags
	var aud auditFlags
	var adm adminFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	aud.register(fs)
	f.register(fs)
	rec.register(fs)
	prov.register(fs)
	ret.register(fs)
	adm.register(fs)
	fs.StringVar(&f.httpAddr, "http-addr", env("HTTP_ADDR", ":8080"), "listen address (env HTTP_ADDR)")
	fs.StringVar(&f.role, "role", env("SYNCD_ROLE", "all"), "all, ingest or consume: which parts run in this process (env SYNCD_ROLE)")
	fs.BoolVar(&f.noMigrate, "no-migrate", false, "do not apply migrations at start")
	fs.StringVar(&f.workosSecrets, "workos-secret", env("WORKOS_WEBHOOK_SECRET", ""), "WorkOS signing secret(s), comma-separated (env WORKOS_WEBHOOK_SECRET)")
	fs.StringVar(&f.stripeSecrets, "stripe-secret", env("STRIPE_WEBHOOK_SECRET", ""), "Stripe platform signing secret(s), comma-separated (env STRIPE_WEBHOOK_SECRET)")
	fs.StringVar(&f.connectSecrets, "stripe-connect-secret", env("STRIPE_CONNECT_WEBHOOK_SECRET", ""), "Stripe Connect signing secret(s), comma-separated (env STRIPE_CONNECT_WEBHOOK_SECRET)")
	fs.DurationVar(&f.workosTolerance, "workos-tolerance", 180*time.Second, "accepted WorkOS timestamp skew, either direction (env WORKOS_SIGNATURE_TOLERANCE)")
	fs.DurationVar(&f.stripeTolerance, "stripe-tolerance", 300*time.Second, "accepted Stripe timestamp skew, either direction (env STRIPE_SIGNATURE_TOLERANCE)")
	fs.Int64Var(&f.maxBody, "max-body", maxBodyDefault, "largest accepted webhook body in bytes; with its headers it must fit the NATS server's max_payload (env SYNCD_MAX_BODY)")
	fs.Int64Var(&f.ingestMemory, "ingest-memory", 0, "bytes of webhook bodies held in memory at once, across requests; past it requests wait briefly, then get 503 (default 32 MiB, or 4 × --max-body if more) (env SYNCD_INGEST_MEMORY)")
	fs.DurationVar(&f.publishTimeout, "publish-timeout", 5*time.Second, "wait for JetStream's PubAck before answering 503 (env SYNCD_PUBLISH_TIMEOUT)")
	fs.DurationVar(&f.replayWindow, "replay-window", 30*24*time.Hour, "how long WEBHOOKS keeps events, the stream's MaxAge (env SYNCD_REPLAY_WINDOW)")
	fs.IntVar(&f.replicas, "stream-replicas", 1, "JetStream replicas of WEBHOOKS and DEADLETTER on a clustered NATS_URL (env SYNCD_STREAM_REPLICAS)")
	fs.IntVar(&f.batchSize, "batch-size", consumers.BatchSizeDefault, "events applied per transaction, at most (env SYNCD_BATCH_SIZE)")
	fs.IntVar(&f.applyWorkers, "apply-workers", consumers.ApplyWorkersDefault, "transactions applying a batch at once, each on its own connection, events routed by entity (env SYNCD_APPLY_WORKERS)")
	fs.IntVar(&f.maxAttempts, "max-attempts", 5, "permanent failures before an event is dead-lettered (env SYNCD_MAX_ATTEMPTS)")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "hard stop after this long; the consumer gets four fifths of it to finish its batch and hand back the rest")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	maxBodySet := false
	fs.Visit(func(fl *flag.Flag) { maxBodySet = maxBodySet || fl.Name == "max-body" })
	ingestOn, consumeOn := f.role == "all" || f.role == "ingest", f.role == "all" || f.role == "consume"
	if !ingestOn && !consumeOn {
		return usageError("--role %q: want all, ingest or consume", f.role)
	}
	if _, err := stream.ParseSyncMode(f.jsSync); err != nil {
		return usageError("--jetstream-sync: %v", err)
	}
	if f.replicas < 1 || f.replicas > 5 {
		return usageError("--stream-replicas %d: want 1 to 5", f.replicas)
	}
	if f.replayWindow < time.Hour {
		return usageError("--replay-window %s: want at least 1h", f.replayWindow)
	}
	if err := rec.setup(consumeOn || f.databaseURL != ""); err != nil {
		return err
	}
	if err := prov.setup(consumeOn); err != nil {
		return err
	}
	if err := ret.setup(f.replayWindow); err != nil {
		return err
	}
	if err := aud.setup(); err != nil {
		return err
	}
	aud.retentionConfig(&ret.cfg)
	// Refuse bad configuration before opening anything.
	icfg := ingest.Config{
		WorkOSSecrets:        f.workosSecrets,
		StripeSecrets:        f.stripeSecrets,
		StripeConnectSecrets: f.connectSecrets,
		WorkOSTolerance:      f.workosTolerance,
		StripeTolerance:      f.stripeTolerance,
		MaxBody:              f.maxBody,
		MemoryBudget:         f.ingestMemory,
		PublishTimeout:       f.publishTimeout,
	}
	if ingestOn {
		if err := icfg.Check(); err != nil {
			return usageError("%v", err)
		}
	}
	if f.shutdownTimeout <= 0 {
		return usageError("--shutdown-timeout %s: want a positive duration", f.shutdownTimeout)
	}
	// The consumer's stop (finish the batch in flight, hand back the rest
	// and wait for the server to have it) must end inside the shutdown
	// timeout, before the embedded server stops with the process; the
	// rest of the timeout is for draining the NATS connection.
	ccfg := consumers.Config{BatchSize: f.batchSize, MaxAttempts: f.maxAttempts, StopTimeout: f.shutdownTimeout * 4 / 5, ApplyWorkers: f.applyWorkers, AuditOff: aud.off}
	if consumeOn {
		if err := ccfg.Check(); err != nil {
			return usageError("%v", err)
		}
	}
	log, err := f.logger(stderr)
	if err != nil {
		return err
	}

	tuneGC()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var hooks []func(context.Context) error // readiness checks
	var pool *pgxpool.Pool
	if consumeOn || f.databaseURL != "" {
		if pool, err = f.pool(ctx); err != nil {
			return err
		}
		defer pool.Close()
		hooks = append(hooks, func(ctx context.Context) error { return pool.Ping(ctx) })
		if !f.noMigrate {
			applied, err := migrations.Up(ctx, pool)
			if err != nil {
				return err
			}
			for _, m := range applied {
				log.Info("migration applied", "version", m.Version, "name", m.Name)
			}
		}
		if consumeOn {
			// Before anything is applied: a role that row-level security
			// filters would miss rows its upserts must see.
			if err := consumers.CheckWriter(ctx, pool); err != nil {
				return err
			}
		}
	}

	conn, err := f.jetstream(ctx, log, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = stream.Ensure(ectx, conn.JS, stream.Config{MaxAge: f.replayWindow, Replicas: f.replicas}, stream.ConsumerConfig{})
	cancel()
	if err != nil {
		return err
	}
	hooks = append(hooks, conn.Ready)
	if ingestOn {
		// A body the server cannot take with its headers, or whose
		// dead-letter copy it cannot take, would be a 503 forever.
		if err := conn.CheckMaxBody(icfg.MaxBody); err != nil {
			if maxBodySet {
				return usageError("--max-body: %v", err)
			}
			icfg.MaxBody = conn.NC.MaxPayload() - stream.HeaderRoom
			if err := icfg.Check(); err != nil {
				return fmt.Errorf("NATS max_payload %d leaves no usable body size: %w", conn.NC.MaxPayload(), err)
			}
			log.Warn("max body lowered to fit the NATS server's max_payload", "max_body", icfg.MaxBody, "max_payload", conn.NC.MaxPayload())
		}
	}
	if !conn.Embedded() {
		log.Info("external NATS: acknowledged events are on disk only if the server runs with sync_interval: always (or the stream is replicated)", "url", redact.URL(f.natsURL))
	}

	var draining atomic.Bool
	ready := readiness{log: log}
	mux := http.NewServeMux()
	// The public listener says only whether the process serves: the
	// reasons (a driver's error names the user, database, host and port)
	// go to the log and to `syncd status`.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, true)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if draining.Load() {
			writeProbe(w, false)
			return
		}
		var err error
		for _, check := range hooks {
			if err = check(rctx); err != nil {
				break
			}
		}
		ready.note(err)
		writeProbe(w, err == nil)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if ingestOn {
		icfg.Logger, icfg.Registerer = log, reg
		h, err := ingest.New(icfg, conn.JS)
		if err != nil {
			return usageError("%v", err)
		}
		h.Register(mux)
	}

	if addr := env("SYNCD_PPROF_ADDR", ""); addr != "" {
		// Profiling stays off the public listener.
		go servePprof(addr, log)
	}

	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.httpAddr, err)
	}
	srv := &http.Server{Handler: mux, MaxHeaderBytes: maxHeaderBytes, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	if consumeOn {
		ccfg.Logger, ccfg.Registerer = log, reg
		c, err := consumers.New(ccfg, pool, conn.JS)
		if err != nil {
			return usageError("%v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(runCtx); err != nil {
				errc <- fmt.Errorf("consumer: %w", err)
			}
		}()
		// Retention runs where the consumers do: one role owns the ledger.
		if err := ret.start(runCtx, &wg, pool, log, reg); err != nil {
			return err
		}
	}
	rec.start(runCtx, &wg, pool, conn.JS, log)
	if err := prov.start(runCtx, &wg, errc, pool, conn.JS, log, reg); err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		monitor(runCtx, conn, reg, log)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	log.Info("syncd serving", "addr", ln.Addr().String(), "role", f.role, "embedded_nats", conn.Embedded())
	stopAdmin, err := adm.start(f.httpAddr, pool, conn, reg, log)
	if err != nil {
		return err
	}
	defer stopAdmin()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Soft stop: fail readiness, finish the webhooks in flight (they wait
	// for their PubAck), stop fetching and settle the batch in flight; hard
	// stop after the timeout.
	log.Info("syncd stopping")
	draining.Store(true)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	stopRun()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		log.Warn("hard stop: consumer did not finish in time")
	}
	// Deferred from here: the NATS connection drains (acks and hand-backs
	// already confirmed by the server reach it anyway) and then the
	// embedded server, if any, stops.
	log.Info("syncd stopped")
	return runErr
}

// maxBodyDefault is --max-body's default; on a NATS server whose
// max_payload cannot take it, serve lowers it (an explicit value is an
// error instead).
const maxBodyDefault = 1 << 20

// maxHeaderBytes bounds a request's headers: providers send a few hundred
// bytes, and net/http's default (1 MiB) is memory an unauthenticated
// client could hold per connection.
const maxHeaderBytes = 64 << 10

// writeProbe answers a health or readiness probe with one word.
func writeProbe(w http.ResponseWriter, ok bool) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// readiness logs why the process is not ready when that changes, not on
// every probe: a public endpoint must not be able to flood the log.
type readiness struct {
	log    *slog.Logger
	mu     sync.Mutex
	reason string
	at     time.Time
}

func (r *readiness) note(err error) {
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if reason == r.reason && (reason == "" || time.Since(r.at) < time.Minute) {
		return
	}
	switch {
	case reason == "":
		r.log.Info("ready again")
	default:
		r.log.Warn("not ready", "reason", reason)
	}
	r.reason, r.at = reason, time.Now()
}

// monitor publishes stream gauges: consumer lag and dead-letter depth.
func monitor(ctx context.Context, conn *stream.Conn, reg prometheus.Registerer, log *slog.Logger) {
	pending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_consumer_pending", Help: "Events stored but not yet delivered to the apply consumer."})
	ackPending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_consumer_ack_pending", Help: "Events delivered and not yet settled."})
	dlDepth := prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_dead_letter_depth", Help: "Messages in DEADLETTER."})
	reg.MustRegister(pending, ackPending, dlDepth)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if c, err := conn.JS.Consumer(qctx, stream.Webhooks, stream.Consumer); err == nil {
			if info, err := c.Info(qctx); err == nil {
				pending.Set(float64(info.NumPending))
				ackPending.Set(float64(info.NumAckPending))
			}
		} else if ctx.Err() == nil {
			log.Debug("monitor: consumer info", "err", err)
		}
		if s, err := conn.JS.Stream(qctx, stream.DeadLetter); err == nil {
			dlDepth.Set(float64(s.CachedInfo().State.Msgs))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// servePprof exposes net/http/pprof on its own address (SYNCD_PPROF_ADDR),
// for profiling under load; off unless set.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Warn("pprof listener", "addr", addr, "err", err)
	}
}

// tuneGC trades a little memory for throughput unless the operator set
// GOGC or GOMEMLIMIT: each webhook allocates its body and message, and a
// collection every few thousand requests costs more than it saves. The
// soft limit keeps the process small all the same.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(112 << 20)
	}
}
