package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/backoff"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
)

// Tables retention prunes, as the metric's table label names them.
const (
	TableLedger             = "webhook_events"
	TableStripeCustomers    = "stripe_customers"
	TableStripeSubscription = "stripe_subscriptions"
	TableGroupMembers       = "directory_group_members"
	TableBackfillCursors    = "backfill_cursors"
	TableAuditLogs          = "audit_logs"
)

// Tables lists every table Prune works on, in the order it does.
var Tables = []string{TableLedger, TableStripeCustomers, TableStripeSubscription, TableGroupMembers, TableAuditLogs, TableBackfillCursors}

// Pruner deletes what retention allows, a batch at a time.
type Pruner struct {
	cfg  Config
	pool *pgxpool.Pool
	q    *queries.Queries
	log  *slog.Logger

	// slices remembers each source's ledger slice between passes.
	slices map[string]time.Duration

	pruned   *prometheus.CounterVec
	failures prometheus.Counter
	lastPass prometheus.Gauge
}

// New validates cfg and registers the pruner's metrics.
func New(cfg Config, pool *pgxpool.Pool) (*Pruner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Pruner{
		cfg: cfg, pool: pool, q: queries.New(), log: cfg.Logger.With("component", "retention"),
		slices: map[string]time.Duration{},
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_retention_pruned_rows_total", Help: "Rows deleted by retention, by table.",
		}, []string{"table"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncd_retention_failures_total", Help: "Retention passes that stopped on an error (retried at the next interval).",
		}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncd_retention_last_pass_timestamp_seconds", Help: "When retention last finished a pass over every table.",
		}),
	}
	for _, c := range []prometheus.Collector{p.pruned, p.failures, p.lastPass} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("register retention metrics: %w", err)
		}
	}
	for _, t := range Tables {
		p.pruned.WithLabelValues(t) // shown at 0 before the first delete
	}
	return p, nil
}

// Config is the configuration the pruner runs with, defaults applied.
func (p *Pruner) Config() Config { return p.cfg }

// Run prunes at start and then every Interval until ctx is done. A failed
// pass (Postgres away, a statement timeout) is logged and left to the next
// one: nothing is lost by pruning later.
func (p *Pruner) Run(ctx context.Context) error {
	p.log.Info("retention scheduled", "ledger", p.cfg.Retention, "tombstones", p.cfg.TombstoneRetention(), "audit", p.cfg.AuditRetention,
		"every", p.cfg.Interval, "batch", p.cfg.BatchSize, "pause", p.cfg.Pause, "duty", p.cfg.Duty)
	for {
		res, err := p.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			p.failures.Inc()
			p.log.Warn("retention pass failed; the next one carries on", "err", err)
		case res.Total() > 0:
			p.log.Info("retention pass", "pruned", res)
		}
		if !backoff.Wait(ctx, p.cfg.Interval) {
			return ctx.Err()
		}
	}
}

// Result counts the rows one pass deleted, by table.
type Result map[string]int64

// Total is the rows deleted from every table.
func (r Result) Total() int64 {
	var n int64
	for _, v := range r {
		n += v
	}
	return n
}

// Prune makes one pass (one at a time: a Pruner is not for concurrent
// use): each table in turn, batch after batch until a
// batch comes back short. Every batch is its own statement (its own short
// transaction), followed by a pause (see Config.Duty).
func (p *Pruner) Prune(ctx context.Context) (Result, error) {
	now := p.cfg.Now()
	res := Result{}
	ledgerBefore := p.cfg.ledgerCutoff(now)
	for _, src := range []string{stream.SourceWorkOS, stream.SourceStripe} {
		if err := p.pruneLedger(ctx, res, src, ledgerBefore); err != nil {
			return res, fmt.Errorf("prune %s (%s): %w", TableLedger, src, err)
		}
	}
	tombBefore := now.Add(-p.cfg.TombstoneRetention())
	for _, t := range []struct {
		table string
		prune func(context.Context) (int64, error)
	}{
		{TableStripeCustomers, func(ctx context.Context) (int64, error) {
			return p.q.StripeCustomerPruneDeleted(ctx, p.pool, queries.StripeCustomerPruneDeletedParams{Before: &tombBefore, MaxRows: int32(p.cfg.BatchSize)})
		}},
		{TableStripeSubscription, func(ctx context.Context) (int64, error) {
			return p.q.StripeSubscriptionPruneDeleted(ctx, p.pool, queries.StripeSubscriptionPruneDeletedParams{Before: &tombBefore, MaxRows: int32(p.cfg.BatchSize)})
		}},
		{TableGroupMembers, func(ctx context.Context) (int64, error) {
			return p.q.DirectoryGroupMemberPruneDeleted(ctx, p.pool, queries.DirectoryGroupMemberPruneDeletedParams{Before: &tombBefore, MaxRows: int32(p.cfg.BatchSize)})
		}},
		// Audit rows go by age alone: nothing depends on them.
		{TableAuditLogs, func(ctx context.Context) (int64, error) {
			return p.q.AuditLogPrune(ctx, p.pool, queries.AuditLogPruneParams{Before: now.Add(-p.cfg.AuditRetention), MaxRows: int32(p.cfg.BatchSize)})
		}},
	} {
		if err := p.batches(ctx, res, t.table, t.prune); err != nil {
			return res, fmt.Errorf("prune %s: %w", t.table, err)
		}
	}
	// A handful of rows: one statement, no batches.
	cursorsBefore := now.Add(-p.cfg.Retention)
	n, err := p.q.BackfillCursorPruneCompleted(ctx, p.pool, &cursorsBefore)
	if err != nil {
		return res, fmt.Errorf("prune %s: %w", TableBackfillCursors, err)
	}
	p.count(res, TableBackfillCursors, n)
	p.lastPass.Set(float64(p.cfg.Now().Unix()))
	return res, nil
}

