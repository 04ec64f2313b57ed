package service_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/service"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

func start(t *testing.T, cfg service.Config) *service.Service {
	t.Helper()
	ctx := context.Background()
	svc, err := service.New(ctx, cfg)
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	return svc
}

func ledger(t *testing.T, svc *service.Service) int {
	t.Helper()
	var n int
	if err := svc.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A soft stop in the middle of the stream settles the batch in flight and
// hands back what the consumer had buffered while JetStream is still up:
// the next process applies the rest at once, not after AckWait, and
// readiness said "stopping" before anything went away.
func TestStopHandsBackBeforeJetStreamStops(t *testing.T) {
	t.Parallel()
	cfg := syncdtest.HarnessConfig(t)
	cfg.HoldConsumer = false
	cfg.Consumers = consumers.Config{BatchSize: 4}
	const n = 3000
	svc := start(t, cfg)
	js := svc.NATS().JS
	var futs []jetstream.PubAckFuture
	for i := range n {
		body := syncdtest.WorkOSEvent(fmt.Sprintf("event_%05d", i), "user.created", map[string]any{"object": "user", "id": fmt.Sprintf("user_%05d", i), "email": fmt.Sprintf("u%d@x.test", i)})
		env, err := events.DecodeWorkOS(body)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.EventMsg(stream.SourceWorkOS, env, body, time.Now(), "")
		if err != nil {
			t.Fatal(err)
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		}
	}
	syncdtest.Eventually(t, 30*time.Second, "applying started", func() bool { return ledger(t, svc) > 0 })
	// The next batch waits on this lock, so the stop waits for that batch
	// and stays between "not ready" and "listener closed" until the lock
	// goes: readiness is looked at inside that window, not raced for.
	pool := svc.Pool()
	holder, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	if _, err := holder.Exec(context.Background(), "LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	syncdtest.Eventually(t, 30*time.Second, "a batch waiting on the lock", func() bool {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	readyz := "http://" + svc.Addr().String() + "/readyz"
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop(context.Background()) }()
	// Readiness fails before the listener and the consumers go.
	sawStopping := false
	for !sawStopping {
		resp, err := http.Get(readyz)
		if err != nil {
			break // the listener has closed: the stop got further than readiness
		}
		resp.Body.Close()
		sawStopping = resp.StatusCode == http.StatusServiceUnavailable
	}
	if err := holder.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !sawStopping {
		t.Error("readyz never answered 503 during the stop")
	}
	if err := pool.Ping(context.Background()); err == nil {
		t.Error("the pool is still open after Stop")
	}

	cfg.Registry = prometheus.NewRegistry()
	cfg.Consumers = consumers.Config{}
	next := start(t, cfg)
	t.Cleanup(func() { _ = next.Stop(context.Background()) })
	applied := ledger(t, next)
	if applied >= n {
		t.Fatalf("all %d events were applied before the stop: nothing was in flight", n)
	}
	// Inside AckWait: nothing was left unacknowledged by the first process
	// (what it held would come back only after AckWait).
	syncdtest.Eventually(t, stream.DefaultAckWait*2/3, "the rest applied by the next process", func() bool { return ledger(t, next) == n })
}

// Bad configuration is refused before anything is opened.
func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]service.Config{
		"role":            {Role: "both", DatabaseURL: "postgres://x"},
		"no database":     {Role: service.RoleConsume},
		"replicas":        {Role: service.RoleIngest, Stream: stream.Config{Replicas: 7}},
		"replay window":   {Role: service.RoleIngest, Stream: stream.Config{MaxAge: time.Minute}},
		"reconcile every": {Role: service.RoleIngest, DatabaseURL: "postgres://x", Reconcile: service.Reconcile{Every: time.Second}},
		"batch size":      {Role: service.RoleConsume, DatabaseURL: "postgres://x", Consumers: consumers.Config{BatchSize: -1}},
	} {
		// NATS would be an unreachable server: the refusal must come first.
		cfg.NATS = stream.ConnConfig{URL: "nats://127.0.0.1:1"}
		cfg.Ingest.WorkOSSecrets = "whsec_x"
		_, err := service.New(context.Background(), cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if name != "batch size" && !errors.Is(err, service.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
		if err := cfg.Check(); err == nil {
			t.Errorf("%s: Check accepted what New refused", name)
		}
	}
}

// A listener that cannot be had fails Start, and Stop still releases
// what New opened.
func TestStartFailsOnABusyAddress(t *testing.T) {
	t.Parallel()
	first := start(t, syncdtest.HarnessConfig(t))
	t.Cleanup(func() { _ = first.Stop(context.Background()) })
	cfg := syncdtest.HarnessConfig(t)
	cfg.HTTPAddr = first.Addr().String()
	svc, err := service.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err == nil {
		t.Fatal("Start listened on an address in use")
	}
	if err := svc.Stop(context.Background()); err != nil {
		t.Fatalf("stop after a failed start: %v", err)
	}
	if err := svc.Pool().Ping(context.Background()); err == nil {
		t.Error("the pool is still open")
	}
}
