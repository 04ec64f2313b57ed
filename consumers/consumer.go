// Package consumers applies the events stored in JetStream to Postgres: a
// pull loop that takes what is available in batches, applies each batch in
// one transaction (ledger row and entity writes together, ack after
// commit), retries transient failures without limit and sets permanent
// ones aside in DEADLETTER.
package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/telemetry"
)

// Config configures the apply loop.
type Config struct {
	// Durable is the JetStream consumer to read.
	Durable string
	// BatchSize caps the events applied in one transaction.
	BatchSize int
	// MaxAttempts is how many times an event failing permanently is tried
	// before it is dead-lettered. Transient failures do not count.
	MaxAttempts int
	// RetryMin and RetryMax bound the exponential backoff (with jitter) of
	// redeliveries.
	RetryMin, RetryMax time.Duration
	// ProbeMax caps the interval of Postgres probes while paused.
	ProbeMax time.Duration
	// StopTimeout bounds how long a stop waits for the batch in flight.
	StopTimeout time.Duration
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// TracerProvider traces each batch and event; default the global one
	// (no-op unless OTLP export is configured).
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.Durable == "" {
		c.Durable = stream.Consumer
	}
	if c.BatchSize == 0 {
		c.BatchSize = 256
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
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
	case c.StopTimeout < 0:
		return fmt.Errorf("consumers: StopTimeout %s is negative", c.StopTimeout)
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
	q        *queries.Queries
	handlers map[string]map[string]Handler
	log      *slog.Logger
	metrics  *metrics
	failures failureCounts
	tracer   trace.Tracer
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
	return &Consumer{
		cfg:      cfg,
		pool:     pool,
		js:       js,
		q:        queries.New(),
		handlers: handlers(),
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
	wait := c.cfg.RetryMin
	for {
		started := time.Now()
		cons, err := c.js.Consumer(ctx, stream.Webhooks, c.cfg.Durable)
		if err != nil {
			err = fmt.Errorf("open consumer %s: %w", c.cfg.Durable, err)
		} else {
			var transient error
			transient, err = c.consume(ctx, cons)
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
		if c.fatal(err) {
			return err
		}
		if time.Since(started) > time.Minute {
			wait = c.cfg.RetryMin // it worked for a while: start over
		}
		c.log.Warn("JetStream consumer lost, opening it again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(jitter(wait)):
		}
		wait = min(2*wait, max(c.cfg.ProbeMax, c.cfg.RetryMin))
	}
}

// fatal reports a JetStream failure that waiting does not cure: the
// durable (or its stream) is not there to open. A durable deleted under a
// running iterator is opened again first, in case it was made again (as
// another replica's start does); found missing then, it is fatal.
func (c *Consumer) fatal(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, nats.ErrConnectionClosed) ||
		c.js.Conn().IsClosed()
}

// consume pulls and applies batches until ctx is done or a batch fails
// transiently, which it returns, or JetStream fails it (err). Either way it
// stops fetching and hands back what it had buffered before returning.
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer) (transient, err error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * c.cfg.BatchSize))
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", c.cfg.Durable, err)
	}
	ackWait := stream.DefaultAckWait
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		ackWait = info.Config.AckWait
	}
	// The batches in flight finish even when a stop arrives, given
	// StopTimeout from the stop, and so does the hand-back; a slow batch
	// is not cut short otherwise (a deadline would fail it as transient
	// forever).
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.StopTimeout, cancelWork) })
	defer stopTimer()

	leases := c.startLeases(ackWait)
	msgs := make(chan jetstream.Msg, c.cfg.BatchSize)
	var lastErr error // written by the pump before it closes msgs
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				// Missed heartbeats and reconnects are reported and
				// recovered from by the iterator; terminal errors (the
				// durable deleted) close it and end the loop above.
				lastErr = err
				c.log.Warn("pull from JetStream", "err", err)
				continue
			}
			leases.add(m)
			msgs <- m
		}
	}()
	var last jetstream.Msg // the last message settled, for the barrier
	defer func() {
		// Soft stop or pause: no more pulls; what was buffered goes back
		// at once rather than after AckWait.
		it.Drain()
		var held []jetstream.Msg
		for m := range msgs {
			held = append(held, m)
		}
		leases.close()
		c.handBack(work, held, last)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					return nil, nil
				}
				if lastErr == nil {
					lastErr = errors.New("message iterator closed")
				}
				return nil, fmt.Errorf("pull from consumer %s: %w", c.cfg.Durable, lastErr)
			}
			batch := []jetstream.Msg{m}
		fill:
			for len(batch) < c.cfg.BatchSize {
				select {
				case m, ok := <-msgs:
					if !ok {
						break fill
					}
					batch = append(batch, m)
				default:
					break fill
				}
			}
			settled, transient := c.process(work, batch)
			leases.release(batch)
			if settled != nil {
				last = settled
			}
			if transient != nil {
				return transient, nil
			}
		}
	}
}

