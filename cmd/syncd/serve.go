package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/service"
	"github.com/syncd/syncd/stream"
)

type serveFlags struct {
	common
	httpAddr          string
	role              string
	noMigrate         bool
	workosSecrets     string
	stripeSecrets     string
	connectSecrets    string
	workosTolerance   time.Duration
	stripeTolerance   time.Duration
	maxBody           int64
	ingestMaxInFlight int
	ingestMemory      int64
	publishTimeout    time.Duration
	replayWindow      time.Duration
	replicas          int
	batchSize         int
	batchLinger       time.Duration
	analyzeInterval   time.Duration
	applyWorkers      int
	maxAttempts       int
	shutdownTimeout   time.Duration
	// The parts serve runs beside ingest and the consumers.
	rec  reconcile
	prov provisioning
	ret  retentionFlags
	adm  adminFlags
	aud  auditFlags
}

func serveCommand() *cobra.Command {
	var f serveFlags
	c := &cobra.Command{
		Use:   "serve",
		Short: "receive webhooks and apply them to Postgres",
		Args:  noArgs,
	}
	f.register(c)
	c.RunE = action(func(c *cobra.Command, _ []string) error {
		return f.run(c.Context(), c.Flags().Changed("max-body"), c.ErrOrStderr())
	})
	return c
}

func (f *serveFlags) register(c *cobra.Command) {
	f.common.register(c)
	f.rec.register(c)
	f.prov.register(c)
	f.ret.register(c)
	f.aud.register(c)
	f.adm.register(c)
	d := declare(c)
	d.String(&f.httpAddr, "http-addr", "HTTP_ADDR", service.HTTPAddrDefault, "listen address of the webhooks, health and metrics", listenAddr(false))
	d.Enum(&f.role, "role", "SYNCD_ROLE", string(service.RoleDefault), "all, ingest or consume: which parts run in this process", string(service.RoleAll), string(service.RoleIngest), string(service.RoleConsume))
	d.Bool(&f.noMigrate, "no-migrate", "SYNCD_NO_MIGRATE", false, "do not apply migrations at start")
	d.String(&f.workosSecrets, "workos-secret", "WORKOS_WEBHOOK_SECRET", "", "WorkOS signing secret(s), comma-separated")
	d.String(&f.stripeSecrets, "stripe-secret", "STRIPE_WEBHOOK_SECRET", "", "Stripe platform signing secret(s), comma-separated")
	d.String(&f.connectSecrets, "stripe-connect-secret", "STRIPE_CONNECT_WEBHOOK_SECRET", "", "Stripe Connect signing secret(s), comma-separated")
	d.Duration(&f.workosTolerance, "workos-tolerance", "WORKOS_SIGNATURE_TOLERANCE", ingest.WorkOSToleranceDefault, "accepted WorkOS timestamp skew, either direction", positive)
	d.Duration(&f.stripeTolerance, "stripe-tolerance", "STRIPE_SIGNATURE_TOLERANCE", ingest.StripeToleranceDefault, "accepted Stripe timestamp skew, either direction", positive)
	d.Int64(&f.maxBody, "max-body", "SYNCD_MAX_BODY", ingest.MaxBodyDefault, "largest accepted webhook body in bytes; with its headers it must fit the NATS server's max_payload", positive, fieldCheck(ingest.Config{WorkOSSecrets: "x"}, func(c *ingest.Config, v int64) { c.MaxBody = v }))
	d.Int64(&f.ingestMemory, "ingest-memory", "SYNCD_INGEST_MEMORY", 0, "bytes of webhook bodies held in memory at once, across requests; past it requests wait briefly, then get 503 (default 32 MiB, or 4 × --max-body if more)", notNegative)
	d.Int(&f.ingestMaxInFlight, "ingest-max-in-flight", "SYNCD_INGEST_MAX_IN_FLIGHT", ingest.MaxInFlightDefault, "verified webhooks waiting for JetStream at once; the next gets 503 with Retry-After at once", positive)
	d.Duration(&f.publishTimeout, "publish-timeout", "SYNCD_PUBLISH_TIMEOUT", ingest.PublishTimeoutDefault, "wait for JetStream's PubAck before answering 503", positive)
	d.Duration(&f.replayWindow, "replay-window", "SYNCD_REPLAY_WINDOW", stream.MaxAgeDefault, "how long WEBHOOKS keeps events, the stream's MaxAge", atLeast(service.ReplayWindowMin))
	d.Int(&f.replicas, "stream-replicas", "SYNCD_STREAM_REPLICAS", 1, "JetStream replicas of WEBHOOKS and DEADLETTER on a clustered NATS_URL", between(1, service.StreamReplicasMax))
	d.Int(&f.batchSize, "batch-size", "SYNCD_BATCH_SIZE", consumers.BatchSizeDefault, "events applied per transaction, at most", positive, fieldCheck(consumers.Config{}, func(c *consumers.Config, v int) { c.BatchSize = v }))
	d.Duration(&f.batchLinger, "batch-linger", "SYNCD_BATCH_LINGER", consumers.LingerDefault, "how long a batch waits for more events after its first, up to --batch-size; fuller batches cost Postgres less under a steady load; 0 is no wait, a batch takes what has arrived", notNegative, fieldCheck(consumers.Config{}, func(c *consumers.Config, v time.Duration) { c.Linger = v }))
	declareAnalyzeInterval(d, &f.analyzeInterval)
	d.Int(&f.applyWorkers, "apply-workers", "SYNCD_APPLY_WORKERS", consumers.ApplyWorkersDefault, "transactions applying a batch at once, each on its own connection, events routed by entity", positive, fieldCheck(consumers.Config{}, func(c *consumers.Config, v int) { c.ApplyWorkers = v }))
	d.Int(&f.maxAttempts, "max-attempts", "SYNCD_MAX_ATTEMPTS", consumers.MaxAttemptsDefault, "permanent failures before an event is dead-lettered", positive, fieldCheck(consumers.Config{}, func(c *consumers.Config, v int) { c.MaxAttempts = v }))
	d.Duration(&f.shutdownTimeout, "shutdown-timeout", "SYNCD_SHUTDOWN_TIMEOUT", service.ShutdownTimeoutDefault, "hard stop after this long; the consumer gets four fifths of it to finish its batch and hand back the rest", positive)
}