// Bounds of the time slice one ledger batch may look at.
const (
	minSlice     = time.Millisecond
	maxSlice     = 24 * time.Hour
	initialSlice = time.Minute
)

// pruneLedger deletes a source's rows applied before before, oldest first.
// Each batch looks only at a slice of applied_at from the oldest row left,
// sized so it holds about a batch: without statistics (right after a bulk
// load, before autovacuum's analyze) the planner turns `ORDER BY applied_at
// LIMIT n` into a scan of every old row and a sort, and the slice keeps
// that bounded too. The slice halves when a batch comes back full and
// doubles when it comes back under half.
func (p *Pruner) pruneLedger(ctx context.Context, res Result, source string, before time.Time) error {
	after, slice := time.Time{}, p.slices[source]
	if slice == 0 {
		slice = initialSlice
	}
	defer func() { p.slices[source] = slice }()
	for {
		began := time.Now()
		start, err := p.q.EventLedgerOldestBetween(ctx, p.pool, queries.EventLedgerOldestBetweenParams{Source: source, After: after, Before: before})
		if err = queries.Check(err); errors.Is(err, queries.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		end := start.Add(slice)
		if end.After(before) {
			end = before
		}
		r, err := p.q.EventLedgerPrune(ctx, p.pool, queries.EventLedgerPruneParams{Source: source, After: start, Before: end, MaxRows: int32(p.cfg.BatchSize)})
		if err != nil {
			return queries.Check(err)
		}
		p.count(res, TableLedger, r.Pruned)
		switch full := r.Pruned >= int64(p.cfg.BatchSize); {
		case full:
			after, slice = r.LastAppliedAt, max(slice/2, minSlice)
		default:
			after = end // nothing of the slice is left
			if r.Pruned < int64(p.cfg.BatchSize)/2 {
				slice = min(slice*2, maxSlice)
			}
		}
		if !backoff.Wait(ctx, p.pause(time.Since(began), after.Sub(start), before.Sub(start))) {
			return ctx.Err()
		}
	}
}

// pause is the wait after a batch that took took and went span forward
// through applied_at (0 when unknown), its rows behind the cutoff by
// behind: the duty's, but, once the pruner has caught up (the rows within
// one Interval of the cutoff), never more than a quarter of span, so that
// it moves through each source at least twice as fast as rows age past the
// cutoff, both sources in turn. Under a load so steady and heavy that the
// duty would let rows age faster than it deletes them (the bench's 4,500
// rows a second on two busy cores: 2,700 deleted a second), it keeps up
// instead, and the ledger stops growing. A backlog drains at the duty's
// pace however densely its rows were applied (a burst's rows share a
// transaction's applied_at: full batches spanning a millisecond).
func (p *Pruner) pause(took, span, behind time.Duration) time.Duration {
	d := time.Duration(float64(took) * (1/p.cfg.Duty - 1))
	if span > 0 && behind <= p.cfg.Interval {
		d = min(d, span/4)
	}
	return max(p.cfg.Pause, d)
}

// batches runs prune until it deletes fewer than a batch, pausing after
// each full one.
func (p *Pruner) batches(ctx context.Context, res Result, table string, prune func(context.Context) (int64, error)) error {
	for {
		began := time.Now()
		n, err := prune(ctx)
		if err != nil {
			return queries.Check(err)
		}
		p.count(res, table, n)
		if n < int64(p.cfg.BatchSize) {
			return nil
		}
		if !backoff.Wait(ctx, p.pause(time.Since(began), 0, 0)) {
			return ctx.Err()
		}
	}
}

func (p *Pruner) count(res Result, table string, n int64) {
	if n > 0 {
		res[table] += n
		p.pruned.WithLabelValues(table).Add(float64(n))
	}
}
