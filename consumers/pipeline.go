package consumers

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/syncd/syncd/queries"
)

// The events of a batch whose routes neither read nor apply set-based
// (deletes, memberships, directories) are applied by queueing every
// statement their handlers issue and sending them to Postgres in one round
// trip (pgx.Batch), instead of one round trip each. That works for
// handlers whose statements do not depend on one another's results: the
// only result they look at is whether a version-guarded upsert matched a
// row (stale), and the pipeline reports that after the fact. Handlers that
// read declare it in their route (Reads) and run directly, unless the
// route applies set-based (the meetings, which merge the rows they find:
// meetings_sets.go).

// errNotPipelined is what a pipelined handler gets if it tries to read
// from a pipeline that is not bound to a transaction.
var errNotPipelined = errors.New("consumers: a pipelined handler tried to read; run it directly")

type stmtKind uint8

const (
	stmtExec   stmtKind = iota
	stmtUpsert          // a version-guarded upsert: no row means stale
)

// pipeline is a queries.DBTX that queues statements instead of running
// them.
type pipeline struct {
	batch  pgx.Batch
	owner  []int // event index of each statement
	kind   []stmtKind
	cur    int
	claims queries.EventLedgerClaimParams // ledger rows, sent as one statement

	// tx, when bound, lets a queued handler read (Query): what is queued
	// so far is sent first, so the read sees it. flushed gathers the stale
	// events of those sends for the final one to report.
	q       *queries.Queries
	tx      pgx.Tx
	flushed []int
}

// bind lets the pipeline's handlers read in tx (see Query).
func (p *pipeline) bind(q *queries.Queries, tx pgx.Tx) { p.q, p.tx = q, tx }

// start queues the statements that follow for event i.
func (p *pipeline) start(i int) { p.cur = i }

// claim adds the event's ledger row, with the outcome known before it is
// applied (applied or ignored; stale is marked after the send).
func (p *pipeline) claim(ev Event, out Outcome) {
	c := &p.claims
	c.Sources = append(c.Sources, ev.Source)
	c.EventIds = append(c.EventIds, ev.Envelope.ID)
	c.EventTypes = append(c.EventTypes, ev.Envelope.Type)
	c.ProviderAts = append(c.ProviderAts, rfc3339(ev.Envelope.Created))
	c.ReceivedAts = append(c.ReceivedAts, rfc3339(ev.ReceivedAt))
	c.Outcomes = append(c.Outcomes, string(out))
	c.StreamSeqs = append(c.StreamSeqs, int64(ev.Seq))
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	// Cut to microseconds as pgx does when it sends a time: Postgres would
	// round the text form instead.
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

func (p *pipeline) queue(k stmtKind, sql string, args []any) {
	p.batch.Queue(sql, args...)
	p.owner = append(p.owner, p.cur)
	p.kind = append(p.kind, k)
}

func (p *pipeline) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	p.queue(stmtExec, sql, args)
	return pgconn.CommandTag{}, nil
}

// Query is a read in the middle of queued statements (the link flush of a
// delete, when a link first notes what the rows hold): the queue is sent,
// then the read runs in the transaction. It costs a round trip, where
// refusing it would redo the whole batch event by event.
func (p *pipeline) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if p.tx == nil {
		return nil, errNotPipelined
	}
	if _, err := p.sendQueued(ctx, p.q, p.tx); err != nil {
		return nil, err
	}
	return p.tx.Query(ctx, sql, args...)
}

func (p *pipeline) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	p.queue(stmtUpsert, sql, args)
	return deferredRow{}
}

// deferredRow stands for a row that is read when the batch is sent.
type deferredRow struct{}

func (deferredRow) Scan(...any) error { return nil }

// pipelineResult is what sending a pipeline found out.
type pipelineResult struct {
	stale    []int // event indexes
	failedAt int   // event whose statement failed, or -1
}

// send runs the ledger claims and then the queued statements in tx, in
// order, reading each result, and reports the stale events of this send
// and of the flushes before it.
func (p *pipeline) send(ctx context.Context, q *queries.Queries, tx pgx.Tx) (pipelineResult, error) {
	r := pipelineResult{failedAt: -1}
	failedAt, err := p.sendQueued(ctx, q, tx)
	r.stale, p.flushed = p.flushed, nil
	if err != nil {
		r.failedAt = failedAt
	}
	return r, err
}

// sendQueued sends what is queued and empties the queue (still bound),
// adding the stale events to flushed. On an error, it returns the event
// whose statement failed (-1: the ledger claims).
func (p *pipeline) sendQueued(ctx context.Context, q *queries.Queries, tx pgx.Tx) (failedAt int, _ error) {
	if p.empty() {
		return -1, nil
	}
	if len(p.claims.EventIds) > 0 {
		var head pipeline
		_ = q.EventLedgerClaim(ctx, &head, p.claims)
		p.batch.QueuedQueries = append(head.batch.QueuedQueries, p.batch.QueuedQueries...)
		p.owner = append([]int{-1}, p.owner...)
		p.kind = append([]stmtKind{stmtExec}, p.kind...)
	}
	br := tx.SendBatch(ctx, &p.batch)
	stale := p.flushed
	for j, k := range p.kind {
		var err error
		if k == stmtExec {
			_, err = br.Exec()
		} else {
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				n := 0
				for rows.Next() {
					n++
				}
				rows.Close()
				if err = rows.Err(); err == nil && n == 0 {
					stale = append(stale, p.owner[j])
				}
			}
		}
		if err != nil {
			_ = br.Close()
			return p.owner[j], err
		}
	}
	*p = pipeline{q: p.q, tx: p.tx, flushed: stale, cur: p.cur}
	return -1, br.Close()
}

func (p *pipeline) empty() bool { return len(p.kind) == 0 && len(p.claims.EventIds) == 0 }

// quiet returns tx for statements whose result is not the event's outcome:
// in a pipeline their rows are discarded instead of counting as the stale
// signal (a delete that stores the deleted object's data at its version
// applies the tombstone whether or not that data was newer).
func quiet(tx Tx) Tx {
	if p, ok := tx.DB.(*pipeline); ok {
		tx.DB = quietPipeline{p}
	}
	return tx
}

type quietPipeline struct{ p *pipeline }

func (q quietPipeline) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return q.p.Exec(ctx, sql, args...)
}

func (q quietPipeline) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return q.p.Query(ctx, sql, args...)
}

func (q quietPipeline) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	q.p.queue(stmtExec, sql, args)
	return deferredRow{}
}