// run is `syncd serve`; maxBodySet says --max-body (or its variable) was
// given, so it must fit the server rather than be lowered to.
func (f *serveFlags) run(ctx context.Context, maxBodySet bool, stderr io.Writer) error {
	rec, prov, ret, aud, adm := &f.rec, &f.prov, &f.ret, &f.aud, &f.adm
	role := service.Role(f.role)
	consumeOn := role.Consumes()
	if err := rec.setup(consumeOn || f.databaseURL != ""); err != nil {
		return err
	}
	if err := prov.setup(consumeOn); err != nil {
		return err
	}
	if err := ret.setup(f.replayWindow); err != nil {
		return err
	}
	aud.retentionConfig(&ret.cfg)
	if consumeOn && f.databaseURL == "" {
		return usageError("DATABASE_URL is not set (or pass --database-url)")
	}
	// Unset, the default is lowered to what the NATS server takes; set, it
	// must fit.
	maxBody := int64(0)
	if maxBodySet {
		maxBody = f.maxBody
	}
	log := f.logger(stderr)
	cfg := service.Config{
		Role:        role,
		DatabaseURL: f.databaseURL,
		NoMigrate:   f.noMigrate,
		NATS:        stream.ConnConfig{URL: f.natsURL, DataDir: f.dataDir, Sync: f.syncMode()},
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
			MaxInFlight:          f.ingestMaxInFlight,
			PublishTimeout:       f.publishTimeout,
		},
		// The consumer's stop (finish the batch in flight, hand back the
		// rest and wait for the server to have it) must end inside the
		// shutdown timeout, before the embedded server stops; the rest of
		// the timeout is for draining the NATS connection.
		Consumers: consumers.Config{BatchSize: f.batchSize, MaxAttempts: f.maxAttempts, StopTimeout: f.shutdownTimeout * 4 / 5, ApplyWorkers: f.applyWorkers, AuditOff: aud.disabled(), Linger: f.batchLinger,
			AnalyzeInterval: f.analyzeInterval, AnalyzeOff: f.analyzeInterval == 0},
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
			return badFlag("max-body", ": %s", strings.TrimPrefix(err.Error(), service.ErrConfig.Error()+": "+service.ErrMaxBody.Error()+": "))
		}
		if errors.Is(err, service.ErrConfig) {
			return usageError("%v", err)
		}
		return err
	}
	if err := svc.Start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
		defer cancel()
		_ = svc.Stop(sctx)
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

// declareAnalyzeInterval is --analyze-interval, for serve and replay.
func declareAnalyzeInterval(d decls, v *time.Duration) {
	d.Duration(v, "analyze-interval", "SYNCD_ANALYZE_INTERVAL", consumers.AnalyzeIntervalDefault, "how often the tables syncd writes are checked for rows that outgrew their planner statistics, and analyzed (autovacuum looks once a minute at most); 0 is off: autovacuum alone; at least 100ms otherwise", func(v time.Duration) error {
		if v < 0 || (v > 0 && v < 100*time.Millisecond) {
			return fmt.Errorf("%s: want 0 (off) or at least 100ms", v)
		}
		return nil
	})
}