// Process applies a batch of messages and settles each one: ack after
// commit, redelivery with backoff, or dead letter. It returns the error
// that failed the whole batch transiently, if any, so the caller can pause.
// Nothing an event carries makes it panic: a panic while decoding,
// applying or settling an event is that event's permanent failure.
func (c *Consumer) Process(ctx context.Context, msgs []jetstream.Msg) error {
	_, err := c.process(ctx, msgs)
	return err
}

// process is Process that also returns the last message it acked or
// terminated, if any: settled for good, a no-op to touch again.
func (c *Consumer) process(ctx context.Context, msgs []jetstream.Msg) (settled jetstream.Msg, transient error) {
	start := time.Now()
	ctx, tr := c.traceBatch(ctx, msgs)
	defer func() { tr.end(transient) }()
	evs := make([]Event, 0, len(msgs))
	kept := make([]jetstream.Msg, 0, len(msgs))
	for _, m := range msgs {
		ev, err := decodeProtected(m)
		if err != nil {
			if c.settleFailure(ctx, m, ev, err) {
				settled = m
			}
			continue
		}
		evs = append(evs, ev)
		kept = append(kept, m)
	}
	res, err := c.applyBlamed(ctx, evs)
	tr.results(kept, res)
	if err != nil {
		// A transient failure: nothing was committed and no event is to
		// blame, so it does not count toward dead-lettering.
		c.log.WarnContext(ctx, "batch failed, will retry", "events", len(evs), "class", Classify(err), "err", err)
		for i, m := range kept {
			_ = m.NakWithDelay(c.backoff(deliveries(m)))
			c.metrics.retries.WithLabelValues(c.sourceLabel(evs[i].Source), string(Transient)).Inc()
		}
		return settled, err
	}
	for i, m := range kept {
		if res[i].Err != nil {
			if c.settleFailure(ctx, m, evs[i], res[i].Err) {
				settled = m
			}
			continue
		}
		c.settleApplied(m, evs[i], res[i].Outcome)
		settled = m
	}
	c.metrics.batch.Observe(time.Since(start).Seconds())
	return settled, nil
}

// decodeProtected is DecodeMsg, with a panic turned into the message's
// permanent failure and the facts needed to count and dead-letter it
// taken from the message itself.
func decodeProtected(m jetstream.Msg) (ev Event, err error) {
	err = protect(func() (err error) {
		ev, err = DecodeMsg(m)
		return err
	})
	if errors.Is(err, ErrPanic) {
		ev = Event{}
		_ = protect(func() error {
			ev.Source, ev.Envelope.Type = splitSubject(m.Subject())
			if md, err := m.Metadata(); err == nil {
				ev.Seq = md.Sequence.Stream
			}
			return nil
		})
	}
	return ev, err
}

