package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/service"
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
	var adm adminFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
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
	if consumeOn && f.databaseURL == "" {
		return usageError("DATABASE_URL is not set (or pass --database-url)")
	}
	if f.shutdownTimeout <= 0 {
		return usageError("--shutdown-timeout %s: want a positive duration", f.shutdownTimeout)
	}
	jsSync, err := stream.ParseSyncMode(f.jsSync)
	if err != nil {
		return usageError("--jetstream-sync: %v", err)
	}
	// Unset, the default is lowered to what the NATS server takes; set, it
	// must fit.
	maxBody := int64(0)
	if maxBodySet {
		maxBody = f.maxBody
	}
	log, err := f.logger(stderr)
	if err != nil {
		return err
	}
	cfg := service.Config{
		Role:        service.Role(f.role),
		DatabaseURL: f.databaseURL,
		NoMigrate:   f.noMigrate,
		NATS:        stream.ConnConfig{URL: f.natsURL, DataDir: f.dataDir, Sync: jsSync},
		Stream:      stream.Config{MaxAge: f.replayWindow, Replicas: f.replicas},
		HTTPAddr:    f.httpAddr,
		PprofAddr:   env("SYNCD_PPROF_ADDR", ""),
		Ingest: ingest.Config{
			WorkOSSecrets:        f.workosSecrets,
			StripeSecrets:        f.stripeSecrets,
			StripeConnectSecrets: f.connectSecrets,
			WorkOSTolerance:      f.workosTolerance,
			StripeTolerance:      f.stripeTolerance,
			MaxBody:              maxBody,
			MemoryBudget:         f.ingestMemory,
			PublishTimeout:       f.publishTimeout,
		},
		// The consumer's stop (finish the batch in flight, hand back the
		// rest and wait for the server to have it) must end inside the
		// shutdown timeout, before the embedded server stops; the rest of
		// the timeout is for draining the NATS connection.
		Consumers: consumers.Config{BatchSize: f.batchSize, MaxAttempts: f.maxAttempts, StopTimeout: f.shutdownTimeout * 4 / 5, ApplyWorkers: f.applyWorkers},
		Provision: prov.config(),
		Reconcile: rec.config(),
		Logger:    log,
	}
	if adm.addr != "" {
		a := adm.config(f.httpAddr, log, nil)
		cfg.Admin = &a
	}
	if consumeOn {
		// Retention runs where the consumers do: one role owns the ledger.
		cfg.Retention = &ret.cfg
	}
	// Refuse bad configuration before opening anything.
	if err := cfg.Check(); err != nil {
		return usageError("%v", err)
	}

	tuneGC()
	svc, err := service.New(ctx, cfg)
	if err != nil {
		if errors.Is(err, service.ErrMaxBody) {
			return usageError("--max-body: %s", strings.TrimPrefix(err.Error(), service.ErrConfig.Error()+": "+service.ErrMaxBody.Error()+": "))
		}
		if errors.Is(err, service.ErrConfig) {
			return usageError("%v", err)
		}
		return err
	}
	if err := svc.Start(ctx); err != nil {
		_ = svc.Stop(context.WithoutCancel(ctx))
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-svc.Failed():
	}
	// Soft stop first, hard stop after the timeout.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	if err := svc.Stop(sctx); err != nil && runErr == nil {
		log.Warn("stop", "err", err)
	}
	return runErr
}

// maxBodyDefault is --max-body's default; on a NATS server whose
// max_payload cannot take it, serve lowers it (an explicit value is an
// error instead).
const maxBodyDefault = 1 << 20

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
