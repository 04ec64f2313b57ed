// Package backoff is the one retry delay syncd uses — redeliveries of
// events and provisioning jobs, WorkOS API retries: exponential from a
// floor to a cap, with jitter so a burst of failures does not come back as
// one — and the waits that go with it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the delay after the n-th failure (n from 1): lo doubled n-1
// times, at most hi, jittered.
func Delay(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return Jitter(min(d, hi))
}

// Jitter spreads d over [d/2, d].
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// Sleep waits d, jittered, and reports whether it did: false when ctx was
// done first.
func Sleep(ctx context.Context, d time.Duration) bool { return Wait(ctx, Jitter(d)) }

// Wait waits d exactly (a pause, not a retry) and reports whether it did:
// false when ctx was done first.
func Wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
