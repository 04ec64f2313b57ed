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
