package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/retention"
)

// retentionFlags configure the pruner `syncd serve` runs beside the
// consumers.
type retentionFlags struct {
	ledger time.Duration
	cfg    retention.Config
}

func (r *retentionFlags) register(c *cobra.Command) {
	declare(c).Days(&r.ledger, "ledger-retention", "SYNCD_LEDGER_RETENTION", 0, "keep ledger rows (webhook_events) this long, days (35d) or a duration (840h); default the longest of the providers' retries, --replay-window and Stripe's 30-day backfill, plus 5 days (840h with the defaults); never below --replay-window", notNegative)
}

// setup validates the flags against the replay window they must cover.
func (r *retentionFlags) setup(replayWindow time.Duration) error {
	r.cfg = retention.Config{Retention: r.ledger, ReplayWindow: replayWindow}
	if err := r.cfg.Check(); err != nil {
		return badFlag("ledger-retention", ": %s", strings.TrimPrefix(err.Error(), retention.ErrConfig.Error()+": "))
	}
	return nil
}