// applyBlamed is Apply that blames every permanent failure on an event.
// Apply blames the events it can; a permanent error it returns belongs to
// none in particular (a panic outside any event's part, a commit refused),
// so the events are applied again one at a time, each in its own
// transaction, where the error is the event's. Transient errors fail the
// batch as before.
func (c *Consumer) applyBlamed(ctx context.Context, evs []Event) ([]Result, error) {
	var res []Result
	err := protect(func() (err error) {
		res, err = c.Apply(ctx, evs)
		return err
	})
	if err == nil || Classify(err) == Transient {
		return res, err
	}
	if len(evs) == 1 {
		return []Result{{Err: err}}, nil
	}
	c.log.Warn("batch failed permanently without a culprit, applying its events one at a time", "events", len(evs), "err", err)
	res = make([]Result, len(evs))
	for i := range evs {
		r, err := c.applyBlamed(ctx, evs[i:i+1])
		if err != nil {
			// Transient: the batch is retried; what committed meanwhile
			// is skipped then, through the ledger.
			return nil, err
		}
		res[i] = r[0]
	}
	return res, nil
}

// settleApplied acks an event whose batch committed.
func (c *Consumer) settleApplied(m jetstream.Msg, ev Event, out Outcome) {
	c.failures.forget(ev.Seq)
	_ = m.Ack()
	if err := protect(func() error {
		source := c.sourceLabel(ev.Source)
		c.metrics.events.WithLabelValues(source, string(out)).Inc()
		c.metrics.lastApplied.WithLabelValues(source).SetToCurrentTime()
		if !ev.ReceivedAt.IsZero() {
			c.metrics.lag.WithLabelValues(source).Observe(time.Since(ev.ReceivedAt).Seconds())
		}
		return nil
	}); err != nil {
		c.log.Error("metrics of an applied event", "seq", ev.Seq, "err", err)
	}
}

// Result is the fate of one event of a batch.
type Result struct {
	Outcome Outcome
	Err     error
}

// Apply applies events in one transaction. Events already in the ledger
// are settled as Skipped without one. An event that fails permanently is
// rolled back alone and reported in its Result, without failing its
// batch-mates. A transient failure fails the whole batch: the returned
// error is set and nothing is committed.
func (c *Consumer) Apply(ctx context.Context, evs []Event) ([]Result, error) {
	res := make([]Result, len(evs))
	todo, err := c.unseen(ctx, evs, res)
	if err != nil || len(todo) == 0 {
		return res, err
	}
	// Most batches have no bad event: pipeline them, and fall back to one
	// savepoint per event, run directly, only when one fails.
	failed, err := c.applyPipelined(ctx, evs, todo, res)
	if err != nil || !failed {
		return res, err
	}
	for _, i := range todo {
		res[i] = Result{}
	}
	return res, c.applyIsolated(ctx, evs, todo, res)
}

// unseen settles the events the ledger already holds, and repeats of an
// event within the batch, as Skipped, and returns the indexes of the rest.
// One query per source: replaying applied events costs no transaction. An
// event whose id the ledger cannot even look up (not text Postgres takes:
// a NUL, invalid UTF-8) fails its source's lookup permanently; the events
// of that source are then looked up one by one, and the lookup's failure
// is blamed on the event that caused it, not on its batch.
func (c *Consumer) unseen(ctx context.Context, evs []Event, res []Result) ([]int, error) {
	ids := map[string][]string{}
	for _, ev := range evs {
		ids[ev.Source] = append(ids[ev.Source], ev.Envelope.ID)
	}
	seen := make(map[[2]string]bool, len(evs))
	for source, list := range ids {
		found, err := c.ledgerSeen(ctx, source, list)
		if err != nil && Classify(err) != Transient {
			found, err = c.unseenOneByOne(ctx, evs, source, res)
		}
		if err != nil {
			return nil, err
		}
		for _, id := range found {
			seen[[2]string{source, id}] = true
		}
	}
	todo := make([]int, 0, len(evs))
	for i, ev := range evs {
		if res[i].Err != nil {
			continue
		}
		k := [2]string{ev.Source, ev.Envelope.ID}
		if seen[k] {
			res[i].Outcome = Skipped
			continue
		}
		seen[k] = true
		todo = append(todo, i)
	}
	return todo, nil
}

