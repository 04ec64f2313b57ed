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
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
)

// ApplyWorkersDefault is what the benchmark shows best on a small machine;
// ApplyWorkersMax bounds the connections one consumer holds.
const (
	ApplyWorkersDefault = 2
	ApplyWorkersMax     = 64
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
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
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
	applier, err := NewApplier(ApplierConfig{Logger: cfg.Logger}, pool)
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
	}, nil
}

// Run applies events from the durable consumer until ctx is done. On stop
// it stops fetching, finishes and acks the batch in flight, and hands the
// messages it had buffered back to the server. When a batch fails
// transiently it does the same, then waits for Postgres to answer before it
// fetches again, so nothing sits in a client buffer while Postgres is away.
func (c *Consumer) Run(ctx context.Context) error {
	cons, err := c.js.Consumer(ctx, stream.Webhooks, c.cfg.Durable)
	if err != nil {
		return fmt.Errorf("open consumer %s: %w", c.cfg.Durable, err)
	}
	for {
		transient, err := c.consume(ctx, cons)
		if err != nil || ctx.Err() != nil {
			return err
		}
		c.pause(ctx, transient)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// consume pulls and applies batches until ctx is done or a batch fails
// transiently, which it returns. Either way it stops fetching and hands
// back what it had buffered before returning.
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer) (transient, err error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * c.cfg.BatchSize))
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", c.cfg.Durable, err)
	}
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
			msgs <- m
		}
	}()
	defer func() {
		// Soft stop or pause: no more pulls; what was buffered goes back
		// at once rather than after AckWait.
		it.Drain()
		for m := range msgs {
			_ = m.Nak()
		}
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
			// The batch in flight finishes even when a stop arrives, given
			// StopTimeout from the stop; a slow batch is not cut short
			// otherwise (a deadline would fail it as transient forever).
			bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.StopTimeout, cancel) })
			transient := c.Process(bctx, batch)
			stopTimer()
			cancel()
			if transient != nil {
				return transient, nil
			}
		}
	}
}

// Process applies a batch of messages and settles each one: ack after
// commit, redelivery with backoff, or dead letter. It returns the error
// that failed the whole batch transiently, if any, so the caller can pause.
func (c *Consumer) Process(ctx context.Context, msgs []jetstream.Msg) error {
	start := time.Now()
	evs := make([]Event, 0, len(msgs))
	kept := make([]jetstream.Msg, 0, len(msgs))
	for _, m := range msgs {
		ev, err := DecodeMsg(m)
		if err != nil {
			c.settleFailure(ctx, m, ev, err)
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
			outs[p].res, outs[p].err = c.applier.Apply(ctx, sub)
		}()
	}
	wg.Wait()
	var failed error
	for p, idx := range parts {
		if err := outs[p].err; err != nil {
			// Nothing of this part was committed and no event is blamed:
			// whatever Classify says of the error, it does not count
			// toward dead-lettering.
			c.log.Warn("batch failed, will retry", "events", len(idx), "class", Classify(err), "err", err)
			for _, i := range idx {
				_ = kept[i].NakWithDelay(c.backoff(deliveries(kept[i])))
				c.metrics.retries.WithLabelValues(evs[i].Source, string(Transient)).Inc()
			}
			failed = err
			continue
		}
		for j, i := range idx {
			m, r := kept[i], outs[p].res[j]
			if r.Err != nil {
				c.settleFailure(ctx, m, evs[i], r.Err)
				continue
			}
			c.failures.forget(evs[i].Seq)
			_ = m.Ack()
			c.metrics.events.WithLabelValues(evs[i].Source, string(r.Outcome)).Inc()
			c.metrics.lastApplied.WithLabelValues(evs[i].Source).SetToCurrentTime()
			if !evs[i].ReceivedAt.IsZero() {
				c.metrics.lag.WithLabelValues(evs[i].Source).Observe(time.Since(evs[i].ReceivedAt).Seconds())
			}
		}
	}
	if failed != nil {
		return failed
	}
	c.metrics.batch.Observe(time.Since(start).Seconds())
	return nil
}

