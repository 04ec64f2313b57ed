package backfill

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

const (
	// RateLimitRetriesDefault is how many times a request answered 429 is
	// sent again before its error is returned (the run keeps its cursor).
	RateLimitRetriesDefault = 8
	// RetryAfterMax caps one wait, whatever Retry-After asks.
	RetryAfterMax = time.Minute
	// rateLimitBackoff is the first wait when a 429 names none; it doubles
	// per retry up to rateLimitBackoffMax.
	rateLimitBackoff    = time.Second
	rateLimitBackoffMax = 30 * time.Second
)

// rateLimited retries requests the API answered 429 Too Many Requests,
// waiting what Retry-After says (else an exponential backoff with jitter).
// stripe-go retries a 429 only when it is a lock timeout and never reads
// Retry-After; a backfill of many Connect accounts is exactly what trips
// Stripe's read limit, and failing the run there would only make the
// operator rerun it sooner.
type rateLimited struct {
	base    http.RoundTripper
	retries int
	// wait sleeps d or until ctx is done; tests replace it.
	wait func(ctx context.Context, d time.Duration) error
}

func (t *rateLimited) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 && req.Body != nil {
			// A body is consumed by the first send: take a fresh copy.
			if req.GetBody == nil {
				return nil, fmt.Errorf("retry %s %s after 429: body cannot be resent", req.Method, req.URL.Path)
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		resp, err := t.base.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || attempt >= t.retries {
			return resp, err
		}
		d := retryAfter(resp.Header.Get("Retry-After"), time.Now(), attempt)
		// Drain so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err := t.wait(req.Context(), d); err != nil {
			return nil, err
		}
	}
}

// retryAfter reads Retry-After (seconds, or an HTTP date) and caps it;
// without a usable value it backs off exponentially with jitter.
func retryAfter(h string, now time.Time, attempt int) time.Duration {
	if h != "" {
		if s, err := strconv.Atoi(h); err == nil && s >= 0 {
			return min(time.Duration(s)*time.Second, RetryAfterMax)
		}
		if at, err := http.ParseTime(h); err == nil {
			return min(max(at.Sub(now), 0), RetryAfterMax)
		}
	}
	d := min(rateLimitBackoff<<min(attempt, 10), rateLimitBackoffMax)
	// 75%–100% of d, so concurrent accounts do not retry in step.
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
