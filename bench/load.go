package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// request is one webhook to send: path, signature header and body.
type request struct {
	path, header, value string
	body                []byte
}

// source produces the n-th request; it signs as the provider would, so the
// load generator costs the same against every server.
type source func(n int64) request

// loadResult is what one load run measured.
type loadResult struct {
	Requests int64
	Errors   int64
	Elapsed  time.Duration
	P50, P99 time.Duration
}

func (r loadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

func newClient(conc int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        conc * 2,
			MaxIdleConnsPerHost: conc * 2,
			IdleConnTimeout:     time.Minute,
		},
	}
}

func send(c *http.Client, base string, r request) (int, error) {
	req, err := http.NewRequest(http.MethodPost, base+r.path, bytes.NewReader(r.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(r.header, r.value)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// closedLoop keeps conc requests in flight for d: the peak rate.
func closedLoop(base string, src source, conc int, d time.Duration) loadResult {
	c := newClient(conc)
	var next, errs atomic.Int64
	lat := make([][]time.Duration, conc)
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) {
				r := src(next.Add(1))
				t := time.Now()
				code, err := send(c, base, r)
				mine = append(mine, time.Since(t))
				if err != nil || code != http.StatusOK {
					errs.Add(1)
				}
			}
			lat[w] = mine
		}()
	}
	wg.Wait()
	return summarize(lat, errs.Load(), time.Since(start))
}

// openLoop sends at a steady rate for d, whatever the answers take: the
// way providers call.
func openLoop(ctx context.Context, base string, src source, rate float64, d time.Duration) loadResult {
	c := newClient(256)
	return paced(ctx, rate, d, func(n int64) func() error {
		r := src(n)
		return func() error {
			code, err := send(c, base, r)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("status %d", code)
			}
			return err
		}
	})
}

// paced starts one operation every 1/rate for d, open loop, and measures
// each one's time. next(n) prepares the n-th (from 1) untimed, in order;
// what it returns is timed, in a goroutine of its own.
func paced(ctx context.Context, rate float64, d time.Duration, next func(n int64) func() error) loadResult {
	interval := time.Duration(float64(time.Second) / rate)
	var errs atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	var n int64
	for t := start; time.Since(start) < d && ctx.Err() == nil; t = t.Add(interval) {
		if w := time.Until(t); w > 0 {
			time.Sleep(w) // pacing the generator, not awaiting a condition
		}
		n++
		op := next(n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			err := op()
			el := time.Since(t)
			if err != nil {
				errs.Add(1)
			}
			mu.Lock()
			lat = append(lat, el)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarize([][]time.Duration{lat}, errs.Load(), time.Since(start))
}

func summarize(parts [][]time.Duration, errs int64, elapsed time.Duration) loadResult {
	var all []time.Duration
	for _, p := range parts {
		all = append(all, p...)
	}
	slices.Sort(all)
	r := loadResult{Requests: int64(len(all)), Errors: errs, Elapsed: elapsed}
	if len(all) > 0 {
		r.P50 = all[len(all)*50/100]
		r.P99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
