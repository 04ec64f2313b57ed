package retention_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncd/syncd/retention"
	"github.com/syncd/syncd/syncdtest"
)

const day = 24 * time.Hour

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func strs(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return out
}

// ledgerRow stores a ledger row applied at the given time.
func ledgerRow(t *testing.T, pool *pgxpool.Pool, source, id string, appliedAt time.Time) {
	t.Helper()
	exec(t, pool, `INSERT INTO webhook_events (source, event_id, event_type, applied_at, outcome) VALUES ($1, $2, 'user.updated', $3, 'applied')`, source, id, appliedAt)
}

func fixedClock(now time.Time) func() time.Time { return func() time.Time { return now } }

func newPruner(t *testing.T, cfg retention.Config, pool *pgxpool.Pool) *retention.Pruner {
	t.Helper()
	p, err := retention.New(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	cfg := retention.Config{}.Resolved()
	if cfg.Retention != 35*day || cfg.ReplayWindow != 30*day {
		t.Errorf("default retention %s over a replay window of %s, want 840h over 720h", cfg.Retention, cfg.ReplayWindow)
	}
	if got := (retention.Config{ReplayWindow: 60 * day}).Resolved().Retention; got != 65*day {
		t.Errorf("retention with a 60-day replay window: %s, want the window plus the margin (1560h)", got)
	}
	if got := (retention.Config{ReplayWindow: 2 * time.Hour}).Resolved().Retention; got != 35*day {
		t.Errorf("retention with a 2h replay window: %s, want Stripe's 30 days plus the margin (840h)", got)
	}
	if got := (retention.Config{}).TombstoneRetention(); got != 210*day {
		t.Errorf("tombstone retention %s, want 90 + 30 + 90 days", got)
	}
}

// Whatever the retention asked for, no ledger row younger than the replay
// window goes: a setting below it is refused with the reason, and the
// pruner's own cutoff never passes the window either.
func TestNeverPrunesYoungerThanReplayWindow(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	const window = 30 * day
	ages := []time.Duration{time.Minute, time.Hour, 10 * day, window - time.Hour, window - time.Second, window + time.Hour, 40 * day, 400 * day}
	for _, src := range []string{"workos", "stripe"} {
		for i, age := range ages {
			ledgerRow(t, pool, src, fmt.Sprintf("ev_%d", i), now.Add(-age))
		}
	}
	young := func() int {
		return count(t, pool, `SELECT count(*) FROM webhook_events WHERE applied_at > $1`, now.Add(-window))
	}
	wantYoung := young()
	if wantYoung != 2*5 {
		t.Fatalf("%d young rows, want 10", wantYoung)
	}
	for _, setting := range []time.Duration{time.Nanosecond, time.Hour, 3 * day, window - time.Second, window, window + time.Minute, 35 * day, 0, 365 * day} {
		cfg := retention.Config{Retention: setting, ReplayWindow: window, Now: fixedClock(now), Pause: time.Nanosecond, Duty: 1}
		p, err := retention.New(cfg, pool)
		if setting != 0 && setting < window {
			if err == nil || !errors.Is(err, retention.ErrConfig) || !strings.Contains(err.Error(), "shorter than the replay window") || !strings.Contains(err.Error(), "re-apply") {
				t.Errorf("retention %s: error %v, want a refusal saying it is shorter than the replay window and why", setting, err)
			}
			// The cutoff itself never passes the window, even past validation.
			p = newPruner(t, retention.Config{ReplayWindow: window, Now: fixedClock(now), Pause: time.Nanosecond, Duty: 1}, pool)
			retention.SetRetention(p, setting)
		} else if err != nil {
			t.Fatalf("retention %s: %v", setting, err)
		}
		if _, err := p.Prune(context.Background()); err != nil {
			t.Fatalf("retention %s: prune: %v", setting, err)
		}
		if got := young(); got != wantYoung {
			t.Fatalf("retention %s: %d rows younger than the replay window left, want %d", setting, got, wantYoung)
		}
	}
	// With a 365-day retention last, what is left is what 30 days allowed:
	// the young rows, and nothing older than the largest accepted setting.
	left := count(t, pool, `SELECT count(*) FROM webhook_events`)
	if left != wantYoung {
		t.Errorf("%d rows left, want the %d younger than the window (the 30-day setting pruned the rest)", left, wantYoung)
	}
}

// Under a steady stream of events and a short retention the ledger stops
// growing: after the retention has passed once, its size stays at about a
// retention's worth of events, however long the load lasts — in rows, and
// in the table's bytes, as vacuum (autovacuum's work; the test server runs
// without it) hands the space of pruned rows to new ones. (Its indexes
// reuse their emptied pages too, but only once no snapshot anywhere on the
// server predates their deletion, which a shared test server cannot
// promise; the table's bytes depend on this database alone.)
func TestLedgerStopsGrowingUnderSteadyLoad(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := start
	const (
		perStep = 40
		step    = 10 * time.Minute
		steps   = 150 // 25 hours
		keep    = 2 * time.Hour
	)
	p := newPruner(t, retention.Config{Retention: keep, ReplayWindow: time.Hour, BatchSize: 25, Pause: time.Nanosecond, Duty: 1, Now: func() time.Time { return now }}, pool)
	var sizes, heap []int
	for i := range steps {
		now = start.Add(time.Duration(i) * step)
		// Half the events of a step from each source, applied over the step.
		exec(t, pool, `INSERT INTO webhook_events (source, event_id, event_type, applied_at, outcome)
			SELECT CASE WHEN g % 2 = 0 THEN 'workos' ELSE 'stripe' END, 'ev_' || lpad($1::int::text, 6, '0') || '_' || lpad(g::text, 3, '0'), 'user.updated',
			       $2::timestamptz - (g * $3::float8) * interval '1 second', 'applied'
			FROM generate_series(0, $4::int - 1) g`, i, now, step.Seconds()/perStep, perStep)
		if _, err := p.Prune(context.Background()); err != nil {
			t.Fatal(err)
		}
		exec(t, pool, `VACUUM webhook_events`)
		sizes = append(sizes, count(t, pool, `SELECT count(*) FROM webhook_events`))
		heap = append(heap, count(t, pool, `SELECT pg_relation_size('webhook_events')`))
	}
	bound := perStep * int(keep/step+1)
	steady := int(keep/step) + 1
	for i, n := range sizes[steady:] {
		if n > bound {
			t.Fatalf("after step %d the ledger holds %d rows, more than a retention's worth (%d)", steady+i, n, bound)
		}
	}
	if last, first := sizes[len(sizes)-1], sizes[steady]; last != first {
		t.Errorf("ledger size drifts under a steady load: %d rows after %s, %d after %s", first, time.Duration(steady)*step, last, time.Duration(steps-1)*step)
	}
	if last, first := heap[len(heap)-1], heap[steady]; last > first {
		t.Errorf("ledger table grows under a steady load: %d bytes after %s, %d after %s", first, time.Duration(steady)*step, last, time.Duration(steps-1)*step)
	}
	if total := perStep * steps; sizes[len(sizes)-1]*10 > total {
		t.Errorf("%d rows left of %d written: retention hardly pruned", sizes[len(sizes)-1], total)
	}
}

// Tombstones go once no event that could undo them can still arrive, and
// only those nothing points at; live rows and young tombstones stay, as do
// unfinished backfill cursors.
func TestPrunesOldTombstonesAndFinishedCursorsOnly(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := newPruner(t, retention.Config{Now: fixedClock(now), Pause: time.Nanosecond, Duty: 1}, pool)
	horizon := p.Config().TombstoneRetention()
	old, young := now.Add(-horizon-day), now.Add(-horizon+day)
	ancient := now.Add(-5 * 365 * day)

	customer := func(id string, deleted *time.Time) {
		exec(t, pool, `INSERT INTO stripe_customers (stripe_customer_id, stripe_created, stripe_event_rank, stripe_event_id, deleted_at) VALUES ($1, $2, 2, 'evt_' || $1, $3)`, id, ancient, deleted)
	}
	customer("cus_old", &old)
	customer("cus_young", &young)
	customer("cus_live", nil)
	customer("cus_linked", &old)
	exec(t, pool, `INSERT INTO users (workos_user_id, stripe_customer_id) VALUES ('user_1', 'cus_linked')`)

	subscription := func(id string, deleted *time.Time) {
		exec(t, pool, `INSERT INTO stripe_subscriptions (stripe_subscription_id, status, stripe_created, stripe_event_rank, stripe_event_id, deleted_at) VALUES ($1, 'canceled', $2, 2, 'evt_' || $1, $3)`, id, ancient, deleted)
	}
	subscription("sub_old", &old)
	subscription("sub_young", &young)
	subscription("sub_live", nil)
	subscription("sub_linked", &old)
	exec(t, pool, `INSERT INTO organizations (workos_org_id, stripe_subscription_id) VALUES ('org_1', 'sub_linked')`)

	exec(t, pool, `INSERT INTO directories (workos_directory_id) VALUES ('dir_1')`)
	exec(t, pool, `INSERT INTO directory_groups (workos_directory_group_id, workos_directory_id) VALUES ('grp_1', 'dir_1')`)
	for _, u := range []string{"du_removed_old", "du_removed_young", "du_live", "du_parent_gone"} {
		exec(t, pool, `INSERT INTO directory_users (workos_directory_user_id, workos_directory_id) VALUES ($1, 'dir_1')`, u)
	}
	member := func(user string, removed, parentDeleted *time.Time) {
		exec(t, pool, `INSERT INTO directory_group_members (workos_directory_group_id, workos_directory_user_id, workos_directory_id, workos_event_at, removed_at, parent_deleted_at) VALUES ('grp_1', $1, 'dir_1', $2, $3, $4)`, user, ancient, removed, parentDeleted)
	}
	member("du_removed_old", &old, nil)
	member("du_removed_young", &young, nil)
	member("du_live", nil, nil)
	member("du_parent_gone", nil, &old)

	cursor := func(key string, started time.Time, completed *time.Time) {
		exec(t, pool, `INSERT INTO backfill_cursors (provider, window_key, range_start, range_end, started_at, completed_at) VALUES ('stripe', $1, $2, $2, $2, $3)`, key, started, completed)
	}
	done40, done10 := now.Add(-40*day), now.Add(-10*day)
	cursor("done_40d", done40, &done40)
	cursor("done_10d", done10, &done10)
	cursor("unfinished_100d", now.Add(-100*day), nil)

	res, err := p.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := retention.Result{retention.TableStripeCustomers: 1, retention.TableStripeSubscription: 1, retention.TableGroupMembers: 2, retention.TableBackfillCursors: 1}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("pruned %v, want %v", res, want)
	}
	for q, want := range map[string][]string{
		`SELECT stripe_customer_id FROM stripe_customers ORDER BY 1`:                         []string{"cus_linked", "cus_live", "cus_young"},
		`SELECT stripe_subscription_id FROM stripe_subscriptions ORDER BY 1`:                 []string{"sub_linked", "sub_live", "sub_young"},
		`SELECT workos_directory_user_id FROM directory_group_members ORDER BY 1`:            []string{"du_live", "du_removed_young"},
		`SELECT window_key FROM backfill_cursors ORDER BY 1`:                                 []string{"done_10d", "unfinished_100d"},
		`SELECT workos_directory_user_id FROM directory_users ORDER BY 1 LIMIT 1`:            []string{"du_live"},
		`SELECT workos_user_id FROM users UNION ALL SELECT workos_org_id FROM organizations`: []string{"user_1", "org_1"},
	} {
		if got := strs(t, pool, q); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
}

// The background loop prunes at start and on its interval, counts what it
// deleted by table, and stops with its context.
func TestRunPrunesInTheBackground(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	now := time.Now()
	for i := range 30 {
		ledgerRow(t, pool, "stripe", fmt.Sprintf("evt_old_%d", i), now.Add(-40*day))
	}
	ledgerRow(t, pool, "stripe", "evt_new", now)
	reg := prometheus.NewRegistry()
	p := newPruner(t, retention.Config{BatchSize: 7, Pause: time.Millisecond, Duty: 1, Interval: 20 * time.Millisecond, Registerer: reg}, pool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	syncdtest.Eventually(t, 10*time.Second, "old ledger rows pruned", func() bool {
		return count(t, pool, `SELECT count(*) FROM webhook_events`) == 1
	})
	// A row that ages past the retention goes at a later pass.
	exec(t, pool, `UPDATE webhook_events SET applied_at = applied_at - interval '36 days'`)
	syncdtest.Eventually(t, 10*time.Second, "aged row pruned", func() bool {
		return count(t, pool, `SELECT count(*) FROM webhook_events`) == 0
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if got := testutil.ToFloat64(retention.Pruned(p).WithLabelValues(retention.TableLedger)); got != 31 {
		t.Errorf("syncd_retention_pruned_rows_total{table=webhook_events} = %v, want 31", got)
	}
	if n, err := testutil.GatherAndCount(reg, "syncd_retention_pruned_rows_total"); err != nil || n != len(retention.Tables) {
		t.Errorf("pruned counter series: %d, %v; want one per table (%d)", n, err, len(retention.Tables))
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []struct {
		cfg  retention.Config
		want string
	}{
		{retention.Config{BatchSize: -1}, "batch size"},
		{retention.Config{BatchSize: retention.MaxBatchSize + 1}, "batch size"},
		{retention.Config{Pause: -time.Second}, "pause"},
		{retention.Config{Interval: -time.Second}, "interval"},
		{retention.Config{Duty: 1.5}, "duty"},
		{retention.Config{Duty: -0.1}, "duty"},
		{retention.Config{ReplayWindow: 48 * time.Hour, Retention: 47 * time.Hour}, "shorter than the replay window"},
		{retention.Config{ReplayWindow: -time.Hour}, "replay window"},
	} {
		err := c.cfg.Check()
		if err == nil || !errors.Is(err, retention.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.cfg, err, c.want)
		}
	}
	if err := (retention.Config{ReplayWindow: 48 * time.Hour, Retention: 48 * time.Hour}).Check(); err != nil {
		t.Errorf("retention equal to the replay window: %v", err)
	}
}

// After a batch the pruner waits long enough to keep its share of time
// under Duty, and never less than Pause — unless the batch's rows span so
// little time that waiting that long would let rows age past the cutoff
// faster than it deletes them: then it waits a quarter of their span.
func TestPauseKeepsTheDuty(t *testing.T) {
	p := newPruner(t, retention.Config{Pause: 100 * time.Millisecond, Duty: 0.02}, nil)
	for _, c := range []struct{ took, span, want time.Duration }{
		{time.Millisecond, time.Hour, 100 * time.Millisecond},
		{10 * time.Millisecond, time.Hour, 490 * time.Millisecond},
		{200 * time.Millisecond, time.Hour, 9800 * time.Millisecond},
		{10 * time.Millisecond, 0, 490 * time.Millisecond}, // span unknown: the duty's
		// A heavy steady load: a batch of rows applied within 1.2 s.
		{10 * time.Millisecond, 1200 * time.Millisecond, 300 * time.Millisecond},
		// Never under Pause.
		{10 * time.Millisecond, 200 * time.Millisecond, 100 * time.Millisecond},
	} {
		if got := retention.PauseAfter(p, c.took, c.span, 0); got != c.want {
			t.Errorf("pause after a %s batch spanning %s: %s, want %s", c.took, c.span, got, c.want)
		}
	}
	// A backlog's batch, its rows applied within a millisecond but days
	// behind the cutoff: the duty's pace, not the steady state's.
	if got := retention.PauseAfter(p, 10*time.Millisecond, time.Millisecond, 48*time.Hour); got != 490*time.Millisecond {
		t.Errorf("pause after a dense backlog batch: %s, want the duty's 490ms", got)
	}
}
