// Package replay re-delivers a window of WEBHOOKS through the consumers'
// handlers, after an outage of syncd or a restore of its database. It reads
// the window with a temporary ordered consumer of its own (the durable
// apply consumer is untouched) and applies it through the consumers' apply
// path, so the ledger makes it idempotent: events already applied are
// skipped, events missing from a restored database are applied again.
package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/telemetry"
)

// ErrEmpty means the stream holds no message in the window.
var ErrEmpty = errors.New("no events in the window")

// Config says which window to replay and how.
type Config struct {
	// Exactly one of Since (stream store time) and FromSeq starts the
	// window.
	Since   time.Time
	FromSeq uint64
	// Until or ToSeq (at most one) end it; by default it ends at the
	// stream's last sequence when the replay starts.
	Until time.Time
	ToSeq uint64
	// Source limits the replay to one source; empty is all.
	Source string
	// Type is a NATS subject pattern over the event type
	// (customer.subscription.*, dsync.>); empty is all.
	Type string
	// BatchSize caps the events applied in one transaction
	// (BatchSizeDefault when 0, at most BatchSizeMax).
	BatchSize int
	// RetryMax caps the backoff between attempts of a batch that failed
	// transiently (Postgres unreachable): replay waits it out like the
	// apply consumer does, until ctx is done.
	RetryMax time.Duration
	// AuditOff leaves the audit trail unwritten (SYNCD_AUDIT=off).
	AuditOff bool
	// AnalyzeInterval and AnalyzeOff: as the consumer's, for the tables
	// the replay fills (consumers.Config).
	AnalyzeInterval time.Duration
	AnalyzeOff      bool
	Logger          *slog.Logger
	// Progress, if set, is called after every batch.
	Progress func(Progress)
}

const (
	// BatchSizeDefault is how many events one transaction applies.
	BatchSizeDefault = 256
	// BatchSizeMax bounds a batch: a transaction of more holds its locks
	// too long.
	BatchSizeMax = 10000
)

func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.RetryMax == 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Check reports what validate would refuse, so callers (the admin
// console's form) can answer bad input before starting a run.
func (c Config) Check() error { return c.withDefaults().validate() }

func (c Config) validate() error {
	switch {
	case c.Since.IsZero() == (c.FromSeq == 0):
		return errors.New("replay: give exactly one of a start time and a start sequence")
	case !c.Until.IsZero() && c.ToSeq != 0:
		return errors.New("replay: give at most one of an end time and an end sequence")
	case !c.Until.IsZero() && !c.Since.IsZero() && !c.Until.After(c.Since):
		return fmt.Errorf("replay: end time %s is not after start time %s", c.Until.Format(time.RFC3339), c.Since.Format(time.RFC3339))
	case c.ToSeq != 0 && c.FromSeq != 0 && c.ToSeq < c.FromSeq:
		return fmt.Errorf("replay: end sequence %d is before start sequence %d", c.ToSeq, c.FromSeq)
	case c.BatchSize < 1 || c.BatchSize > BatchSizeMax:
		return fmt.Errorf("replay: batch size %d outside 1..%d", c.BatchSize, BatchSizeMax)
	}
	_, err := FilterSubject(c.Source, c.Type)
	return err
}

// FilterSubject is the WEBHOOKS subject filter of a source and a type
// pattern: webhooks.<source|*>.<pattern|>>.
func FilterSubject(source, pattern string) (string, error) {
	switch source {
	case "":
		source = "*"
	case stream.SourceWorkOS, stream.SourceStripe:
	default:
		return "", fmt.Errorf("replay: unknown source %q: want %s or %s", source, stream.SourceWorkOS, stream.SourceStripe)
	}
	if pattern == "" {
		pattern = ">"
	}
	tokens := strings.Split(pattern, ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			return "", fmt.Errorf("replay: type pattern %q has an empty token", pattern)
		case tok == ">" && i != len(tokens)-1:
			return "", fmt.Errorf("replay: type pattern %q: '>' must be the last token", pattern)
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*> \t\r\n"):
			return "", fmt.Errorf("replay: type pattern %q: '*' and '>' must be whole tokens, and no spaces", pattern)
		}
	}
	return "webhooks." + source + "." + pattern, nil
}

