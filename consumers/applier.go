package consumers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/queries"
)

// ApplierConfig configures an Applier.
type ApplierConfig struct {
	// Routes is the route table; nil is syncd's (Routes).
	Routes []Route
	// ConflictRetries is how often a batch that hit a deadlock or a
	// serialization failure is retried at once before its failure is
	// returned as transient.
	ConflictRetries int
	// AuditOff leaves the audit trail (audit_logs) unwritten
	// (SYNCD_AUDIT=off); it is on by default.
	AuditOff bool
	Logger   *slog.Logger
}

func (c ApplierConfig) withDefaults() ApplierConfig {
	if c.Routes == nil {
		c.Routes = Routes()
	}
	if c.ConflictRetries == 0 {
		c.ConflictRetries = 5
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Applier applies batches of events to Postgres: what the consumer, replay
// and the benchmark call. It knows nothing of JetStream.
type Applier struct {
	cfg    ApplierConfig
	pool   *pgxpool.Pool
	q      *queries.Queries
	routes routeTable
}

// NewApplier builds an applier over pool.
func NewApplier(cfg ApplierConfig, pool *pgxpool.Pool) (*Applier, error) {
	cfg = cfg.withDefaults()
	if cfg.ConflictRetries < 0 {
		return nil, fmt.Errorf("consumers: ConflictRetries %d is negative", cfg.ConflictRetries)
	}
	rt, err := newRouteTable(cfg.Routes)
	if err != nil {
		return nil, err
	}
	return &Applier{cfg: cfg, pool: pool, q: queries.New(), routes: rt}, nil
}

// Partition splits a batch among n workers by entity key (Route.Key):
// the events of one key land in one part, in stream order. Empty parts
// are left out.
func (a *Applier) Partition(evs []Event, n int) [][]int {
	if n <= 1 {
		all := make([]int, len(evs))
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	parts := make([][]int, n)
	for i, ev := range evs {
		h := fnv.New32a()
		_, _ = h.Write([]byte(a.routes.route(ev).key(ev)))
		p := h.Sum32() % uint32(n)
		parts[p] = append(parts[p], i)
	}
	return slices.DeleteFunc(parts, func(p []int) bool { return len(p) == 0 })
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
func (a *Applier) Apply(ctx context.Context, evs []Event) ([]Result, error) {
	res := make([]Result, len(evs))
	todo, err := a.unseen(ctx, evs, res)
	if err != nil || len(todo) == 0 {
		return res, err
	}
	// Most batches have no bad event: apply them batched, and fall back to
	// one savepoint per event, run directly, only when one fails.
	var failed bool
	err = a.retryConflicts(ctx, evs, todo, res, func() error {
		var err error
		failed, err = a.applyBatched(ctx, evs, todo, res)
		return err
	})
	if err != nil || !failed {
		return res, err
	}
	return res, a.retryConflicts(ctx, evs, todo, res, func() error {
		return a.applyIsolated(ctx, evs, todo, res)
	})
}

// retryConflicts runs attempt again, at once, when it failed on a
// deadlock or a serialization failure: another worker or a replay held a
// row this batch needed. Such a failure is transient and no event's fault.
func (a *Applier) retryConflicts(ctx context.Context, evs []Event, todo []int, res []Result, attempt func() error) error {
	for n := 0; ; n++ {
		for _, i := range todo {
			res[i] = Result{}
		}
		err := attempt()
		if err == nil || !isConflict(err) || n >= a.cfg.ConflictRetries || ctx.Err() != nil {
			return err
		}
		a.cfg.Logger.Debug("batch hit a lock conflict, retrying", "events", len(todo), "err", err)
	}
}

// isConflict: a deadlock (40P01) or serialization failure (40001).
func isConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// unseen settles the events the ledger already holds, and repeats of an
// event within the batch, as Skipped, and returns the indexes of the rest.
// One query per source: replaying applied events costs no transaction. An
// event whose id the ledger cannot even look up (not text Postgres takes:
// a NUL, invalid UTF-8) fails its source's lookup permanently; the events
// of that source are then looked up one by one, and the lookup's failure
// is blamed on the event that caused it, not on its batch.
func (a *Applier) unseen(ctx context.Context, evs []Event, res []Result) ([]int, error) {
	ids := map[string][]string{}
	for _, ev := range evs {
		ids[ev.Source] = append(ids[ev.Source], ev.Envelope.ID)
	}
	seen := make(map[[2]string]bool, len(evs))
	for source, list := range ids {
		found, err := a.ledgerSeen(ctx, source, list)
		if err != nil && Classify(err) != Transient {
			found, err = a.unseenOneByOne(ctx, evs, source, res)
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
func (a *Applier) unseenOneByOne(ctx context.Context, evs []Event, source string, res []Result) ([]string, error) {
	var found []string
	for i, ev := range evs {
		if ev.Source != source {
			continue
		}
		f, err := a.ledgerSeen(ctx, source, []string{ev.Envelope.ID})
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

func (a *Applier) ledgerSeen(ctx context.Context, source string, ids []string) (found []string, err error) {
	err = protect(func() (err error) {
		found, err = a.q.EventLedgerSeen(ctx, a.pool, queries.EventLedgerSeenParams{Source: source, EventIds: ids})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger lookup: %w", err)
	}
	return found, nil
}

// stage is a run of a batch's events that can be applied together: first
// the set-based rows, then the queued per-event statements (with the
// ledger rows), then the events that read, each group in stream order.
// An event joins the stage only if running it in its group's place gives
// what stream order would (stage.admits).
type stage struct {
	sets   sets
	pipe   pipeline
	direct []int
	n      int
	// wrote: the tables the stage's events of each kind write; stubbed:
	// those they create stubs in.
	wrote, stubbed [kindDirect + 1]map[Table]bool
	// flush is the latest kind of a link-flushing event in the stage, or
	// -1.
	flush    int
	onlyPipe bool
}

func newStage() *stage { return &stage{flush: -1, onlyPipe: true} }

// newStage starts a stage of the batch, its pipeline bound to the
// batch's transaction.
func (b *batchRun) newStage() *stage {
	st := newStage()
	st.pipe.bind(b.a.q, b.tx)
	return st
}

// admits reports whether an event of route r (nil: no route, ledger only)
// can join the stage.
func (s *stage) admits(r *Route) bool {
	if s.n == 0 || r == nil {
		return true
	}
	k := r.kind()
	switch {
	case r.FlushesLinks && !(s.onlyPipe && k == kindPipe):
		// Its handler runs the links gathered so far when it is queued:
		// every event before it must have been applied, which only the
		// queued statements before it will have been.
		return false
	case s.flush > int(k):
		// It would run before a link flush that comes before it.
		return false
	}
	for later := k + 1; later <= kindDirect; later++ {
		for _, t := range r.Writes {
			if s.wrote[later][t] {
				return false // it would overtake an event of its table
			}
		}
		for _, t := range r.Stubs {
			if s.stubbed[later][t] {
				return false // it would overtake a stub of its stubs' table
			}
		}
	}
	return true
}

func (s *stage) note(r *Route) {
	s.n++
	if r == nil {
		return
	}
	k := r.kind()
	if s.wrote[k] == nil {
		s.wrote[k] = map[Table]bool{}
	}
	for _, t := range r.Writes {
		s.wrote[k][t] = true
	}
	if len(r.Stubs) > 0 && s.stubbed[k] == nil {
		s.stubbed[k] = map[Table]bool{}
	}
	for _, t := range r.Stubs {
		s.stubbed[k][t] = true
	}
	if r.FlushesLinks {
		s.flush = max(s.flush, int(k))
	}
	if k != kindPipe {
		s.onlyPipe = false
	}
}

// batchRun is one attempt at applying a batch in one transaction.
type batchRun struct {
	a     *Applier
	tx    pgx.Tx
	evs   []Event
	res   []Result
	links *linkSet
	stale map[string][]string
	// The audit context (audit.go): the batch's events, the set-based
	// events of the stage being built.
	todo, stageSets []int
	// linksReady: the links' audit context is queued already.
	linksReady bool
}

// applyBatched applies the events in one transaction, stage by stage.
// failed reports an event that failed permanently: nothing is committed
// and the caller isolates it.
func (a *Applier) applyBatched(ctx context.Context, evs []Event, todo []int, res []Result) (failed bool, err error) {
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin batch: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := a.lockShared(ctx, tx, evs, todo); err != nil {
		return false, err
	}
	b := &batchRun{a: a, tx: tx, evs: evs, res: res, links: newLinkSet(), stale: map[string][]string{}, todo: todo}
	st := b.newStage()
	for _, i := range todo {
		r := a.routes.route(evs[i])
		if !st.admits(r) {
			if failed, err := b.exec(ctx, st); failed || err != nil {
				return failed, err
			}
			st = b.newStage()
		}
		if failed := b.add(ctx, st, i, r); failed {
			return true, nil
		}
	}
	if failed := b.auditLinksQueued(ctx, st); failed {
		return true, nil
	}
	if failed, err := b.exec(ctx, st); failed || err != nil {
		return failed, err
	}
	if err := b.auditLinks(ctx); err != nil {
		return permanentOr(err)
	}
	// A permanent failure here belongs to no event in particular: isolate,
	// where each event runs its own links and the culprit is found.
	if err := protect(func() error { return b.links.run(ctx, a.q, tx) }); err != nil {
		return permanentOr(err)
	}
	for source, ids := range b.stale {
		if err := a.q.EventLedgerMarkStale(ctx, tx, queries.EventLedgerMarkStaleParams{Source: source, EventIds: ids}); err != nil {
			return permanentOr(fmt.Errorf("ledger outcome: %w", err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit batch: %w", err)
	}
	return false, nil
}

// lockShared takes advisory locks on the organizations the events share
// with other workers' events (Route.SharedOrg) and that have no row yet,
// sorted, before anything else in the transaction. Two workers' batches
// that both insert one new organization (one's organization event, the
// other's membership stub, or two memberships' stubs) otherwise take it at
// different points of their transactions, each after others of its own,
// and deadlock; Postgres finds the cycle only after deadlock_timeout (a
// second by default). Locked first and in one order, the second batch
// waits for the first at its start. An organization that exists needs no
// lock: a stub leaves it alone, and only its own worker writes it.
func (a *Applier) lockShared(ctx context.Context, tx pgx.Tx, evs []Event, todo []int) error {
	var ids []string
	for _, i := range todo {
		if r := a.routes.route(evs[i]); r != nil && r.SharedOrg != nil {
			// An id with a NUL (a \u0000 escape; bodies that are not UTF-8
			// are refused when decoded) names no row anyone can insert: no
			// lock, and its event fails alone in its handler rather than
			// failing the batch here.
			if id := r.SharedOrg(evs[i]); id != "" && !strings.ContainsRune(id, 0) {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := a.q.OrganizationsLockNew(ctx, tx, ids); err != nil {
		return fmt.Errorf("lock new organizations: %w", err)
	}
	return nil
}

// permanentOr sorts a batch-level failure: transient fails the batch,
// anything else sends it to the isolated path.
func permanentOr(err error) (failed bool, _ error) {
	if Classify(err) == Transient {
		return false, err
	}
	return true, nil
}

// add puts event i into the stage: its set-based row, its queued
// statements, or its place among the events that run directly. failed: a
// handler rejected the event (isolate).
func (b *batchRun) add(ctx context.Context, st *stage, i int, r *Route) (failed bool) {
	ev := b.evs[i]
	st.note(r)
	switch {
	case r == nil:
		st.pipe.claim(ev, Ignored)
		b.res[i].Outcome = Ignored
	case r.kind() == kindSet:
		// A panic is an error like any other here: the batch is isolated
		// and the event applied alone, where it is blamed.
		if err := protect(func() error { return r.set.add(&st.sets, i, ev) }); err != nil {
			return true
		}
		b.stageSets = append(b.stageSets, i)
	case r.kind() == kindPipe:
		st.pipe.start(i)
		if err := b.a.auditFor(ctx, &st.pipe, &ev); err != nil {
			return true
		}
		var out Outcome
		err := protect(func() (err error) {
			out, err = r.Handle(ctx, Tx{Q: b.a.q, DB: &st.pipe, Links: b.links, Log: b.a.cfg.Logger}, ev)
			return err
		})
		if err != nil {
			return true
		}
		st.pipe.claim(ev, out)
		b.res[i].Outcome = out
	default:
		st.direct = append(st.direct, i)
	}
	return false
}

// exec applies a stage: set-based rows, then the queued statements and
// ledger rows in one round trip, then the events that read.
func (b *batchRun) exec(ctx context.Context, st *stage) (failed bool, err error) {
	if !st.sets.empty() {
		if err := b.auditStage(ctx); err != nil {
			return permanentOr(err)
		}
		err := protect(func() error {
			return st.sets.apply(ctx, b.a.q, b.tx, b.links, func(i int, out Outcome) {
				b.res[i].Outcome = out
				st.pipe.claim(b.evs[i], out)
			}, meetingConfig{log: b.a.cfg.Logger, audit: !b.a.cfg.AuditOff})
		})
		if err != nil {
			if errors.Is(err, errSetMismatch) {
				b.a.cfg.Logger.Warn("set-based apply disagreed with the database; applying the batch event by event", "err", err)
			}
			return permanentOr(err)
		}
	}
	var r pipelineResult
	err = protect(func() (err error) {
		r, err = st.pipe.send(ctx, b.a.q, b.tx)
		return err
	})
	if err != nil {
		return permanentOr(fmt.Errorf("apply batch: %w", err))
	}
	for _, i := range r.stale {
		if b.res[i].Outcome == Applied {
			b.res[i].Outcome = Stale
			ev := b.evs[i]
			b.stale[ev.Source] = append(b.stale[ev.Source], ev.Envelope.ID)
		}
	}
	for _, i := range st.direct {
		ev := b.evs[i]
		out, err := b.a.applyOne(ctx, b.tx, b.links, ev)
		if err != nil {
			return permanentOr(fmt.Errorf("apply %s %s: %w", ev.Source, ev.Envelope.ID, err))
		}
		b.res[i].Outcome = out
	}
	return false, nil
}

// applyIsolated applies the events directly, each under a savepoint with
// its own links, so a permanent failure rolls back that event alone and is
// blamed on it.
func (a *Applier) applyIsolated(ctx context.Context, evs []Event, todo []int, res []Result) error {
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin batch: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := a.lockShared(ctx, tx, evs, todo); err != nil {
		return err
	}
	for _, i := range todo {
		ev := evs[i]
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		links := newLinkSet()
		out, err := a.applyOne(ctx, sp, links, ev)
		if err == nil {
			err = protect(func() error { return links.run(ctx, a.q, sp) })
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

// applyOne claims the event in the ledger and applies it with its
// route's handler, directly. A panic in the handler is the event's
// permanent failure.
func (a *Applier) applyOne(ctx context.Context, db queries.DBTX, links *linkSet, ev Event) (out Outcome, err error) {
	defer func() {
		if v := recover(); v != nil {
			out, err = "", recovered(v)
		}
	}()
	var seq *int64 // none outside the stream (tests, the benchmark), as EventLedgerClaim stores it
	if ev.Seq != 0 {
		seq = ptr(int64(ev.Seq))
	}
	_, err = a.q.EventLedgerInsert(ctx, db, queries.EventLedgerInsertParams{
		Source:     ev.Source,
		EventID:    ev.Envelope.ID,
		EventType:  ev.Envelope.Type,
		ProviderAt: timePtr(ev.Envelope.Created),
		ReceivedAt: timePtr(ev.ReceivedAt),
		StreamSeq:  seq,
	})
	if err = queries.Check(err); errors.Is(err, queries.ErrNotFound) {
		return Skipped, nil
	} else if err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	out = Ignored
	if r := a.routes.route(ev); r != nil {
		if err := a.auditFor(ctx, db, &ev); err != nil {
			return "", err
		}
		if out, err = r.Handle(ctx, Tx{Q: a.q, DB: db, Links: links, Log: a.cfg.Logger}, ev); err != nil {
			return "", err
		}
	}
	if out != Applied {
		if err := a.q.EventLedgerSetOutcome(ctx, db, queries.EventLedgerSetOutcomeParams{
			Outcome: string(out), Source: ev.Source, EventID: ev.Envelope.ID,
		}); err != nil {
			return "", fmt.Errorf("ledger outcome: %w", err)
		}
	}
	return out, nil
}
