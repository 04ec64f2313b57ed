// Package provision gives people their WorkOS accounts from the events
// syncd receives: a guest who pays for a booking gets a WorkOS user
// (unverified, metadata registrationType guest and the booking), a
// personal organization, an owner membership and a magic-auth code; with
// mode all, every user.created whose user has no personal organization
// gets one with the membership.
//
// It reads WEBHOOKS through its own durable consumer, so the apply path
// never waits for WorkOS, and writes only to WorkOS: the users,
// organizations and memberships come back as webhooks and are applied
// like any other. Idempotency rests on lookups (see workosapi) and on
// provisioning_tasks, which records each step as soon as WorkOS answered:
// redeliveries, replays, restarts and concurrent replicas neither repeat
// a step nor make a second object. Transient failures are retried with
// backoff without limit and never counted; a request WorkOS refuses is
// dead-lettered with its error and request id.
package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/backoff"
	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/workosapi"
)

// Provisioner is the provisioning consumer.
type Provisioner struct {
	cfg  Config
	pool *pgxpool.Pool
	// tasks is Run's own small pool: a task holds a connection (and its
	// lock) while it waits for WorkOS, which must not take connections
	// from the apply consumer.
	tasks   *pgxpool.Pool
	js      jetstream.JetStream
	api     *workosapi.Client
	q       *queries.Queries
	log     *slog.Logger
	metrics *metrics
	// ackFloor is the durable's last stream sequence below which all is
	// settled, as last seen (watchLag): a durable made again starts after
	// it.
	ackFloor atomic.Uint64
	// afterStep, set by tests, runs after each step is stored.
	afterStep func(taskKey, step string) error
}

// New builds a provisioner writing to WorkOS through api.
func New(cfg Config, pool *pgxpool.Pool, js jetstream.JetStream, api *workosapi.Client) (*Provisioner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if api == nil {
		return nil, errors.New("provision: no WorkOS client")
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Provisioner{cfg: cfg, pool: pool, js: js, api: api, q: queries.New(), log: cfg.Logger.With("component", "provision"), metrics: m}, nil
}

// Ensure creates or updates the durable consumer, reading the subjects of
// the mode. Run calls it; tests call it to have the durable before they
// publish.
func (p *Provisioner) Ensure(ctx context.Context) error { return p.ensure(ctx, 0) }

// ensure is Ensure, a new durable starting at startSeq when it is set.
func (p *Provisioner) ensure(ctx context.Context, startSeq uint64) error {
	return stream.EnsureDurable(ctx, p.js, stream.DurableConfig{
		StartSeq:       startSeq,
		Name:           p.cfg.Durable,
		Description:    "provisions WorkOS accounts for guests and users",
		FilterSubjects: p.cfg.subjects(),
		AckWait:        p.cfg.AckWait,
		MaxAckPending:  4 * p.cfg.Workers,
		DeliverAll:     p.cfg.DeliverAll,
	})
}

// Run provisions from the durable until ctx is done. On stop it stops
// fetching, hands back what it had buffered and lets the tasks in flight
// finish (each step is stored as it completes, so one cut short by
// StopTimeout resumes where it was).
func (p *Provisioner) Run(ctx context.Context) error {
	if err := p.Ensure(ctx); err != nil {
		return err
	}
	pcfg := p.pool.Config()
	pcfg.MaxConns, pcfg.MinConns = int32(p.cfg.Workers+1), 0
	tasks, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("provisioning pool: %w", err)
	}
	defer tasks.Close()
	p.tasks = tasks
	// Tasks in flight at a stop get StopTimeout to finish.
	taskCtx, cancelTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTasks()
	stopTasks := context.AfterFunc(ctx, func() { time.AfterFunc(p.cfg.StopTimeout, cancelTasks) })
	defer stopTasks()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.watchLag(ctx)
	}()
	work := make(chan jetstream.Msg)
	for range p.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				p.handle(taskCtx, m)
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
		p.log.Info("provisioning stopped")
	}()
	p.log.Info("provisioning started", "mode", p.cfg.Mode, "durable", p.cfg.Durable, "workers", p.cfg.Workers)
	// Losing the pull (the durable deleted, a consumer leader moving) is
	// waited out: the durable is made again if it is gone (it is this
	// consumer's own) and pulling goes on, so provisioning never stops
	// quietly while serve runs.
	wait := p.cfg.RetryMin
	for {
		started := time.Now()
		err := p.pull(ctx, work)
		if ctx.Err() != nil {
			return nil
		}
		if p.js.Conn().IsClosed() {
			return fmt.Errorf("pull from consumer %s: %w", p.cfg.Durable, nats.ErrConnectionClosed)
		}
		if time.Since(started) > time.Minute {
			wait = p.cfg.RetryMin // it worked for a while: start over
		}
		p.log.Warn("provisioning consumer lost, opening it again", "err", err, "in", wait)
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, p.cfg.RetryMax)
		// Made again from where it had settled everything (what it had
		// settled after that comes again, and is done already), so the
		// webhooks stored while it was gone are provisioned too.
		var from uint64 // unknown: as configured
		if floor := p.ackFloor.Load(); floor > 0 {
			from = floor + 1
		}
		if err := p.ensure(ctx, from); err != nil && ctx.Err() == nil {
			p.log.Warn("provisioning durable", "err", err)
		}
	}
}

