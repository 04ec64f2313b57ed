// Package consumers applies the events stored in JetStream to Postgres: a
// pull loop that takes what is available in batches, applies each batch in
// one transaction (ledger row and entity writes together, ack after
// commit), retries transient failures without limit and sets permanent
// ones aside in DEADLETTER.
//
// By job: consumer.go is the lifecycle (config, start, reopen); pump.go the
// JetStream pull loop and pause; process.go a batch of messages through the
// applier; settle.go the ack/nak/dead-letter policy; applier.go the
// Postgres applier replay and the bench call directly, with routes.go (one
// entry per event type), batch.go and marketplace_sets.go (set-based
// apply), and one file per provider's handlers.
package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/backoff"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/telemetry"
)

// ApplyWorkersDefault is what the benchmark shows best on a small machine;
// ApplyWorkersMax bounds the connections one consumer holds.
// BatchSizeDefault: a batch takes only what has arrived, so a larger one
// costs nothing at low rates, and under a backlog each set-based statement
// and link query serves more events (the hot-key workload applies 12.6k
// events/s in batches of 256, 16.5k in 512, 18.6k in 1024, applier alone).
const (
	ApplyWorkersDefault = 2
	ApplyWorkersMax     = 64
	BatchSizeDefault    = 512
	MaxAttemptsDefault  = 5
	// LingerDefault is what `syncd serve` waits to fill a batch: at half
	// the bench's peak ingest it halves Postgres's CPU (1.0 core with no
	// wait, 0.4 with it) for at most this much more lag. Config's zero
	// value does not wait.
	LingerDefault = 100 * time.Millisecond
	// LingerMax bounds the wait; a batch that waits holds its leases.
	LingerMax = time.Minute
)

// Config configures the apply loop.
type Config struct {
	// Durable is the JetStream consumer to read.
	Durable string
	// BatchSize caps the events applied in one transaction.
	BatchSize int
	// Linger is how long a batch waits for more events after its first
	// (see fill); 0 takes only what has arrived.
	Linger time.Duration
	// MaxAttempts is how many times an event failing permanently is tried
	// before it is dead-lettered. Transient failures do not count.
	MaxAttempts int
	// RetryMin and RetryMax bound the exponential backoff (with jitter) of
	// redeliveries.
	RetryMin, RetryMax time.Duration
	// ProbeMax caps the interval of Postgres probes while paused.
	ProbeMax time.Duration
	// ApplyWorkers is how many transactions apply a batch at once, each
	// on its own connection, the events routed by entity key.
	ApplyWorkers int
	// StopTimeout bounds how long a stop waits for the batch in flight.
	StopTimeout time.Duration
	// AnalyzeInterval is how often the tables the consumer writes are
	// checked for planner statistics their rows outgrew (statistics.go);
	// default AnalyzeIntervalDefault. AnalyzeOff leaves them to
	// autovacuum alone.
	AnalyzeInterval time.Duration
	AnalyzeOff      bool
	// RecreateGrace is how long a durable deleted under a running consumer
	// is looked for again before Run gives up: another replica's start (or
	// an operator's reset) makes it again, and that takes a moment.
	RecreateGrace time.Duration
	// AuditOff: see ApplierConfig.
	AuditOff   bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// TracerProvider traces each batch and event; default the global one
	// (no-op unless OTLP export is configured).
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.Durable == "" {
		c.Durable = stream.Consumer
	}
	if c.BatchSize == 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = MaxAttemptsDefault
	}
	if c.RetryMin == 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 2 * time.Minute
	}
	if c.ProbeMax == 0 {
		c.ProbeMax = 5 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.AnalyzeInterval == 0 {
		c.AnalyzeInterval = AnalyzeIntervalDefault
	}
	if c.RecreateGrace == 0 {
		c.RecreateGrace = 10 * time.Second
	}
	if c.ApplyWorkers == 0 {
		c.ApplyWorkers = ApplyWorkersDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("consumers: BatchSize %d outside 1..10000", c.BatchSize)
	case c.MaxAttempts < 1:
		return fmt.Errorf("consumers: MaxAttempts %d below 1", c.MaxAttempts)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("consumers: retry backoff %s..%s is not a range", c.RetryMin, c.RetryMax)
	case c.ProbeMax < 0:
		return fmt.Errorf("consumers: ProbeMax %s is negative", c.ProbeMax)
	case c.ApplyWorkers < 1 || c.ApplyWorkers > ApplyWorkersMax:
		return fmt.Errorf("consumers: ApplyWorkers %d outside 1..%d", c.ApplyWorkers, ApplyWorkersMax)
	case c.Linger < 0 || c.Linger > LingerMax:
		return fmt.Errorf("consumers: Linger %s outside 0..%s", c.Linger, LingerMax)
	case c.StopTimeout < 0:
		return fmt.Errorf("consumers: StopTimeout %s is negative", c.StopTimeout)
	case c.AnalyzeInterval < 0:
		return fmt.Errorf("consumers: AnalyzeInterval %s is negative", c.AnalyzeInterval)
	case c.RecreateGrace < 0:
		return fmt.Errorf("consumers: RecreateGrace %s is negative", c.RecreateGrace)
	}
	return nil
}

