package workosapi

import (
	"context"
	"time"
)

// RecordSleeps makes the client's transport record the waits it would
// make instead of making them.
func RecordSleeps(c *Client) *[]time.Duration {
	var waits []time.Duration
	c.tr.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return &waits
}