// pull hands the durable's messages to the workers until ctx is done (the
// pull drained, what was buffered handed back) or the pull is lost, which
// it returns.
func (p *Provisioner) pull(ctx context.Context, work chan<- jetstream.Msg) error {
	cons, err := p.js.Consumer(ctx, stream.Webhooks, p.cfg.Durable)
	if err != nil {
		return fmt.Errorf("open consumer %s: %w", p.cfg.Durable, err)
	}
	// Missed heartbeats (the server dropped the pull) are noticed at 5 s.
	it, err := cons.Messages(jetstream.PullMaxMessages(2*p.cfg.Workers), jetstream.PullHeartbeat(5*time.Second))
	if err != nil {
		return fmt.Errorf("pull from consumer %s: %w", p.cfg.Durable, err)
	}
	stopPull := context.AfterFunc(ctx, it.Drain)
	defer stopPull()
	defer it.Stop()
	lastErr := errors.New("message iterator closed")
	for {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return fmt.Errorf("pull from consumer %s: %w", p.cfg.Durable, lastErr)
		}
		if err != nil {
			// Reconnects are recovered from by the iterator; terminal
			// errors close it. A pull nobody serves is given up.
			lastErr = err
			p.log.Warn("pull from JetStream", "err", err)
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				it.Stop()
			}
			continue
		}
		if ctx.Err() != nil {
			_ = m.Nak() // drained on stop: back to the server at once
			continue
		}
		work <- m
	}
}