// Progress is where a replay stands.
type Progress struct {
	// Done events out of about Total (the messages matching the filter
	// from the start, counted when the replay began).
	Done, Total int
	Seq         uint64
	Elapsed     time.Duration
}

// Failure is an event that could not be applied.
type Failure struct {
	Seq     uint64
	Source  string
	Type    string
	EventID string
	Err     error
}

// Summary is what a replay did.
type Summary struct {
	Filter string
	// FirstSeq and LastSeq are the stream sequences replayed.
	FirstSeq, LastSeq uint64
	// EndSeq is where the window ended: the stream's last sequence at the
	// start, or the requested end.
	EndSeq                                   uint64
	Events                                   int
	Applied, Skipped, Ignored, Stale, Failed int
	// Failures lists the first failures (at most 100).
	Failures []Failure
	Elapsed  time.Duration
}

// Rate is events per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Events) / s.Elapsed.Seconds()
}

const maxFailures = 100

// Run replays the window. The returned Summary is filled in as far as the
// replay got, also when it stops with an error.
func Run(ctx context.Context, cfg Config, pool *pgxpool.Pool, js jetstream.JetStream) (sum Summary, err error) {
	ctx, span := telemetry.Tracer(nil).Start(ctx, "replay")
	defer func() { endRunSpan(span, sum, err) }()
	return run(ctx, cfg, pool, js)
}

func run(ctx context.Context, cfg Config, pool *pgxpool.Pool, js jetstream.JetStream) (Summary, error) {
	cfg = cfg.withDefaults()
	var sum Summary
	if err := cfg.validate(); err != nil {
		return sum, err
	}
	// Replay writes as the consumer does: refuse a role that row-level
	// security would filter before re-applying anything.
	if err := consumers.CheckWriter(ctx, pool); err != nil {
		return sum, err
	}
	start := time.Now()
	filter, _ := FilterSubject(cfg.Source, cfg.Type)
	sum.Filter = filter

	st, err := js.Stream(ctx, stream.Webhooks)
	if err != nil {
		return sum, fmt.Errorf("stream %s: %w", stream.Webhooks, err)
	}
	state := st.CachedInfo().State
	// The window ends where the stream ended when the replay started:
	// events arriving meanwhile are the durable consumer's business.
	sum.EndSeq = state.LastSeq
	if cfg.ToSeq != 0 && cfg.ToSeq < sum.EndSeq {
		sum.EndSeq = cfg.ToSeq
	}
	if state.Msgs == 0 || (cfg.FromSeq != 0 && cfg.FromSeq > sum.EndSeq) {
		return sum, ErrEmpty
	}
	if cfg.FromSeq != 0 && cfg.FromSeq < state.FirstSeq {
		cfg.Logger.Warn("window starts before the stream's first message: older events have expired", "from_seq", cfg.FromSeq, "first_seq", state.FirstSeq)
	}

	// The applier alone: replay settles nothing in JetStream.
	applier, err := consumers.NewApplier(consumers.ApplierConfig{AuditOff: cfg.AuditOff, Logger: cfg.Logger}, pool)
	if err != nil {
		return sum, err
	}
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		NamePrefix:     "syncd-replay-" + nuid.Next(),
		// A replay that dies leaves nothing behind for long.
		InactiveThreshold: time.Minute,
	}
	if cfg.FromSeq != 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.FromSeq
	} else {
		since := cfg.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := js.OrderedConsumer(ctx, stream.Webhooks, occ)
	if err != nil {
		return sum, fmt.Errorf("create replay consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * cfg.BatchSize))
	if err != nil {
		return sum, fmt.Errorf("read replay consumer: %w", err)
	}
	defer func() {
		it.Stop()
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = js.DeleteConsumer(dctx, stream.Webhooks, info.Name)
			cancel()
		}
	}()
	info, err := cons.Info(ctx)
	if err != nil {
		return sum, fmt.Errorf("replay consumer info: %w", err)
	}
	// Nothing pending and nothing handed out yet: the filter matches no
	// message from the start on.
	if info.NumPending == 0 && info.Delivered.Consumer == 0 {
		return sum, ErrEmpty
	}
	total := int(info.NumPending) + int(info.Delivered.Consumer)

	// A replay into a new database fills its tables from nothing: keep
	// their planner statistics up with them, as the consumer does.
	if !cfg.AnalyzeOff {
		defer consumers.StartStatistics(ctx, pool, cmp.Or(cfg.AnalyzeInterval, consumers.AnalyzeIntervalDefault), cfg.Logger)()
	}

	r := &runner{cfg: cfg, applier: applier, sum: &sum, start: start}
	for done := false; !done; {
		var batch []jetstream.Msg
		// Fill a batch. Only wait for a message the server said is there
		// (NumPending of the previous one), so the loop never blocks on an
		// empty window end.
		for len(batch) < cfg.BatchSize {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				sum.Elapsed = time.Since(start)
				if ctx.Err() != nil {
					// Apply what was read before stopping, but give up
					// after a while: Postgres may be what is down.
					actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
					perr := r.apply(actx, batch)
					cancel()
					if perr != nil {
						return sum, perr
					}
					sum.Elapsed = time.Since(start)
					return sum, ctx.Err()
				}
				return sum, fmt.Errorf("read replay window: %w", err)
			}
			md, err := m.Metadata()
			if err != nil {
				return sum, fmt.Errorf("replay message metadata: %w", err)
			}
			if md.Sequence.Stream > sum.EndSeq || (!cfg.Until.IsZero() && md.Timestamp.After(cfg.Until)) {
				done = true
				break
			}
			batch = append(batch, m)
			if md.Sequence.Stream >= sum.EndSeq || md.NumPending == 0 {
				done = true
				break
			}
		}
		if err := r.apply(ctx, batch); err != nil {
			sum.Elapsed = time.Since(start)
			return sum, err
		}
		if cfg.Progress != nil {
			cfg.Progress(Progress{Done: sum.Events, Total: max(total, sum.Events), Seq: sum.LastSeq, Elapsed: time.Since(start)})
		}
	}
	sum.Elapsed = time.Since(start)
	if sum.Events == 0 {
		return sum, ErrEmpty
	}
	return sum, nil
}

