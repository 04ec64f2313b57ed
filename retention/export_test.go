package retention

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The retention tests are an external package (they run the service
// harness, which imports this package); these reach the pruner's insides.

// SetRetention changes a built pruner's retention past validation.
func SetRetention(p *Pruner, d time.Duration) { p.cfg.Retention = d }

// Pruned is the pruned-rows counter.
func Pruned(p *Pruner) *prometheus.CounterVec { return p.pruned }

// PauseAfter is the wait after a batch that took took and spanned span of
// applied_at.
func PauseAfter(p *Pruner, took, span, behind time.Duration) time.Duration {
	return p.pause(took, span, behind)
}
