package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
)

// The limit reference is the best SQL for the same final rows: per batch of
// 500 events, the ledger as one multi-row insert, one multi-row statement
// per table (one row per key, with the version guards: users,
// organizations, memberships, directory users and groups, the Stripe
// mirrors, meetings), the link queries once over the union of the rows
// touched, and for what is not set-based (deletes, directory activations
// and group memberships) the per-event statements syncd runs, in the same
// round trip. The statements are captured with a pgx tracer from an
// untimed run of the applier and replayed through a minimal loop — one
// pgx.Batch per transaction on one connection — without what only the
// applier needs: its reads of the stored rows and the locks that order
// concurrent batches (isRead; the limit knows the stored rows and runs
// alone) and its ledger lookup. No JetStream, no decoding, no handlers:
// what is left is Postgres writing the rows.

type stmt struct {
	sql  string
	args []any
}

// recorder captures every statement of a pool, in order.
type recorder struct {
	mu    sync.Mutex
	stmts []stmt
}

func (r *recorder) add(sql string, args []any) {
	r.mu.Lock()
	r.stmts = append(r.stmts, stmt{sql, append([]any(nil), args...)})
	r.mu.Unlock()
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.add(d.SQL, d.Args)
	return ctx
}
func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *recorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (r *recorder) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.add(d.SQL, d.Args)
}
func (r *recorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// transactions splits the captured statements at begin/commit.
func (r *recorder) transactions() [][]stmt {
	var out [][]stmt
	var cur []stmt
	for _, s := range r.stmts {
		switch strings.ToLower(strings.TrimSpace(s.sql)) {
		case "begin", "begin isolation level read committed":
			cur = nil
		case "commit":
			out = append(out, cur)
			cur = nil
		default:
			l := strings.ToLower(s.sql)
			if strings.HasPrefix(l, "savepoint") || strings.HasPrefix(l, "release savepoint") || isRead(s.sql) {
				continue
			}
			cur = append(cur, s)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// reads are the applier's statements that only read what is stored (the
// versions it folds against, the rows a meeting merges, the locks that
// order concurrent batches), by their sqlc names: the limit knows the
// stored rows and runs alone.
var reads = regexp.MustCompile(`^-- name: \w*(LockMany|LockPaymentIntents|LockNew|GetMany|GetForUpdate|IDsBy\w+) `)

func isRead(sql string) bool { return reads.MatchString(strings.TrimSpace(sql)) }

func benchLimit(ctx context.Context, o options, evs []consumers.Event) (float64, string, error) {
	// Capture: apply the events as the consumer does, batch by batch.
	pool, drop, err := createDB(ctx, o.adminURL, "syncd_bench_capture")
	if err != nil {
		return 0, "", err
	}
	rec := &recorder{}
	cfg := pool.Config()
	pool.Close()
	cfg.ConnConfig.Tracer = rec
	traced, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		drop()
		return 0, "", err
	}
	a, err := consumers.NewApplier(consumers.ApplierConfig{}, traced)
	if err != nil {
		drop()
		return 0, "", err
	}
	const batch = 500
	for i := 0; i < len(evs); i += batch {
		if _, err := a.Apply(ctx, evs[i:min(i+batch, len(evs))]); err != nil {
			drop()
			return 0, "", err
		}
	}
	traced.Close()
	drop()
	txs, err := bestShapes(rec.transactions())
	if err != nil {
		return 0, "", err
	}

	// Replay the same statements, one pgx.Batch per transaction.
	lpool, ldrop, err := createDB(ctx, o.adminURL, "syncd_bench_limit")
	if err != nil {
		return 0, "", err
	}
	defer ldrop()
	conn, err := lpool.Acquire(ctx)
	if err != nil {
		return 0, "", err
	}
	defer conn.Release()
	if err := quiesce(ctx, o.adminURL); err != nil {
		return 0, "", err
	}
	start := time.Now()
	for _, tx := range txs {
		b := &pgx.Batch{}
		b.Queue("begin")
		for _, s := range tx {
			b.Queue(s.sql, s.args...)
		}
		b.Queue("commit")
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return 0, "", fmt.Errorf("limit reference: %w", err)
		}
	}
	took := time.Since(start)
	n := 0
	for _, tx := range txs {
		n += len(tx)
	}
	return float64(len(evs)) / took.Seconds(), fmt.Sprintf("%d statements in %d transactions of %d events, one pgx.Batch each", n, len(txs), batch), nil
}
