package retention_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/syncd/syncd/retention"
	"github.com/syncd/syncd/syncdtest"
)

// TestPrunesAuditRowsPastTheirRetention: audit rows older than
// AuditRetention go, in batches; younger ones stay.
func TestPrunesAuditRowsPastTheirRetention(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	for i, age := range []time.Duration{400 * day, 366 * day, 364 * day, day} {
		exec(t, pool, `INSERT INTO audit_logs (occurred_at, action, resource_type, resource_id) VALUES ($1, 'updated', 'users', $2)`,
			now.Add(-age), string(rune('a'+i)))
	}
	// Batches of one: the pass keeps going until a batch comes back short.
	p := newPruner(t, retention.Config{Now: fixedClock(now), BatchSize: 1, Pause: time.Nanosecond, Duty: 1}, pool)
	res, err := p.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res[retention.TableAuditLogs] != 2 {
		t.Errorf("pruned %v, want 2 audit rows", res)
	}
	if got := strs(t, pool, `SELECT resource_id FROM audit_logs ORDER BY resource_id`); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("audit rows left %v, want the two younger than 365 days", got)
	}

	// A shorter retention takes more.
	p = newPruner(t, retention.Config{Now: fixedClock(now), AuditRetention: 30 * day}, pool)
	if _, err := p.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strs(t, pool, `SELECT resource_id FROM audit_logs`); !slices.Equal(got, []string{"d"}) {
		t.Errorf("audit rows left %v with 30 days' retention", got)
	}
	if _, err := retention.New(retention.Config{AuditRetention: time.Minute}, pool); err == nil {
		t.Error("an audit retention of a minute was accepted")
	}
}

// A pass over an audit trail with nothing old enough to go reads a batch
// of it, not all of it: the trail holds a year of changes, and every pass
// of the first year would otherwise read it whole.
func TestAuditPruneReadsABatchNotTheTrail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One connection: the pass's statements and the statistics flush run
	// on the same backend.
	pool := syncdtest.OneConn(t)
	const rows, batch = 20000, 500
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	exec(t, pool, `INSERT INTO audit_logs (occurred_at, action, resource_type, resource_id)
		SELECT $1::timestamptz - interval '300 days' + g * interval '1 minute', 'updated', 'users', 'u' || g
		FROM generate_series(1, $2::int) g`, now, rows)
	// Rows of audit_logs read so far, by scans of the table or through
	// its indexes, once this backend's counters are flushed.
	read := func() int {
		exec(t, pool, `SELECT pg_stat_force_next_flush()`)
		return count(t, pool, `SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::int FROM pg_stat_user_tables WHERE relname = 'audit_logs'`)
	}
	before := read()
	p := newPruner(t, retention.Config{Now: fixedClock(now), BatchSize: batch, Pause: time.Nanosecond, Duty: 1}, pool)
	res, err := p.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res[retention.TableAuditLogs] != 0 {
		t.Fatalf("pruned %v, want no audit row (all younger than 365 days)", res)
	}
	if got := read() - before; got > 2*batch {
		t.Errorf("the pass read %d audit rows of %d, want about a batch (%d)", got, rows, batch)
	}
}
