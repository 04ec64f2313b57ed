package workosapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/backoff"
)

// transport is the RoundTripper every SDK call goes through. The SDK
// retries nothing, so this is where WorkOS's rate limits and hiccups are
// absorbed: a bounded number of requests in flight, writes paced under the
// AuthKit write limit, 429 and 5xx retried (honouring Retry-After) and
// every attempt counted by endpoint and status.
type transport struct {
	base          http.RoundTripper
	inFlight      chan struct{}
	writes        *limiter
	maxAttempts   int
	retryMin      time.Duration
	retryMax      time.Duration
	maxRetryAfter time.Duration
	calls         *prometheus.CounterVec
	// sleep waits d or until ctx is done; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	endpoint := Endpoint(req.Method, req.URL.Path)
	write := req.Method != http.MethodGet && req.Method != http.MethodHead
	noReplay := write && ctx.Value(noReplayKey{}) != nil
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			r = req.Clone(ctx)
			if req.Body != nil && req.Body != http.NoBody {
				if req.GetBody == nil {
					return nil, errors.New("workosapi: request body cannot be replayed for a retry")
				}
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		if write {
			if err := t.writes.wait(ctx, t.sleep); err != nil {
				return nil, err
			}
		}
		select {
		case t.inFlight <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		resp, err := t.base.RoundTrip(r)
		<-t.inFlight
		status := "error"
		if err == nil {
			status = strconv.Itoa(resp.StatusCode)
		}
		t.calls.WithLabelValues(endpoint, status).Inc()

		var delay time.Duration
		switch {
		case noReplay && outcomeUnknown(resp, err):
			// The write may have been applied and cannot be found again
			// by a lookup: the caller decides what an unknown outcome
			// means. A 429 or a refused dial is WorkOS not acting.
			return resp, err
		case err != nil:
			// A write whose connection broke may have been applied, so
			// only one that never connected is sent again; the callers'
			// lookups absorb the rest.
			if ctx.Err() != nil || (write && !isDialError(err)) {
				return nil, err
			}
			delay = t.backoff(attempt)
		case retryable(resp.StatusCode):
			delay = t.backoff(attempt)
			if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				delay = ra
			}
			if delay > t.maxRetryAfter {
				// Longer than a worker should hold a request: the caller
				// sees the 429/5xx and retries the whole step later.
				return resp, nil
			}
		default:
			return resp, nil
		}
		if attempt >= t.maxAttempts {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := t.sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
}

// noReplayKey marks a request's context: a write WorkOS may apply twice
// and no lookup finds again (a magic-auth code), so an answer that leaves
// its outcome unknown (a 5xx, 408, a broken connection) is handed back
// rather than sent again.
type noReplayKey struct{}

func withoutReplay(ctx context.Context) context.Context {
	return context.WithValue(ctx, noReplayKey{}, true)
}

// outcomeUnknown reports an attempt after which a write may or may not
// have been applied: WorkOS answered 5xx or 408, or the connection broke
// after it was made.
func outcomeUnknown(resp *http.Response, err error) bool {
	if err != nil {
		return !isDialError(err)
	}
	return resp.StatusCode != http.StatusTooManyRequests && retryable(resp.StatusCode)
}

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// backoff is the wait before attempt+1: exponential from retryMin, capped
// at retryMax, with jitter.
func (t *transport) backoff(attempt int) time.Duration {
	return backoff.Delay(attempt, t.retryMin, t.retryMax)
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && s < 1e6 {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limiter is a token bucket: at most burst + rate×T writes in any T.
type limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
	off    bool
}

func newLimiter(rate float64, burst int, off bool) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now(), off: off}
}

// wait takes a token, waiting for one when the bucket is empty. A waiter
// reserves its token (the balance goes negative), so waiters are served in
// turn and the rate holds however many wait.
func (l *limiter) wait(ctx context.Context, sleep func(context.Context, time.Duration) error) error {
	if l.off {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens--
	deficit := -l.tokens
	l.mu.Unlock()
	if deficit <= 0 {
		return nil
	}
	if err := sleep(ctx, time.Duration(deficit/l.rate*float64(time.Second))); err != nil {
		// Give the reservation back: nothing was sent.
		l.mu.Lock()
		l.tokens++
		l.mu.Unlock()
		return err
	}
	return nil
}

// Endpoint names a call for metrics and errors: the method and the path
// with ids replaced ("GET /organizations/external_id/{external_id}"), so
// the label set stays small.
func Endpoint(method, path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		switch {
		case i > 0 && segs[i-1] == "external_id":
			segs[i] = "{external_id}"
		case looksLikeID(s):
			segs[i] = "{id}"
		}
	}
	return method + " /" + strings.Join(segs, "/")
}

// looksLikeID recognises WorkOS object ids: a lower-case prefix, an
// underscore, and a long upper-case alphanumeric (ULID) tail.
func looksLikeID(s string) bool {
	i := strings.LastIndexByte(s, '_')
	if i <= 0 || len(s)-i-1 < 16 {
		return false
	}
	for _, c := range s[i+1:] {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
