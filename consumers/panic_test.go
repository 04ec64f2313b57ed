package consumers_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// panicky is a handler with a bug: it panics on every event.
func panicky(context.Context, consumers.Tx, consumers.Event) (consumers.Outcome, error) {
	var m map[string]int
	m["boom"]++ // assignment to entry in nil map
	return consumers.Applied, nil
}

// A handler that panics fails its own event, whether its route queues its
// statements or runs it directly; its batch-mates apply.
func TestPanicInHandlerIsBlamedOnItsEvent(t *testing.T) {
	c, pool, _ := tracedConsumer(t)
	c.SetHandler("workos", "user.panicked", panicky)                                                   // pipelined
	c.SetRoute(consumers.Route{Source: "workos", Type: "test.panicked", Handle: panicky, Reads: true}) // run directly
	evs := []consumers.Event{
		workosEvent(t, "e_before", "user.created", userData("user_a", "a@x.test", 1)),
		workosEvent(t, "e_pipelined", "user.panicked", userData("user_b", "b@x.test", 1)),
		workosEvent(t, "e_direct", "test.panicked", userData("user_c", "c@x.test", 1)),
		workosEvent(t, "e_after", "user.created", userData("user_d", "d@x.test", 1)),
	}
	res, err := c.Apply(context.Background(), evs)
	if err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	for i, want := range []bool{false, true, true, false} {
		if got := errors.Is(res[i].Err, consumers.ErrPanic); got != want {
			t.Errorf("%s: err %v, want a panic: %v", evs[i].Envelope.ID, res[i].Err, want)
		}
		if want && consumers.Classify(res[i].Err) != consumers.Permanent {
			t.Errorf("%s: class %q, want permanent", evs[i].Envelope.ID, consumers.Classify(res[i].Err))
		}
	}
	var users int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM users WHERE workos_user_id IN ('user_a', 'user_d')`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if users != 2 {
		t.Errorf("batch-mates applied: %d users, want 2", users)
	}
	if msg := res[1].Err.Error(); !strings.Contains(msg, "assignment to entry in nil map") || !strings.Contains(msg, "panicky") {
		t.Errorf("panic error %q names neither the panic nor the handler", msg)
	}
}

// A panicking handler, reached through the whole pipeline (HTTP, JetStream,
// the consumer loop): its event is tried MaxAttempts times and
// dead-lettered with the stack in its reason, the events around it apply,
// and the consumer keeps running.
func TestPanickingHandlerIsDeadLetteredAndTheNextEventApplies(t *testing.T) {
	h := syncdtest.NewHarness(t)
	reg := prometheus.NewRegistry()
	h.ConsumerConfig.MaxAttempts = 3
	h.ConsumerConfig.Registerer = reg
	h.Setup = func(c *consumers.Consumer) {
		c.SetHandler("workos", "user.panicked", panicky)
	}
	h.PostWorkOS(syncdtest.WorkOSEvent("event_before", "user.created", userData("user_before", "before@example.com", 1)))
	h.PostWorkOS(syncdtest.WorkOSEvent("event_panic", "user.panicked", userData("user_panic", "panic@example.com", 1)))
	h.PostWorkOS(syncdtest.WorkOSEvent("event_next", "user.created", userData("user_next", "next@example.com", 1)))
	h.StartConsumer()
	h.WaitSettled()

	ctx := context.Background()
	letters := deadLetters(t, h.NATS.JS)
	if len(letters) != 1 {
		t.Fatalf("dead letters: %d, want 1: %+v", len(letters), letters)
	}
	l := letters[0]
	if l.EventID != "event_panic" || l.Class != string(consumers.Permanent) || l.Deliveries != 3 ||
		!strings.Contains(l.Error, "panic: assignment to entry in nil map") || !strings.Contains(l.Error, "panicky (panic_test.go:") {
		t.Errorf("dead letter %+v: want event_panic, permanent, 3 deliveries, the panic and where", l)
	}
	var applied int
	if err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE event_id IN ('event_before', 'event_next') AND outcome = 'applied'`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 2 {
		t.Errorf("events around the panic applied: %d, want 2", applied)
	}
	// Alive: a later event still applies, through the same consumer.
	h.PostWorkOS(syncdtest.WorkOSEvent("event_later", "user.created", userData("user_later", "later@example.com", 1)))
	awaitLedger(t, h.Pool, 3)
	if got := metric(t, reg, "syncd_dead_lettered_total", map[string]string{"type": "user.panicked", "class": "permanent"}); got != 1 {
		t.Errorf("syncd_dead_lettered_total = %v, want 1", got)
	}
}