// Apply applies events as Applier.Apply does, without settling them.
func (c *Consumer) Apply(ctx context.Context, evs []Event) ([]Result, error) {
	return c.applier.Apply(ctx, evs)
}

// settleFailure redelivers a failed event later or dead-letters it.
// Only permanent failures count toward MaxAttempts; undecodable ones are
// dead-lettered at once.
func (c *Consumer) settleFailure(ctx context.Context, m jetstream.Msg, ev Event, cause error) {
	class := Classify(cause)
	attempts := 1
	if class == Permanent {
		attempts = c.failures.add(ev.Seq)
	}
	log := c.log.With("source", ev.Source, "event_id", ev.Envelope.ID, "type", ev.Envelope.Type, "seq", ev.Seq, "attempt", attempts, "class", class)
	switch {
	case class == Transient:
		log.Warn("event failed, will retry", "err", cause)
		c.metrics.retries.WithLabelValues(ev.Source, string(class)).Inc()
		_ = m.NakWithDelay(c.backoff(deliveries(m)))
		return
	case class == Permanent && attempts < c.cfg.MaxAttempts:
		log.Warn("event failed, will retry", "err", cause)
		c.metrics.retries.WithLabelValues(ev.Source, string(class)).Inc()
		_ = m.NakWithDelay(c.backoff(attempts))
		return
	}
	stored, err := c.deadLetter(ctx, m, ev, class, cause, attempts)
	if err != nil && !stored {
		// A NATS failure: transient. The count is kept, so the next
		// delivery tries the dead letter again instead of starting over.
		log.Error("dead letter not stored, will retry", "err", err)
		c.metrics.retries.WithLabelValues(ev.Source, string(Transient)).Inc()
		_ = m.NakWithDelay(c.backoff(deliveries(m)))
		return
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
	c.metrics.deadLettered.WithLabelValues(ev.Source, ev.Envelope.Type, string(class)).Inc()
}

// deadLetter stores a copy of the message in DEADLETTER with the reason,
// then terminates the original; stored reports whether the copy is in
// DEADLETTER. The copy's message id makes a second dead letter of the same
// stream sequence a duplicate.
func (c *Consumer) deadLetter(ctx context.Context, m jetstream.Msg, ev Event, class Class, cause error, attempts int) (stored bool, err error) {
	source, typ := ev.Source, ev.Envelope.Type
	if source == "" || typ == "" {
		source, typ = splitSubject(m.Subject())
	}
	dl := nats.NewMsg(stream.DeadLetterSubject(source, typ))
	dl.Data = m.Data()
	stream.CopyEventHeaders(dl.Header, m.Headers())
	md, _ := m.Metadata()
	seq, delivered := ev.Seq, uint64(attempts)
	if md != nil {
		seq, delivered = md.Sequence.Stream, md.NumDelivered
	}
	reason := truncate(cause.Error(), 1024)
	dl.Header.Set(jetstream.MsgIDHeader, "dl:"+strconv.FormatUint(seq, 10))
	dl.Header.Set(stream.HeaderSource, source)
	dl.Header.Set(stream.HeaderEventType, typ)
	if ev.Envelope.ID != "" {
		dl.Header.Set(stream.HeaderEventID, ev.Envelope.ID)
	}
	dl.Header.Set(stream.HeaderDLSubject, m.Subject())
	dl.Header.Set(stream.HeaderDLSequence, strconv.FormatUint(seq, 10))
	dl.Header.Set(stream.HeaderDLDeliveries, strconv.FormatUint(delivered, 10))
	dl.Header.Set(stream.HeaderDLClass, string(class))
	dl.Header.Set(stream.HeaderDLError, reason)
	dl.Header.Set(stream.HeaderDLFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	dl.Header.Set(stream.HeaderDLConsumer, c.cfg.Durable)
	if _, err := c.js.PublishMsg(ctx, dl); err != nil {
		return false, fmt.Errorf("publish dead letter: %w", err)
	}
	// The term reason is shown in advisories; keep it short.
	if err := m.TermWithReason(truncate(string(class)+": "+reason, 256)); err != nil {
		return true, fmt.Errorf("terminate original: %w", err)
	}
	return true, nil
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