// Check reports what New would reject in cfg.
func (c Config) Check() error { return c.withDefaults().validate() }

// Consumer applies WEBHOOKS to Postgres.
type Consumer struct {
	cfg      Config
	pool     *pgxpool.Pool
	js       jetstream.JetStream
	applier  *Applier
	log      *slog.Logger
	metrics  *metrics
	failures failureCounts
	tracer   trace.Tracer
	stats    *statistics
}

// New builds a consumer over pool and js.
func New(cfg Config, pool *pgxpool.Pool, js jetstream.JetStream) (*Consumer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	applier, err := NewApplier(ApplierConfig{Logger: cfg.Logger, AuditOff: cfg.AuditOff}, pool)
	if err != nil {
		return nil, err
	}
	stats, err := newStatistics(pool, cfg.Logger, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Consumer{
		stats:    stats,
		cfg:      cfg,
		pool:     pool,
		js:       js,
		applier:  applier,
		log:      cfg.Logger,
		metrics:  m,
		failures: failureCounts{},
		tracer:   telemetry.Tracer(cfg.TracerProvider),
	}, nil
}

// Run applies events from the durable consumer until ctx is done. On stop
// it stops fetching, finishes and acks the batch in flight, and hands the
// messages it had buffered back to the server, waiting until the server
// has them, so a restart finds them at once. When a batch fails
// transiently it does the same, then waits for Postgres to answer before it
// fetches again, so nothing sits in a client buffer while Postgres is away.
//
// Losing JetStream (a NATS restart, a closed message iterator, a consumer
// leader moving, the durable deleted and made again) is waited out: the
// consumer is opened again with backoff. Run returns an error only when it
// cannot go on: the durable is not there to open (a restarted `syncd
// serve` creates it again) or the NATS connection was closed for good.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.cfg.AnalyzeOff {
		defer c.stats.start(ctx, c.cfg.AnalyzeInterval)()
	}
	return c.run(ctx)
}

func (c *Consumer) run(ctx context.Context) error {
	wait := c.cfg.RetryMin
	var lost time.Time // when a consume last failed on JetStream's side
	for {
		started := time.Now()
		cons, err := c.js.Consumer(ctx, stream.Webhooks, c.cfg.Durable)
		if err != nil {
			err = fmt.Errorf("open consumer %s: %w", c.cfg.Durable, err)
		} else {
			var transient error
			transient, err = c.consume(ctx, cons)
			if err != nil {
				lost = time.Now()
			}
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				c.pause(ctx, transient)
				if ctx.Err() != nil {
					return nil
				}
				wait = c.cfg.RetryMin
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if c.fatal(err) && !c.recreating(err, lost) {
			return err
		}
		if time.Since(started) > time.Minute {
			wait = c.cfg.RetryMin // it worked for a while: start over
		}
		c.log.Warn("JetStream consumer lost, opening it again", "err", err, "in", wait)
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, max(c.cfg.ProbeMax, c.cfg.RetryMin))
	}
}

// fatal reports a JetStream failure that waiting does not cure: the
// durable (or its stream) is not there to open, or the connection is
// closed for good. See recreating for the exception.
func (c *Consumer) fatal(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, nats.ErrConnectionClosed) ||
		c.js.Conn().IsClosed()
}

// recreating reports a missing durable that was deleted under a running
// consumer less than RecreateGrace ago (lost): it is looked for again, in
// case it is being made again (as another replica's start does), rather
// than ending Run between the delete and the create.
func (c *Consumer) recreating(err error, lost time.Time) bool {
	return errors.Is(err, jetstream.ErrConsumerNotFound) &&
		!lost.IsZero() && time.Since(lost) < c.cfg.RecreateGrace &&
		!c.js.Conn().IsClosed()
}
