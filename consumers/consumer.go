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
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/events"
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
	// ApplyWorkers is how many transactions apply a batch at once, each
	// on its own connection, the events routed by entity key.
	ApplyWorkers int
	// StopTimeout bounds how long a stop waits for the batch in flight.
	StopTimeout time.Duration
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
	applier  *Applier
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
	applier, err := NewApplier(ApplierConfig{Logger: cfg.Logger, AuditOff: cfg.AuditOff}, pool)
	if err != nil {
		return nil, err
	}
	return &Consumer{
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

// pullHeartbeat is the idle heartbeat asked of the server for each pull.
const pullHeartbeat = jetstream.PullHeartbeat(5 * time.Second)

// consume pulls and applies batches until ctx is done or a batch fails
// transiently, which it returns, or JetStream fails it (err). Either way it
// stops fetching and hands back what it had buffered before returning.
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer) (transient, err error) {
	// A pull the server dropped (its durable deleted and made again, a
	// leader change) is noticed by missed heartbeats: at 5 s, within ~10 s
	// rather than the library's 30 s heartbeat.
	it, err := cons.Messages(jetstream.PullMaxMessages(2*c.cfg.BatchSize), jetstream.PullHeartbeat(pullHeartbeat))
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
				// Reconnects are reported and recovered from by the
				// iterator; terminal errors (the durable deleted) close
				// it and end the loop above. Missed heartbeats mean the
				// server lost our pull (the durable may have been made
				// again under the same name): stop, so Run opens the
				// durable afresh instead of waiting on a pull nobody
				// serves.
				lastErr = err
				c.log.Warn("pull from JetStream", "err", err)
				if errors.Is(err, jetstream.ErrNoHeartbeat) {
					it.Stop()
				}
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
	// Each worker applies the events of its keys in its own transaction,
	// on its own connection: two workers never write one row at once.
	parts := c.applier.Partition(evs, c.cfg.ApplyWorkers)
	type outcome struct {
		res []Result
		err error
	}
	outs := make([]outcome, len(parts))
	var wg sync.WaitGroup
	for p, idx := range parts {
		sub := make([]Event, len(idx))
		for j, i := range idx {
			sub[j] = evs[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[p].res, outs[p].err = c.applyBlamed(ctx, sub)
		}()
	}
	wg.Wait()
	for p, idx := range parts {
		if err := outs[p].err; err != nil {
			// A transient failure: nothing of this part was committed and
			// no event is to blame, so it does not count toward
			// dead-lettering.
			c.log.WarnContext(ctx, "batch failed, will retry", "events", len(idx), "class", Classify(err), "err", err)
			for _, i := range idx {
				tr.retry(kept[i], err)
				_ = kept[i].NakWithDelay(c.backoff(deliveries(kept[i])))
				c.metrics.retries.WithLabelValues(c.sourceLabel(evs[i].Source), string(Transient)).Inc()
			}
			transient = err
			continue
		}
		for j, i := range idx {
			m, r := kept[i], outs[p].res[j]
			tr.result(m, r)
			if r.Err != nil {
				if c.settleFailure(ctx, m, evs[i], r.Err) {
					settled = m
				}
				continue
			}
			c.settleApplied(m, evs[i], r.Outcome)
			settled = m
		}
	}
	if transient != nil {
		return settled, transient
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
			ev.Source, ev.Envelope.Type = stream.SplitSubject(m.Subject())
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
	c.log.WarnContext(ctx, "batch failed permanently without a culprit, applying its events one at a time", "events", len(evs), "err", err)
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

// Apply applies events as Applier.Apply does, without settling them.
func (c *Consumer) Apply(ctx context.Context, evs []Event) ([]Result, error) {
	return c.applier.Apply(ctx, evs)
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
		log.WarnContext(ctx, "event failed, will retry", "err", cause)
		c.metrics.retries.WithLabelValues(source, string(class)).Inc()
		_ = m.NakWithDelay(c.backoff(deliveries(m)))
		return false
	case class == Permanent && attempts < c.cfg.MaxAttempts:
		log.WarnContext(ctx, "event failed, will retry", "err", cause)
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
	log.ErrorContext(ctx, "event dead-lettered", "err", cause)
	c.metrics.deadLettered.WithLabelValues(source, c.typeLabel(ev.Source, ev.Envelope.Type), string(class)).Inc()
	return err == nil
}

// deadLetter stores a copy of the message in DEADLETTER with the reason,
// then terminates the original (see DeadLetter).
func (c *Consumer) deadLetter(ctx context.Context, m jetstream.Msg, ev Event, class Class, cause error, attempts int) (stored bool, err error) {
	return DeadLetter(ctx, c.js, c.cfg.Durable, m, ev, class, cause, attempts)
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
		ev.Source, _ = stream.SplitSubject(m.Subject())
	}
	if md, err := m.Metadata(); err == nil {
		ev.Seq = md.Sequence.Stream
		ev.ReceivedAt = md.Timestamp
		ev.Delivery = md.NumDelivered
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
		_, ev.Envelope.Type = stream.SplitSubject(m.Subject())
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

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