type runner struct {
	cfg     Config
	applier *consumers.Applier
	sum     *Summary
	start   time.Time
}

// apply applies a batch, waiting out transient failures.
func (r *runner) apply(ctx context.Context, batch []jetstream.Msg) error {
	if len(batch) == 0 {
		return nil
	}
	ctx, span := startBatchSpan(ctx, batch)
	defer span.End()
	evs := make([]consumers.Event, 0, len(batch))
	for _, m := range batch {
		ev, err := consumers.DecodeMsg(m)
		ev.Replay = true
		r.count(ev)
		if err != nil {
			r.fail(ev, err)
			continue
		}
		evs = append(evs, ev)
	}
	// Apply settles events already in the ledger as Skipped with one
	// lookup and no transaction.
	wait := 100 * time.Millisecond
	for {
		res, err := r.applier.Apply(ctx, evs)
		if err == nil {
			for i, ev := range evs {
				if res[i].Err != nil {
					r.fail(ev, res[i].Err)
					continue
				}
				switch res[i].Outcome {
				case consumers.Applied:
					r.sum.Applied++
				case consumers.Skipped:
					r.sum.Skipped++
				case consumers.Ignored:
					r.sum.Ignored++
				case consumers.Stale:
					r.sum.Stale++
				}
			}
			return nil
		}
		if consumers.Classify(err) != consumers.Transient || ctx.Err() != nil {
			return fmt.Errorf("apply replayed batch: %w", err)
		}
		r.cfg.Logger.Warn("replayed batch failed, retrying", "events", len(evs), "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("apply replayed batch: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, r.cfg.RetryMax)
	}
}

func (r *runner) count(ev consumers.Event) {
	r.sum.Events++
	if r.sum.FirstSeq == 0 {
		r.sum.FirstSeq = ev.Seq
	}
	r.sum.LastSeq = ev.Seq
}

func (r *runner) fail(ev consumers.Event, err error) {
	r.sum.Failed++
	r.cfg.Logger.Warn("replayed event failed", "seq", ev.Seq, "source", ev.Source, "type", ev.Envelope.Type, "event_id", ev.Envelope.ID, "class", consumers.Classify(err), "err", err)
	if len(r.sum.Failures) < maxFailures {
		r.sum.Failures = append(r.sum.Failures, Failure{Seq: ev.Seq, Source: ev.Source, Type: ev.Envelope.Type, EventID: ev.Envelope.ID, Err: err})
	}
}
