package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

func openEmbedded(t *testing.T, dir string) *stream.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return conn
}

func storeUserCreated(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		user := fmt.Sprintf("user_held_%03d", i)
		body := syncdtest.WorkOSEvent(fmt.Sprintf("event_held_%03d", i), "user.created", userData(user, user+"@example.com", 1))
		env, err := events.DecodeWorkOS(body)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.EventMsg("workos", env, body, time.Now(), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
}

func ledgerCount(pool *pgxpool.Pool) int {
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// A clean stop of a consumer on the embedded server, which stops with the
// process, while it holds events (a batch in flight, more buffered), then
// a restart on the same data dir: every held event is applied within
// seconds, not after AckWait.
func TestCleanStopWithHeldEventsRecoversInSeconds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	pool, err := pgxpool.New(context.Background(), syncdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	const n = 40
	cfg := consumers.Config{BatchSize: 4, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, StopTimeout: 10 * time.Second}

	conn := openEmbedded(t, dir)
	storeUserCreated(t, conn.JS, n)
	cfg.Registerer = prometheus.NewRegistry()
	c, err := consumers.New(cfg, pool, conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	// The first batch blocks until the stop: by then the consumer has
	// pulled more than the batch and holds the rest in its buffer.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	create := c.Handler("workos", "user.created")
	c.SetHandler("workos", "user.created", func(ctx context.Context, tx consumers.Tx, ev consumers.Event) (consumers.Outcome, error) {
		once.Do(func() { close(entered); <-release })
		return create(ctx, tx, ev)
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-entered
	syncdtest.Eventually(t, 10*time.Second, "the consumer holds more than its batch", func() bool {
		info := consumerInfo(t, conn.JS)
		return info.NumAckPending > cfg.BatchSize
	})
	stop()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v", err)
	}
	conn.Close() // the embedded server stops, as it does with the process
	held := n - ledgerCount(pool)
	if held <= 0 {
		t.Fatalf("nothing was held at the stop")
	}

	conn = openEmbedded(t, dir)
	t.Cleanup(conn.Close)
	cfg.Registerer = prometheus.NewRegistry()
	c, err = consumers.New(cfg, pool, conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop = context.WithCancel(context.Background())
	defer stop()
	go func() { done <- c.Run(ctx) }()
	// Well under AckWait: events waiting it out would not make it.
	syncdtest.Eventually(t, stream.DefaultAckWait/4, fmt.Sprintf("the %d held events applied after the restart", held), func() bool {
		return ledgerCount(pool) == n
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v", err)
	}
}

// Ensure moves an existing durable to the current AckWait: a durable made
// by an older syncd (2 minutes) must not keep its long wait.
func TestEnsureShortensAnExistingDurablesAckWait(t *testing.T) {
	conn := syncdtest.JetStream(t)
	ctx := context.Background()
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{AckWait: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := consumerInfo(t, conn.JS).Config.AckWait; got != 2*time.Minute {
		t.Fatalf("AckWait %s, want the older 2m to start from", got)
	}
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := consumerInfo(t, conn.JS).Config.AckWait; got != stream.DefaultAckWait || got > 30*time.Second {
		t.Fatalf("AckWait %s after Ensure, want %s (at most 30s)", got, stream.DefaultAckWait)
	}
}

// A batch that takes longer than AckWait keeps its messages, and so do the
// messages buffered behind it: heartbeats tell JetStream they are in
// progress, so nothing is delivered a second time.
func TestSlowBatchIsNotRedelivered(t *testing.T) {
	h := syncdtest.NewHarness(t)
	const ackWait = time.Second
	if err := stream.Ensure(context.Background(), h.NATS.JS, stream.Config{}, stream.ConsumerConfig{AckWait: ackWait}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h.ConsumerConfig.Registerer = reg
	h.Setup = func(c *consumers.Consumer) {
		create := c.Handler("workos", "user.created")
		c.SetHandler("workos", "user.created", func(ctx context.Context, tx consumers.Tx, ev consumers.Event) (consumers.Outcome, error) {
			if ev.Envelope.ID == "event_slow" {
				// Held for a fixed span: the point is a batch outlasting
				// AckWait several times over.
				start := time.Now()
				syncdtest.Eventually(t, 10*ackWait, "the batch outlasts AckWait", func() bool { return time.Since(start) > 4*ackWait })
			}
			return create(ctx, tx, ev)
		})
	}
	h.PostWorkOS(syncdtest.WorkOSEvent("event_slow", "user.created", userData("user_slow", "slow@example.com", 1)))
	h.PostWorkOS(syncdtest.WorkOSEvent("event_other", "user.created", userData("user_other", "other@example.com", 1)))
	h.StartConsumer()
	awaitLedger(t, h.Pool, 2)
	h.WaitSettled()
	if got := metric(t, reg, "syncd_events_total", map[string]string{"outcome": "skipped"}); got != 0 {
		t.Errorf("%v events delivered again while their batch was applied", got)
	}
	if got := metric(t, reg, "syncd_events_total", map[string]string{"outcome": "applied"}); got != 2 {
		t.Errorf("applied %v, want 2", got)
	}
}

// Losing the message iterator is not the end of the consumer: the durable
// deleted and made again (as another replica's start does) is opened
// again and applying goes on. Deleted for good, Run returns an error, so
// that serve exits and a restart creates it again.
func TestConsumerReopensAfterItsDurableIsRecreated(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.ConsumerConfig.ProbeMax = 50 * time.Millisecond
	h.ConsumerConfig.RecreateGrace = 3 * time.Second
	var logs syncBuffer
	h.ConsumerConfig.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h.PostWorkOS(syncdtest.WorkOSEvent("event_1", "user.created", userData("user_1", "one@example.com", 1)))
	c, err := consumers.New(h.ConsumerConfig, h.Pool, h.NATS.JS)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	awaitLedger(t, h.Pool, 1)

	bg := context.Background()
	if err := h.NATS.JS.DeleteConsumer(bg, stream.Webhooks, stream.Consumer); err != nil {
		t.Fatal(err)
	}
	// The consumer looks for its durable between the delete and the create
	// (as when another replica's start makes it again): it waits for it.
	syncdtest.Eventually(t, 30*time.Second, "the consumer to find its durable missing", func() bool {
		select {
		case err := <-done:
			t.Fatalf("consumer ended before its durable was made again: %v", err)
		default:
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "open consumer "+stream.Consumer+":") && strings.Contains(line, "consumer not found") {
				return true
			}
		}
		return false
	})
	if err := stream.Ensure(bg, h.NATS.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	h.PostWorkOS(syncdtest.WorkOSEvent("event_2", "user.created", userData("user_2", "two@example.com", 1)))
	awaitLedger(t, h.Pool, 2)
	select {
	case err := <-done:
		t.Fatalf("consumer ended: %v", err)
	default:
	}

	if err := h.NATS.JS.DeleteConsumer(bg, stream.Webhooks, stream.Consumer); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatalf("consumer ended with %v, want consumer not found", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consumer kept running without its durable")
	}
}