// unseenOneByOne looks up the events of source in the ledger one at a
// time, setting the Result of each whose lookup fails permanently.
func (c *Consumer) unseenOneByOne(ctx context.Context, evs []Event, source string, res []Result) ([]string, error) {
	var found []string
	for i, ev := range evs {
		if ev.Source != source {
			continue
		}
		f, err := c.ledgerSeen(ctx, source, []string{ev.Envelope.ID})
		if err != nil {
			if Classify(err) == Transient {
				return nil, err
			}
			res[i].Err = err
			continue
		}
		found = append(found, f...)
	}
	return found, nil
}

func (c *Consumer) ledgerSeen(ctx context.Context, source string, ids []string) (found []string, err error) {
	err = protect(func() (err error) {
		found, err = c.q.EventLedgerSeen(ctx, c.pool, queries.EventLedgerSeenParams{Source: source, EventIds: ids})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger lookup: %w", err)
	}
	return found, nil
}

// applyPipelined applies the events in one transaction, sending the
// statements of consecutive pipelinable events in one round trip and
// running the others directly between. failed reports an event that failed
// permanently: nothing is committed and the caller isolates it.
func (c *Consumer) applyPipelined(ctx context.Context, evs []Event, todo []int, res []Result) (failed bool, err error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin batch: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var p pipeline
	links := newLinkSet()
	stale := map[string][]string{}
	flush := func() (bool, error) {
		var r pipelineResult
		err := protect(func() (err error) {
			r, err = p.send(ctx, c.q, tx)
			return err
		})
		if err != nil {
			if Classify(err) == Transient {
				return false, fmt.Errorf("apply batch: %w", err)
			}
			return true, nil
		}
		for _, i := range r.stale {
			if res[i].Outcome == Applied {
				res[i].Outcome = Stale
				stale[evs[i].Source] = append(stale[evs[i].Source], evs[i].Envelope.ID)
			}
		}
		return false, nil
	}
	// Write-only events go first, in one flush, then those that read, each
	// group in stream order. The two groups touch different tables (the
	// readers are the meetings; the links, which span both, run last), so
	// the order between groups does not change the result, with one
	// exception: a WorkOS delete runs the links gathered so far, which must
	// have seen the readers before it, so it closes a segment.
	var direct []int
	runDirect := func() (bool, error) {
		if len(direct) == 0 {
			return false, nil
		}
		if failed, err := flush(); failed || err != nil {
			return failed, err
		}
		for _, i := range direct {
			ev := evs[i]
			out, err := c.applyOne(ctx, tx, links, ev)
			if err != nil {
				if Classify(err) == Transient {
					return false, fmt.Errorf("apply %s %s: %w", ev.Source, ev.Envelope.ID, err)
				}
				return true, nil
			}
			res[i].Outcome = out
		}
		direct = direct[:0]
		return false, nil
	}
	for _, i := range todo {
		ev := evs[i]
		if c.handlers[ev.Source][ev.Envelope.Type] != nil && !pipelinable(ev.Source, ev.Envelope.Type) {
			direct = append(direct, i)
			continue
		}
		if ev.Source == stream.SourceWorkOS && flushesLinks[ev.Envelope.Type] {
			if failed, err := runDirect(); failed || err != nil {
				return failed, err
			}
		}
		p.start(i)
		out, err := c.applyOne(ctx, &p, links, ev)
		if err != nil {
			return true, nil // a handler's own permanent error: isolate it
		}
		res[i].Outcome = out
	}
	if failed, err := flush(); failed || err != nil {
		return failed, err
	}
	if failed, err := runDirect(); failed || err != nil {
		return failed, err
	}
	// A permanent failure here belongs to no event in particular: isolate,
	// where each event runs its own links and the culprit is found.
	if err := protect(func() error { return links.run(ctx, c.q, tx) }); err != nil {
		if Classify(err) == Transient {
			return false, err
		}
		return true, nil
	}
	for source, ids := range stale {
		if err := c.q.EventLedgerMarkStale(ctx, tx, queries.EventLedgerMarkStaleParams{Source: source, EventIds: ids}); err != nil {
			if Classify(err) == Transient {
				return false, fmt.Errorf("ledger outcome: %w", err)
			}
			return true, nil
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit batch: %w", err)
	}
	return false, nil
}

// applyIsolated applies the events directly, each under a savepoint with
// its own links, so a permanent failure rolls back that event alone and is
// blamed on it.
func (c *Consumer) applyIsolated(ctx context.Context, evs []Event, todo []int, res []Result) error {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin batch: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, i := range todo {
		ev := evs[i]
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		links := newLinkSet()
		out, err := c.applyOne(ctx, sp, links, ev)
		if err == nil {
			err = protect(func() error { return links.run(ctx, c.q, sp) })
		}
		if err != nil {
			if Classify(err) == Transient {
				return fmt.Errorf("apply %s %s: %w", ev.Source, ev.Envelope.ID, err)
			}
			if rbErr := sp.Rollback(ctx); rbErr != nil {
				return fmt.Errorf("roll back to savepoint: %w", rbErr)
			}
			res[i].Err = err
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
		res[i].Outcome = out
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	return nil
}

// applyOne claims the event in the ledger and applies it. A panic in the
// handler is the event's permanent failure.
func (c *Consumer) applyOne(ctx context.Context, db queries.DBTX, links *linkSet, ev Event) (out Outcome, err error) {
	defer func() {
		if v := recover(); v != nil {
			out, err = "", recovered(v)
		}
	}()
	h := c.handlers[ev.Source][ev.Envelope.Type]
	if p, ok := db.(*pipeline); ok {
		if h == nil {
			p.claim(ev, Ignored)
			return Ignored, nil
		}
		p.claim(ev, Applied)
		return h(ctx, Tx{Q: c.q, DB: p, Links: links}, ev)
	}
	seq := int64(ev.Seq)
	_, err = c.q.EventLedgerInsert(ctx, db, queries.EventLedgerInsertParams{
		Source:     ev.Source,
		EventID:    ev.Envelope.ID,
		EventType:  ev.Envelope.Type,
		ProviderAt: timePtr(ev.Envelope.Created),
		ReceivedAt: timePtr(ev.ReceivedAt),
		StreamSeq:  &seq,
	})
	if err = queries.Check(err); errors.Is(err, queries.ErrNotFound) {
		return Skipped, nil
	} else if err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	out = Ignored
	if h != nil {
		if out, err = h(ctx, Tx{Q: c.q, DB: db, Links: links}, ev); err != nil {
			return "", err
		}
	}
	if out != Applied {
		if err := c.q.EventLedgerSetOutcome(ctx, db, queries.EventLedgerSetOutcomeParams{
			Outcome: string(out), Source: ev.Source, EventID: ev.Envelope.ID,
		}); err != nil {
			return "", fmt.Errorf("ledger outcome: %w", err)
		}
	}
	return out, nil
}

// settleFailure redelivers a failed event later or dead-letters it, and
// reports whether the message was terminated. Only permanent failures
// count toward MaxAttempts; undecodable ones are dead-lettered at once.
func (c *Consumer) settleFailure(ctx context.Context, m jetstream.Msg, ev Event, cause error) (terminated bool) {
	err := protect(func() error {
		terminated = c.settleFailureUnprotected(ctx, m, ev, cause)
		return nil
	})
	if err == nil {
		return terminated
	}
	// Settling itself panicked: a permanent failure of the event like
	// any other, bounded by MaxAttempts, then a dead letter that carries
	// nothing of the event but the message.
	stack, _ := panicStack(err)
	attempts := c.failures.add(ev.Seq)
	c.log.Error("settling an event panicked", "seq", ev.Seq, "attempt", attempts, "err", err, "stack", stack)
	if attempts < c.cfg.MaxAttempts {
		_ = m.NakWithDelay(c.backoff(attempts))
		return false
	}
	var stored bool
	panicked := err
	if perr := protect(func() (err error) {
		stored, err = c.deadLetter(ctx, m, Event{Seq: ev.Seq}, Permanent, panicked, attempts)
		return err
	}); perr != nil {
		c.log.Error("dead letter after a panic", "seq", ev.Seq, "stored", stored, "err", perr)
		if !stored {
			_ = m.NakWithDelay(c.backoff(deliveries(m)))
		}
		return false
	}
	c.failures.forget(ev.Seq)
	return true
}

func (c *Consumer) settleFailureUnprotected(ctx context.Context, m jetstream.Msg, ev Event, cause error) (terminated bool) {
	class := Classify(cause)
	attempts := 1
	if class == Permanent {
		attempts = c.failures.add(ev.Seq)
	}
	source := c.sourceLabel(ev.Source)
	log := c.log.With("source", ev.Source, "event_id", ev.Envelope.ID, "type", ev.Envelope.Type, "seq", ev.Seq, "attempt", attempts, "class", class)
	if stack, ok := panicStack(cause); ok {
		log = log.With("stack", stack)
	}
	switch {
	case class == Transient:
		log.Warn("event failed, will retry", "err", cause)
		c.metrics.retries.WithLabelValues(source, string(class)).Inc()
		_ = m.NakWithDelay(c.backoff(deliveries(m)))
		return false
	case class == Permanent && attempts < c.cfg.MaxAttempts:
		log.Warn("event failed, will retry", "err", cause)
		c.metrics.retries.WithLabelValues(source, string(class)).Inc()
		_ = m.NakWithDelay(c.backoff(attempts))
		return false
	}
	stored, err := c.deadLetter(ctx, m, ev, class, cause, attempts)
	if err != nil && !stored {
		// A NATS failure: transient. The count is kept, so the next
		// delivery tries the dead letter again instead of starting over.
		log.Error("dead letter not stored, will retry", "err", err)
		c.metrics.retries.WithLabelValues(source, string(Transient)).Inc()
		_ = m.NakWithDelay(c.backoff(deliveries(m)))
		return false
	}
	if err != nil {
		// Stored but the original not terminated: it comes back after
		// AckWait. The count is kept so that it is dead-lettered again at
		// once, and that copy is dropped as a duplicate.
		log.Warn("dead letter stored, original not terminated", "err", err)
	} else {
		c.failures.forget(ev.Seq)
	}
	log.Error("event dead-lettered", "err", cause)
	c.metrics.deadLettered.WithLabelValues(source, c.typeLabel(ev.Source, ev.Envelope.Type), string(class)).Inc()
	return err == nil
}

// deadLetter stores a copy of the message in DEADLETTER with the reason,
// then terminates the original (see DeadLetter).
func (c *Consumer) deadLetter(ctx context.Context, m jetstream.Msg, ev Event, class Class, cause error, attempts int) (stored bool, err error) {
	return DeadLetter(ctx, c.js, c.cfg.Durable, m, ev, class, cause, attempts)
}

// deadLetterSubject is deadletter.<source>.<type>, made of the original's
// subject tokens where it has them: the server accepted those, whatever
// the event's type in the body holds (thousands of bytes, say, which as a
// subject would exceed the server's control line and cost the connection).
func deadLetterSubject(original, source, typ string) string {
	if rest, ok := strings.CutPrefix(original, "webhooks."); ok && strings.Count(rest, ".") >= 1 {
		return "deadletter." + rest
	}
	return stream.DeadLetterSubject(source, typ)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// pause waits until Postgres answers again, probing with backoff. The
// caller has stopped fetching: events keep arriving in the stream and wait
// there, so however long the outage, none is delivered, counted or
// dead-lettered meanwhile.
func (c *Consumer) pause(ctx context.Context, cause error) {
	c.metrics.paused.Set(1)
	defer c.metrics.paused.Set(0)
	c.log.Warn("consumer paused: probing Postgres", "err", cause)
	wait := min(c.cfg.RetryMin, c.cfg.ProbeMax)
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, max(c.cfg.ProbeMax, time.Second))
		err := c.pool.Ping(pctx)
		cancel()
		if err == nil {
			c.log.Info("consumer resumed", "probes", attempt)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(wait)):
		}
		wait = min(2*wait, c.cfg.ProbeMax)
	}
}

// deliveries is how many times JetStream has delivered m, for the backoff
// of transient failures.
func deliveries(m jetstream.Msg) int {
	md, err := m.Metadata()
	if err != nil || md.NumDelivered < 1 {
		return 1
	}
	return int(min(md.NumDelivered, 64))
}

// failureCounts counts permanent failures per stream sequence, in memory:
// lost on restart or split between replicas, which only grants an event a
// few more attempts. Entries of events another replica settled are pruned
// once they are old.
type failureCounts map[uint64]failureCount

type failureCount struct {
	n    int
	last time.Time
}

func (f failureCounts) add(seq uint64) int {
	now := time.Now()
	if len(f) >= 4096 {
		for k, v := range f {
			if now.Sub(v.last) > time.Hour {
				delete(f, k)
			}
		}
	}
	fc := f[seq]
	fc.n++
	fc.last = now
	f[seq] = fc
	return fc.n
}

func (f failureCounts) forget(seq uint64) { delete(f, seq) }

// backoff is the redelivery delay after the n-th failure: exponential from
// RetryMin, capped at RetryMax, with jitter so a burst does not return as
// one.
func (c *Consumer) backoff(n int) time.Duration {
	d := c.cfg.RetryMin
	for i := 1; i < n && d < c.cfg.RetryMax; i++ {
		d *= 2
	}
	return jitter(min(d, c.cfg.RetryMax))
}

// jitter spreads d over [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// DecodeMsg reads the routing facts of a WEBHOOKS message. The source comes
// from the header ingest sets, else from the subject.
func DecodeMsg(m jetstream.Msg) (Event, error) {
	h := m.Headers()
	ev := Event{Body: m.Data(), Source: h.Get(stream.HeaderSource), Endpoint: h.Get(stream.HeaderEndpoint)}
	if ev.Source == "" {
		ev.Source, _ = splitSubject(m.Subject())
	}
	if md, err := m.Metadata(); err == nil {
		ev.Seq = md.Sequence.Stream
		ev.ReceivedAt = md.Timestamp
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(stream.HeaderReceivedAt)); err == nil {
		ev.ReceivedAt = t
	}
	var err error
	switch ev.Source {
	case stream.SourceWorkOS:
		ev.Envelope, err = events.DecodeWorkOS(ev.Body)
	case stream.SourceStripe:
		ev.Envelope, err = events.DecodeStripe(ev.Body)
	default:
		err = fmt.Errorf("unknown source %q", ev.Source)
	}
	if err != nil {
		_, ev.Envelope.Type = splitSubject(m.Subject())
		ev.Envelope.ID = h.Get(stream.HeaderEventID)
		return ev, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	// A time outside the plausible window would be stored as the rows'
	// version and outrank every real one.
	if err := events.CheckTime(ev.Envelope.Created); err != nil {
		return ev, fmt.Errorf("%w: event time: %v", ErrUndecodable, err)
	}
	return ev, nil
}

// splitSubject turns webhooks.<source>.<type…> into source and type.
func splitSubject(subject string) (source, typ string) {
	parts := strings.SplitN(subject, ".", 3)
	if len(parts) < 3 {
		return "unknown", "unknown"
	}
	return parts[1], parts[2]
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
