package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncd/syncd/backoff"
	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// Kinds of events the generator sends; the checker expects each to end
// differently.
const (
	kindLoad    = "load"    // must be applied, once
	kindPoison  = "poison"  // must be dead-lettered, never lost
	kindHostile = "hostile" // must be refused (4xx) or dead-lettered
	// kindFollower is a normal update sent after a hostile timestamp to
	// the same row: it must be applied, not found stale.
	kindFollower = "follower"
)

// sent is one webhook the generator sent and what came of it.
type sent struct {
	kind   string
	class  string // what makes a poison or hostile event so
	source string // stream.SourceWorkOS or stream.SourceStripe
	id     string // provider event id
	entity string // users.workos_user_id or stripe_customers.stripe_customer_id
	status int    // HTTP status; 0 when no answer came
	// mayApply: a hostile event that is right to apply when read right
	// (a WorkOS millisecond timestamp sent as a number).
	mayApply bool
	at       time.Time
}

func (e *sent) ok() bool { return e.status >= 200 && e.status < 300 }

// generator sends signed webhooks as WorkOS and Stripe do and records every
// answer. Each load event creates a row of its own (a WorkOS user or a
// Stripe customer), so the checker can find the effect of each.
type generator struct {
	prefix  string
	client  *http.Client
	targets atomic.Pointer[[]string] // base URLs, used round robin
	rr      atomic.Uint64
	seq     atomic.Int64
	mu      sync.Mutex
	events  []*sent
	wg      sync.WaitGroup
}

func newGenerator(prefix string, targets ...string) *generator {
	g := &generator{
		prefix: prefix,
		client: &http.Client{
			// Bounded: a request to a process that hangs fails and counts
			// as unanswered, as a provider's would.
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}
	g.setTargets(targets...)
	return g
}

func (g *generator) setTargets(urls ...string) { g.targets.Store(&urls) }

func (g *generator) target() string {
	t := *g.targets.Load()
	return t[g.rr.Add(1)%uint64(len(t))]
}

// next builds the n-th load event: WorkOS and Stripe alternate.
func (g *generator) next() (*sent, []byte) {
	n := g.seq.Add(1)
	if n%2 == 0 {
		e := &sent{kind: kindLoad, source: stream.SourceWorkOS, id: fmt.Sprintf("event_%s_%d", g.prefix, n), entity: fmt.Sprintf("user_%s_%d", g.prefix, n)}
		now := syncdtest.Millis(time.Now())
		return e, syncdtest.WorkOSEvent(e.id, "user.created", map[string]any{
			"object": "user", "id": e.entity, "email": fmt.Sprintf("u%d.%s@workos.reliability.test", n, g.prefix),
			"first_name": "Load", "last_name": fmt.Sprint(n), "email_verified": true,
			"created_at": now, "updated_at": now,
		})
	}
	e := &sent{kind: kindLoad, source: stream.SourceStripe, id: fmt.Sprintf("evt_%s_%d", g.prefix, n), entity: fmt.Sprintf("cus_%s_%d", g.prefix, n)}
	return e, syncdtest.StripeEvent(e.id, "customer.created", time.Now().Unix(), map[string]any{
		"object": "customer", "id": e.entity, "email": fmt.Sprintf("c%d.%s@stripe.reliability.test", n, g.prefix),
		"name": "Load " + fmt.Sprint(n), "created": time.Now().Unix(), "metadata": map[string]any{},
	})
}

// post signs body for e's provider, sends it and records the answer.
func (g *generator) post(e *sent, body []byte) {
	path, header, sig := "/webhooks/workos", "WorkOS-Signature", ingest.SignWorkOS(workosSecret, body, time.Now())
	if e.source == stream.SourceStripe {
		path, header, sig = "/webhooks/stripe", "Stripe-Signature", ingest.SignStripe(stripeSecret, body, time.Now())
	}
	req, err := http.NewRequest(http.MethodPost, g.target()+path, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(header, sig)
		var resp *http.Response
		if resp, err = g.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			e.status = resp.StatusCode
		}
	}
	e.at = time.Now()
	g.mu.Lock()
	g.events = append(g.events, e)
	g.mu.Unlock()
}

// steady sends load events at rate per second until ctx is done, without
// waiting for answers (providers do not wait for each other). The returned
// func stops it and waits for the requests in flight.
func (g *generator) steady(ctx context.Context, rate float64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	interval := time.Duration(float64(time.Second) / rate)
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				e, body := g.next()
				g.wg.Add(1)
				go func() { defer g.wg.Done(); g.post(e, body) }()
			}
		}
	}()
	return func() { cancel(); <-done; g.wg.Wait() }
}

// burst sends n load events with conc in flight and waits for the answers:
// a batch big enough that the consumer is mid-batch right after.
func (g *generator) burst(n, conc int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				e, body := g.next()
				g.post(e, body)
			}
		}()
	}
	wg.Wait()
}

// send posts one prepared event (poison, hostile, follower) and waits.
func (g *generator) send(e *sent, body []byte) {
	g.wg.Add(1)
	defer g.wg.Done()
	g.post(e, body)
}

// snapshot is every event sent so far.
func (g *generator) snapshot() []*sent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*sent(nil), g.events...)
}

// sleep waits d or until ctx is done: the scenarios' pacing (a fault lasts
// 30 s), not a wait for a condition.
func sleep(ctx context.Context, d time.Duration) error {
	if !backoff.Wait(ctx, d) {
		return errStopped
	}
	return nil
}
