package consumers

// Planner statistics. The applier's statements (the links above all) are
// planned for each table as big as its last ANALYZE saw it. Postgres's
// autovacuum looks at a database once a minute and analyzes a table once a
// tenth of it changed, so a table growing from nothing (a new deployment,
// a backfill or a replay into a new database) is planned meanwhile as the
// handful of rows it was: on the bench, a link statement then scanned
// users once per key, 50–60 ms a batch where fresh statistics give a few.
// So the consumer analyzes the tables it writes as soon as they have
// outgrown their statistics, and leaves the steady state to autovacuum.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/queries"
)

const (
	// AnalyzeIntervalDefault is how often the consumer looks for tables
	// whose statistics lag behind.
	AnalyzeIntervalDefault = 2 * time.Second
	// A table is analyzed once its changes since the last ANALYZE reach
	// analyzeMinChanges plus analyzeScale times the rows counted then:
	// while it grows, each time it has grown by half; afterwards updates
	// over half its rows do the same (a quick sample, at most every
	// interval), and autovacuum's tenth does the rest.
	analyzeMinChanges = 500
	analyzeScale      = 0.5
	// analyzeLockTimeout: ANALYZE waits for no one (a VACUUM, another
	// replica's ANALYZE, an index build): the next round tries again. Well
	// under deadlock_timeout, so a wait never gets autovacuum cancelled.
	analyzeLockTimeout = "100ms"
)

// statisticsTables are the tables the consumer writes: every table a route
// writes or stubs, the event ledger and the audit trail its triggers fill.
func statisticsTables() []string {
	tables := []string{"webhook_events", "audit_logs"}
	for _, r := range Routes() {
		for _, t := range append(slices.Clone(r.Writes), r.Stubs...) {
			tables = append(tables, string(t))
		}
	}
	slices.Sort(tables)
	return slices.Compact(tables)
}

// statistics keeps the planner statistics of the consumer's tables.
type statistics struct {
	pool     *pgxpool.Pool
	tables   []string
	log      *slog.Logger
	analyzed *prometheus.CounterVec
}

func newStatistics(pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer) (*statistics, error) {
	s := &statistics{pool: pool, tables: statisticsTables(), log: log,
		analyzed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_tables_analyzed_total",
			Help: "ANALYZE runs on a table whose rows outgrew its planner statistics, by table.",
		}, []string{"table"}),
	}
	if err := reg.Register(s.analyzed); err != nil {
		return nil, err
	}
	return s, nil
}

// keep analyzes stale tables every interval until ctx is done. A failure
// is logged and tried again next round: statistics are an optimization,
// never a reason to stop applying.
func (s *statistics) keep(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		_, err := s.analyzeStale(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing:
			// Once per outage: the consumer reports Postgres being away.
			s.log.Warn("planner statistics", "err", err)
			failing = true
		case err != nil:
			s.log.Debug("planner statistics", "err", err)
		default:
			failing = false
		}
	}
}

// analyzeStale analyzes the tables that outgrew their statistics and
// returns them.
func (s *statistics) analyzeStale(ctx context.Context) ([]string, error) {
	stale, err := queries.New().StatisticsStale(ctx, s.pool, queries.StatisticsStaleParams{
		MinChanges: analyzeMinChanges, Scale: analyzeScale, Tables: s.tables,
	})
	if err != nil {
		return nil, fmt.Errorf("find stale statistics: %w", err)
	}
	var done []string
	var errs []error
	for _, table := range stale {
		started := time.Now()
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+analyzeLockTimeout+"'"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "ANALYZE "+pgx.Identifier{table}.Sanitize())
			return err
		})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
			// Someone else is analyzing or vacuuming it (another replica's
			// keeper, autovacuum): that does the job.
			s.log.Debug("analyze skipped: the table is busy", "table", table)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("analyze %s: %w", table, err))
			continue
		}
		s.analyzed.WithLabelValues(table).Inc()
		s.log.Debug("analyzed", "table", table, "took", time.Since(started))
		done = append(done, table)
	}
	return done, errors.Join(errs...)
}

// start runs keep in the background; stop ends it and waits for it.
func (s *statistics) start(ctx context.Context, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.keep(ctx, interval)
	}()
	return func() { cancel(); <-done }
}

// StartStatistics keeps the planner statistics of the consumer's tables in
// pool current, checking every interval, until stop is called (which
// waits for it). For what applies without a Consumer (replay).
func StartStatistics(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, log *slog.Logger) (stop func()) {
	s, err := newStatistics(pool, log, prometheus.NewRegistry())
	if err != nil {
		return func() {} // a fresh registry refuses nothing
	}
	return s.start(ctx, interval)
}
