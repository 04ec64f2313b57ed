package backfill

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		header   string
		attempt  int
		min, max time.Duration
	}{
		{"3", 0, 3 * time.Second, 3 * time.Second},
		{"0", 5, 0, 0},
		{"3600", 0, RetryAfterMax, RetryAfterMax},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 0, 10 * time.Second, 10 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, 0, 0},
		// Unusable values back off instead: 1s, then doubling, capped.
		{"", 0, 750 * time.Millisecond, time.Second},
		{"soon", 2, 3 * time.Second, 4 * time.Second},
		{"-4", 20, 22500 * time.Millisecond, 30 * time.Second},
	} {
		if got := retryAfter(c.header, now, c.attempt); got < c.min || got > c.max {
			t.Errorf("Retry-After %q, attempt %d: waits %s, want %s..%s", c.header, c.attempt, got, c.min, c.max)
		}
	}
}
