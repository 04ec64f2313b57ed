package consumers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// manualAnalyzes is how often table was analyzed by a command (syncd's),
// not by autovacuum, and the rows the planner counts in it.
func manualAnalyzes(t *testing.T, pool *pgxpool.Pool, table string) (count int64, rows float64) {
	t.Helper()
	err := pool.QueryRow(context.Background(),
		`SELECT s.analyze_count, c.reltuples FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
		 WHERE s.schemaname = current_schema() AND s.relname = $1`, table).Scan(&count, &rows)
	if err != nil {
		t.Fatal(err)
	}
	return count, rows
}

func modsSinceAnalyze(t *testing.T, pool *pgxpool.Pool, table string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT pg_stat_get_mod_since_analyze($1::regclass)`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// noAutovacuum keeps autovacuum off the tables (a fresh machine's
// throwaway cluster runs it), so the ANALYZEs counted are the keeper's own
// and its thresholds are those of the rows the test wrote.
func noAutovacuum(t *testing.T, pool *pgxpool.Pool, tables ...string) {
	t.Helper()
	for _, table := range tables {
		if _, err := pool.Exec(context.Background(), "ALTER TABLE "+table+" SET (autovacuum_enabled = false)"); err != nil {
			t.Fatal(err)
		}
	}
}

// insertUsers inserts n users and returns once the statistics count them
// (they are reported when the transaction ends, not at once).
func insertUsers(t *testing.T, pool *pgxpool.Pool, from, n int) {
	t.Helper()
	if _, err := pool.Exec(context.Background(),
		`INSERT INTO users (workos_user_id, email) SELECT 'user_stats_' || i, 'stats' || i || '@example.com' FROM generate_series($1::int, $2::int) AS i`,
		from, from+n-1); err != nil {
		t.Fatal(err)
	}
	syncdtest.Eventually(t, 30*time.Second, "the inserts counted", func() bool { return modsSinceAnalyze(t, pool, "users") >= int64(n) })
}

// A table the consumer writes is analyzed once its rows outgrew the
// statistics the planner has of it, and not while they still fit: a few
// rows leave it alone, a growth past half of what it held analyzes it,
// once.
func TestStatisticsFollowATableThatGrows(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	reg := prometheus.NewRegistry()
	c, err := consumers.New(consumers.Config{AnalyzeOff: true, Registerer: reg}, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	noAutovacuum(t, pool, "users")

	insertUsers(t, pool, 1, 10)
	got, err := c.AnalyzeStale(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, "users") {
		t.Fatalf("analyzed users after 10 inserts: %v", got)
	}

	insertUsers(t, pool, 11, 2000)
	syncdtest.Eventually(t, 30*time.Second, "users analyzed", func() bool {
		got, err := c.AnalyzeStale(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(got, "users")
	})
	if n, rows := manualAnalyzes(t, pool, "users"); n != 1 || rows != 2010 {
		t.Fatalf("users analyzed %d times, the planner counts %.0f rows; want once, 2010", n, rows)
	}
	if got, err := c.AnalyzeStale(ctx); err != nil || slices.Contains(got, "users") {
		t.Fatalf("analyzed %v again (%v) with nothing changed", got, err)
	}
	if got := metric(t, reg, "syncd_tables_analyzed_total", map[string]string{"table": "users"}); got != 1 {
		t.Fatalf("syncd_tables_analyzed_total{table=users} = %v, want 1", got)
	}
}

// A running consumer keeps the statistics of what it applies: a burst of
// new users into a new database is analyzed by the consumer, not a minute
// later by autovacuum.
func TestConsumerAnalyzesWhatItFills(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.ConsumerConfig.AnalyzeInterval = 50 * time.Millisecond
	noAutovacuum(t, h.Pool, "users", "webhook_events")
	h.StartConsumer()
	const n = 700
	for i := range n {
		h.PostWorkOS(syncdtest.WorkOSEvent(fmt.Sprintf("event_%d", i), "user.created",
			userData(fmt.Sprintf("user_%d", i), fmt.Sprintf("u%d@example.com", i), 1)))
	}
	awaitLedger(t, h.Pool, n)
	syncdtest.Eventually(t, 30*time.Second, "users and the ledger analyzed by the consumer", func() bool {
		users, _ := manualAnalyzes(t, h.Pool, "users")
		ledger, _ := manualAnalyzes(t, h.Pool, "webhook_events")
		return users >= 1 && ledger >= 1
	})
}

// A table someone else holds (another replica's ANALYZE, a VACUUM, a
// migration) is skipped without an error after the lock timeout, and
// analyzed in a later round.
func TestStatisticsSkipABusyTable(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	c, err := consumers.New(consumers.Config{AnalyzeOff: true}, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	noAutovacuum(t, pool, "users")
	insertUsers(t, pool, 1, 2000)

	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) // on a failure too: the pool closes only once it is back
	if _, err := holder.Exec(ctx, "LOCK TABLE users IN SHARE UPDATE EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	got, err := c.AnalyzeStale(ctx)
	if err != nil || slices.Contains(got, "users") {
		t.Fatalf("with users held: analyzed %v, %v; want it skipped without an error", got, err)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.AnalyzeStale(ctx); err != nil || !slices.Contains(got, "users") {
		t.Fatalf("released: analyzed %v, %v; want users", got, err)
	}
}

// The tables are found in a schema whose name needs quoting, as the app
// may keep them.
func TestStatisticsInAMixedCaseSchema(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA "Sync Data"; CREATE TABLE "Sync Data".users (id int) WITH (autovacuum_enabled = false); INSERT INTO "Sync Data".users SELECT generate_series(1, 600)`); err != nil {
		t.Fatal(err)
	}
	cfg := pool.Config()
	cfg.ConnConfig.RuntimeParams["search_path"] = `"Sync Data"`
	mixed, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer mixed.Close()
	c, err := consumers.New(consumers.Config{AnalyzeOff: true}, mixed, nil)
	if err != nil {
		t.Fatal(err)
	}
	syncdtest.Eventually(t, 30*time.Second, `"Sync Data".users analyzed`, func() bool {
		got, err := c.AnalyzeStale(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(got, "users")
	})
}
