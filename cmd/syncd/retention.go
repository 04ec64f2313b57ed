package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/retention"
)

// retentionFlags configure the pruner `syncd serve` runs beside the
// consumers.
type retentionFlags struct {
	ledger time.Duration
	cfg    retention.Config
}

func (r *retentionFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&r.ledger, "ledger-retention", 0, "keep ledger rows (webhook_events) this long; default the longest of the providers' retries, --replay-window and Stripe's 30-day backfill, plus 5 days (840h with the defaults); never below --replay-window (env SYNCD_LEDGER_RETENTION)")
}

// setup validates the flags against the replay window they must cover.
func (r *retentionFlags) setup(replayWindow time.Duration) error {
	r.cfg = retention.Config{Retention: r.ledger, ReplayWindow: replayWindow}
	if r.ledger < 0 {
		return usageError("--ledger-retention %s: want a positive duration (or leave unset for the default)", r.ledger)
	}
	if err := r.cfg.Check(); err != nil {
		return usageError("--ledger-retention: %s", strings.TrimPrefix(err.Error(), retention.ErrConfig.Error()+": "))
	}
	return nil
}

// start runs the pruner in the background until ctx is done.
func (r *retentionFlags) start(ctx context.Context, wg *sync.WaitGroup, pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer) error {
	cfg := r.cfg
	cfg.Logger, cfg.Registerer = log, reg
	p, err := retention.New(cfg, pool)
	if err != nil {
		return usageError("%v", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("retention stopped", "err", err)
		}
	}()
	return nil
}
