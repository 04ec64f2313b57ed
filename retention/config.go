// Package retention keeps the tables that would otherwise only grow — the
// ledger (webhook_events), old tombstones of syncd's own mirrors and the
// cursors of finished backfills — at a size set by time, not by age of the
// installation. It deletes in small batches, oldest first, each its own
// short transaction with a pause after it, in the background of `syncd
// serve`.
//
// The ledger is not what keeps the synced rows right: the version guards
// and the tombstones are. It only makes a redelivered event a cheap skip.
// So a ledger row can go once no copy of its event can come back while the
// row would still matter: after the providers' retries, the replay window
// and the Stripe backfill window. An event that does come back later is
// applied again, and the guards record it stale or write the same values.
package retention

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/backfill"
)

// The windows in which an event can still reach the consumer, from the
// providers' documentation and syncd's own defaults.
const (
	// ProviderRetryWindow is how long Stripe and WorkOS retry a webhook.
	ProviderRetryWindow = 3 * 24 * time.Hour
	// StripeBackfillWindow is how far back Stripe's Events API lists.
	StripeBackfillWindow = backfill.StripeRetention
	// WorkOSHistory is how far back WorkOS's Events API may list (30 days,
	// 90 in newer documentation: the longer one is assumed).
	WorkOSHistory = 90 * 24 * time.Hour
	// DefaultReplayWindow is WEBHOOKS's MaxAge by default (stream.Config).
	DefaultReplayWindow = 30 * 24 * time.Hour
	// DefaultDeadLetterMaxAge is how long DEADLETTER keeps a dead letter by
	// default (stream.Config).
	DefaultDeadLetterMaxAge = 90 * 24 * time.Hour
	// Margin is added to the longest window for the default retention:
	// clock skew, apply lag, a backfill started at the edge of its window.
	Margin = 5 * 24 * time.Hour

	// DefaultAuditRetention is how long an audit_logs row is kept.
	DefaultAuditRetention = 365 * 24 * time.Hour

	DefaultBatchSize = 1000
	DefaultPause     = 100 * time.Millisecond
	DefaultDuty      = 0.02
	DefaultInterval  = 5 * time.Minute
	MaxBatchSize     = 10000
)

// ErrConfig is the error of an invalid Config.
var ErrConfig = errors.New("retention config")

// Config of the pruner.
type Config struct {
	// Retention is how long a ledger row (and a finished backfill cursor)
	// is kept after it was written. Default DefaultRetention(ReplayWindow);
	// never shorter than ReplayWindow.
	Retention time.Duration
	// ReplayWindow is WEBHOOKS's MaxAge (SYNCD_REPLAY_WINDOW).
	ReplayWindow time.Duration
	// DeadLetterMaxAge is DEADLETTER's MaxAge.
	DeadLetterMaxAge time.Duration
	// AuditRetention is how long an audit_logs row is kept after its
	// change (SYNCD_AUDIT_RETENTION). Default DefaultAuditRetention.
	AuditRetention time.Duration
	// BatchSize is the most rows one delete removes.
	BatchSize int
	// Pause is the least wait after each batch.
	Pause time.Duration
	// Duty is the most of its time the pruner spends deleting: after a
	// batch that took d it waits at least d×(1/Duty−1), so that a backlog
	// (retention enabled on a long ledger) drains at a pace the apply path
	// does not feel, and faster when the database is idle. The default, 2%,
	// deletes a 1,000-row batch taking 10 ms every half second: 170 million
	// rows a day. Once caught up (its rows within one Interval of the
	// cutoff), a ledger batch whose rows were applied within less than 4×
	// that wait waits a quarter of their span instead: rows age past the
	// cutoff as fast as they were applied, and the pruner keeps up with
	// any steady load.
	Duty float64
	// Interval is the wait between passes over every table.
	Interval time.Duration
	// Now is the clock; tests move it.
	Now func() time.Time

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultRetention is the longest window in which an event can come back —
// the providers' retries, the replay window, Stripe's backfill window — plus
// Margin: 35 days with the defaults.
func DefaultRetention(replayWindow time.Duration) time.Duration {
	return max(ProviderRetryWindow, replayWindow, StripeBackfillWindow) + Margin
}

func (c Config) withDefaults() Config {
	if c.ReplayWindow == 0 {
		c.ReplayWindow = DefaultReplayWindow
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention(c.ReplayWindow)
	}
	if c.AuditRetention == 0 {
		c.AuditRetention = DefaultAuditRetention
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Pause == 0 {
		c.Pause = DefaultPause
	}
	if c.Duty == 0 {
		c.Duty = DefaultDuty
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.ReplayWindow < 0:
		return fmt.Errorf("%w: replay window %s: want a positive duration", ErrConfig, c.ReplayWindow)
	case c.Retention < c.ReplayWindow:
		return fmt.Errorf("%w: ledger retention %s is shorter than the replay window %s: a replay would re-apply events the stream still holds whose ledger rows were pruned, instead of skipping them; want at least %s (default %s)",
			ErrConfig, c.Retention, c.ReplayWindow, c.ReplayWindow, DefaultRetention(c.ReplayWindow))
	case c.AuditRetention < time.Hour:
		return fmt.Errorf("%w: audit retention %s: want at least 1h", ErrConfig, c.AuditRetention)
	case c.DeadLetterMaxAge < 0:
		return fmt.Errorf("%w: dead-letter max age %s: want a positive duration", ErrConfig, c.DeadLetterMaxAge)
	case c.BatchSize < 1 || c.BatchSize > MaxBatchSize:
		return fmt.Errorf("%w: batch size %d: want 1 to %d", ErrConfig, c.BatchSize, MaxBatchSize)
	case c.Pause < 0:
		return fmt.Errorf("%w: pause %s: want zero or more", ErrConfig, c.Pause)
	case c.Duty < 0 || c.Duty > 1:
		return fmt.Errorf("%w: duty %g: want a fraction in (0, 1]", ErrConfig, c.Duty)
	case c.Interval < 0:
		return fmt.Errorf("%w: interval %s: want a positive duration", ErrConfig, c.Interval)
	}
	return nil
}

// Check reports whether cfg, with its defaults, is valid.
func (c Config) Check() error { return c.withDefaults().validate() }

// Resolved is cfg with its defaults applied, for logging what will run.
func (c Config) Resolved() Config { return c.withDefaults() }

// TombstoneRetention is how long a tombstone is kept after its deletion
// (deleted_at, the provider's time of the delete). A tombstone is what stops
// an older event of the same object from bringing it back, ledger row or
// not, so it must outlive every path by which such an event can still reach
// the consumer: first stored at most max(Retention, WorkOSHistory) after it
// happened (retries, the backfill windows), then kept by WEBHOOKS for the
// replay window or by DEADLETTER until retried. 210 days with the defaults.
func (c Config) TombstoneRetention() time.Duration {
	c = c.withDefaults()
	return max(c.Retention, WorkOSHistory) + c.ReplayWindow + c.DeadLetterMaxAge
}

// ledgerCutoff is the applied_at before which ledger rows go. The replay
// window bounds it whatever the configuration says.
func (c Config) ledgerCutoff(now time.Time) time.Time {
	return now.Add(-max(c.Retention, c.ReplayWindow))
}