// handle runs the task of one message and settles it: ack when done,
// redelivery later when WorkOS, Postgres or another worker was in the
// way, dead letter when WorkOS refused.
func (p *Provisioner) handle(ctx context.Context, m jetstream.Msg) {
	ev, err := consumers.DecodeMsg(m)
	if err != nil {
		// The apply consumer dead-letters undecodable events; one copy
		// in DEADLETTER is enough.
		p.log.Warn("undecodable event, not provisioned", "subject", m.Subject(), "err", err)
		p.settled(m, ev, "unknown", outcomeIgnored)
		return
	}
	log := p.log.With("source", ev.Source, "event_id", ev.Envelope.ID, "type", ev.Envelope.Type, "seq", ev.Seq)
	r, ok, err := p.requestOf(ev)
	if err != nil {
		p.deadLetter(ctx, m, ev, kindOf(ev), err, log)
		return
	}
	if !ok {
		p.settled(m, ev, kindOf(ev), outcomeIgnored)
		return
	}
	log = log.With("task", r.key)

	// A task can wait out 429s and backoffs: keep the message ours.
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(max(p.cfg.AckWait/3, 100*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = m.InProgress()
			}
		}
	}()
	outcome, err := p.run(ctx, r)
	close(done)
	switch {
	case err == nil:
		if outcome != outcomeSkipped {
			log.Info("provisioned", "outcome", outcome)
		}
		p.settled(m, ev, r.kind, outcome)
	case errors.Is(err, errKilled):
		// A test's crash: the message is left to come back after AckWait.
	case errors.Is(err, errBusy):
		p.metrics.retries.WithLabelValues("busy").Inc()
		_ = m.NakWithDelay(backoff.Jitter(p.cfg.RetryMin))
	case classify(err) == transientClass:
		log.Warn("provisioning failed, will retry", "err", err, "delivery", stream.Deliveries(m))
		p.metrics.retries.WithLabelValues("transient").Inc()
		_ = m.NakWithDelay(p.backoff(stream.Deliveries(m)))
	default:
		p.deadLetter(ctx, m, ev, r.kind, err, log)
	}
}

func (p *Provisioner) settled(m jetstream.Msg, ev consumers.Event, kind, outcome string) {
	_ = m.Ack()
	p.metrics.tasks.WithLabelValues(kind, outcome).Inc()
	if !ev.ReceivedAt.IsZero() {
		p.metrics.lag.Observe(time.Since(ev.ReceivedAt).Seconds())
	}
}

// deadLetter sets the event aside with the reason, the way the apply
// consumer does (consumers.DeadLetter), named by this durable.
func (p *Provisioner) deadLetter(ctx context.Context, m jetstream.Msg, ev consumers.Event, kind string, cause error, log *slog.Logger) {
	stored, err := consumers.DeadLetter(ctx, p.js, p.cfg.Durable, m, ev, consumers.Permanent, cause, stream.Deliveries(m))
	if err != nil && !stored {
		log.Error("dead letter not stored, will retry", "err", err, "cause", cause)
		p.metrics.retries.WithLabelValues("transient").Inc()
		_ = m.NakWithDelay(p.backoff(stream.Deliveries(m)))
		return
	}
	log.Error("provisioning dead-lettered", "err", cause)
	p.metrics.tasks.WithLabelValues(kind, outcomeFailed).Inc()
}

func kindOf(ev consumers.Event) string {
	if ev.Source == stream.SourceWorkOS {
		return kindUser
	}
	return kindGuest
}

// Failure classes, as the consumers name them.
const transientClass = consumers.Transient

// classify sorts a task's failure: WorkOS's by what it answered (no
// answer, 429, 5xx: transient; any other refusal: permanent), bad input
// as permanent, the rest (Postgres, NATS) as the apply consumer does.
func classify(err error) consumers.Class {
	var apiErr *workosapi.Error
	switch {
	case errors.Is(err, errBadInput), errors.Is(err, workosapi.ErrInvalidArgument):
		return consumers.Permanent
	case errors.Is(err, workosapi.ErrNotVisible), errors.As(err, &apiErr):
		if workosapi.IsTransient(err) {
			return consumers.Transient
		}
		return consumers.Permanent
	}
	return consumers.Classify(err)
}

// watchLag keeps the durable's backlog gauge current.
func (p *Provisioner) watchLag(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		// Looked up each time: the durable may have been made again.
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if cons, err := p.js.Consumer(qctx, stream.Webhooks, p.cfg.Durable); err == nil {
			info := cons.CachedInfo()
			p.metrics.pending.Set(float64(info.NumPending + uint64(info.NumAckPending)))
			p.ackFloor.Store(max(p.ackFloor.Load(), info.AckFloor.Stream))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// backoff is the redelivery delay after the n-th delivery.
func (p *Provisioner) backoff(n int) time.Duration {
	return backoff.Delay(n, p.cfg.RetryMin, p.cfg.RetryMax)
}
