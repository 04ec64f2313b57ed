package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/stream"
)

type ledgerResult struct {
	events   int
	rounds   int
	rows     int64
	fillTook time.Duration
	// Apply of the same events into an empty database and into one whose
	// ledger holds rows, right after the fill.
	empty, full float64
	// Retention pruning beside apply into the full database.
	retention retentionResult
}

// benchLedger measures how apply depends on the ledger's history, and what
// retention running beside it costs.
func benchLedger(ctx context.Context, o options, fx fixtures) (ledgerResult, error) {
	evs := fx.mix(o.entities, 21)
	r := ledgerResult{events: len(evs), rows: o.ledgerRows}
	dir, err := os.MkdirTemp("", "syncd-bench-ledger-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir})
	if err != nil {
		return r, err
	}
	defer conn.Close()
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		return r, err
	}
	if err := prefill(ctx, conn.JS, evs); err != nil {
		return r, err
	}

	// Two rounds, alternating, the best of each reported: one drain of a
	// few seconds on a shared machine varies by more than the target's
	// margin. Both full ledgers are filled (and checkpointed) before the
	// first drain, so each is drained right after its fill. One round in
	// long mode, whose fill takes minutes.
	fulls := make([]*pgxpool.Pool, 2)
	if o.ledgerRows > 10_000_000 {
		fulls = fulls[:1]
	}
	for i := range fulls {
		full, drop, err := createDB(ctx, o.adminURL, fmt.Sprintf("syncd_bench_ledger_full%d", i))
		if err != nil {
			return r, err
		}
		defer drop()
		start := time.Now()
		if err := fillLedger(ctx, full, o.ledgerRows); err != nil {
			return r, fmt.Errorf("fill ledger: %w", err)
		}
		r.fillTook = time.Since(start)
		fmt.Printf("ledger: filled %d rows in %s\n", o.ledgerRows, r.fillTook.Round(time.Second))
		fulls[i] = full
	}
	for i, full := range fulls {
		empty, drop, err := createDB(ctx, o.adminURL, "syncd_bench_ledger_empty")
		if err != nil {
			return r, err
		}
		if err := fromTheStart(ctx, conn.JS, i > 0); err != nil {
			drop()
			return r, err
		}
		took, err := drain(ctx, empty, conn.JS)
		drop()
		if err != nil {
			return r, err
		}
		r.empty = max(r.empty, float64(len(evs))/took.Seconds())
		if err := fromTheStart(ctx, conn.JS, true); err != nil {
			return r, err
		}
		if took, err = drain(ctx, full, conn.JS); err != nil {
			return r, err
		}
		r.full = max(r.full, float64(len(evs))/took.Seconds())
	}
	r.rounds = len(fulls)
	full := fulls[len(fulls)-1]

	r.retention, err = benchRetention(ctx, o, fx, full, conn.JS, max(r.full, r.empty, steadyRate))
	return r, err
}

// fromTheStart makes the durable consumer deliver the stream again from
// its first message (again: the durable has consumed it before).
func fromTheStart(ctx context.Context, js jetstream.JetStream, again bool) error {
	if !again {
		return nil
	}
	if err := js.DeleteConsumer(ctx, stream.Webhooks, stream.Consumer); err != nil {
		return err
	}
	return stream.Ensure(ctx, js, stream.Config{}, stream.ConsumerConfig{})
}

// fillLedger stores rows ledger rows as a steady load of steadyRate events
// a second would have left them, up to a minute ago, ids in time order as
// both providers' are: the newest rows of a ledger at retention under
// that load, so that a pruner whose clock puts the cutoff at the oldest
// row deletes rows as fast as they age in the steady state (retention.go). The
// indexes are rebuilt after the insert from their own definitions (so
// whatever the migrations say), which is several times faster than
// maintaining them row by row, and checkpointed. Nothing runs ANALYZE: the
// measurement starts right after, with only what autovacuum has caught up
// on by then.
func fillLedger(ctx context.Context, pool *pgxpool.Pool, rows int64) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	type def struct{ name, sql string }
	var indexes []def
	var pk def
	rs, err := c.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'webhook_events'`)
	if err != nil {
		return err
	}
	for rs.Next() {
		var d def
		if err := rs.Scan(&d.name, &d.sql); err != nil {
			return err
		}
		indexes = append(indexes, d)
	}
	if rs.Err() != nil {
		return rs.Err()
	}
	if err := c.QueryRow(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'webhook_events'::regclass AND contype = 'p'`).Scan(&pk.name, &pk.sql); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "ALTER TABLE webhook_events DROP CONSTRAINT "+pgx.Identifier{pk.name}.Sanitize()); err != nil {
		return err
	}
	for _, d := range indexes {
		if d.name == pk.name {
			continue
		}
		if _, err := c.Exec(ctx, "DROP INDEX "+pgx.Identifier{d.name}.Sanitize()); err != nil {
			return err
		}
	}
	const chunk = 2_000_000
	for lo := int64(1); lo <= rows; lo += chunk {
		hi := min(lo+chunk-1, rows)
		if _, err := c.Exec(ctx, `
			INSERT INTO webhook_events (source, event_id, event_type, provider_at, received_at, applied_at, outcome, stream_seq)
			SELECT CASE WHEN g % 2 = 0 THEN 'stripe' ELSE 'workos' END,
			       CASE WHEN g % 2 = 0 THEN 'evt_1' || lpad(to_hex(g), 19, '0') ELSE 'event_01' || lpad(to_hex(g), 18, '0') END,
			       CASE WHEN g % 2 = 0 THEN 'customer.updated' ELSE 'user.updated' END,
			       t, t, t, CASE WHEN g % 50 = 0 THEN 'stale' ELSE 'applied' END, g
			FROM generate_series($1::bigint, $2::bigint) g,
			     LATERAL (SELECT now() - interval '1 minute' - (($3 - g)::float8 / $4::float8) * interval '1 second' AS t) x`,
			lo, hi, rows, steadyRate); err != nil {
			return err
		}
	}
	if _, err := c.Exec(ctx, "ALTER TABLE webhook_events ADD CONSTRAINT "+pgx.Identifier{pk.name}.Sanitize()+" "+pk.sql); err != nil {
		return err
	}
	for _, d := range indexes {
		if d.name == pk.name {
			continue
		}
		if _, err := c.Exec(ctx, d.sql); err != nil {
			return err
		}
	}
	// The fill's gigabytes are written out before the drain, so that it
	// measures the ledger's size and its missing statistics rather than
	// the checkpointer catching up on a bulk load.
	if _, err := c.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint after the fill: %w", err)
	}
	return nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(max(len(xs), 1))
}
