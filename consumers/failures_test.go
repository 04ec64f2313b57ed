package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// A poison event (one that violates an invariant, one whose data is not
// an object) is tried MaxAttempts times (undecodable: once), then set
// aside in DEADLETTER with its reason, while the events behind it apply.
func TestPoisonEventDeadLetteredWhileLaterEventsApply(t *testing.T) {
	h := syncdtest.NewHarness(t)
	reg := prometheus.NewRegistry()
	h.ConsumerConfig.MaxAttempts = 3
	h.ConsumerConfig.Registerer = reg
	ctx := context.Background()
	// An invariant the data must keep, enforced by Postgres: the poison
	// event breaks it on every attempt.
	if _, err := h.Pool.Exec(ctx, `ALTER TABLE users ADD CONSTRAINT users_no_poison CHECK (email NOT LIKE 'poison%')`); err != nil {
		t.Fatal(err)
	}

	poison := syncdtest.WorkOSEvent("event_poison", "user.created", userData("user_poison", "poison@example.com", 1))
	notObject := []byte(`{"object":"event","id":"event_notobject","event":"user.created","data":"not an object","created_at":"2026-01-15T12:00:00.000Z"}`)
	h.PostWorkOS(syncdtest.WorkOSEvent("event_before", "user.created", userData("user_before", "before@example.com", 1)))
	h.PostWorkOS(poison)
	h.PostWorkOS(notObject)
	var later []string
	for i := range 5 {
		id := fmt.Sprintf("user_later_%d", i)
		later = append(later, id)
		h.PostWorkOS(syncdtest.WorkOSEvent("event_later_"+strconv.Itoa(i), "user.created", userData(id, id+"@example.com", 1)))
	}
	h.StartConsumer()
	h.WaitSettled()

	letters := deadLetters(t, h.NATS.JS)
	if len(letters) != 2 {
		t.Fatalf("dead letters: got %d, want 2: %+v", len(letters), letters)
	}
	byID := map[string]deadletter.Letter{}
	for _, l := range letters {
		byID[l.EventID] = l
	}
	p := byID["event_poison"]
	if p.Class != string(consumers.Permanent) || p.Deliveries != 3 || !strings.Contains(p.Error, "users_no_poison") ||
		p.OriginalSubject != "webhooks.workos.user.created" || p.Subject != "deadletter.workos.user.created" ||
		p.Consumer != stream.Consumer || p.Source != "workos" || p.Type != "user.created" || p.OriginalSeq != 2 ||
		string(p.Data) != string(poison) || p.Header.Get(stream.HeaderDLFailedAt) == "" {
		t.Errorf("permanent dead letter: %+v (headers %v)", p, p.Header)
	}
	u := byID["event_notobject"]
	if u.Class != string(consumers.Undecodable) || u.Deliveries != 1 || !strings.Contains(u.Error, "undecodable payload") || u.OriginalSeq != 3 {
		t.Errorf("undecodable dead letter: %+v", u)
	}

	// The events behind the poison were applied, and before it was set
	// aside: the stream did not wait for it.
	var applied int
	var lastApplied time.Time
	if err := h.Pool.QueryRow(ctx, `SELECT count(*), max(applied_at) FROM webhook_events WHERE event_id LIKE 'event_later_%' AND outcome = 'applied'`).Scan(&applied, &lastApplied); err != nil {
		t.Fatal(err)
	}
	if applied != len(later) {
		t.Fatalf("later events applied: %d, want %d", applied, len(later))
	}
	if !lastApplied.Before(p.Time) {
		t.Errorf("later events applied at %s, after the poison was dead-lettered at %s", lastApplied, p.Time)
	}
	var poisonRows int
	if err := h.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM webhook_events WHERE event_id IN ('event_poison', 'event_notobject')) + (SELECT count(*) FROM users WHERE workos_user_id = 'user_poison')`).Scan(&poisonRows); err != nil {
		t.Fatal(err)
	}
	if poisonRows != 0 {
		t.Errorf("poison left %d rows behind", poisonRows)
	}
	// The original is terminated: nothing of WEBHOOKS is left to deliver.
	info := consumerInfo(t, h.NATS.JS)
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("consumer still holds messages: %+v", info)
	}
	for class, want := range map[string]float64{"permanent": 1, "undecodable": 1, "transient": 0} {
		if got := metric(t, reg, "syncd_dead_lettered_total", map[string]string{"source": "workos", "type": "user.created", "class": class}); got != want {
			t.Errorf("syncd_dead_lettered_total{class=%s} = %v, want %v", class, got, want)
		}
	}
	if got := metric(t, reg, "syncd_event_retries_total", map[string]string{"class": "permanent"}); got != 2 {
		t.Errorf("permanent retries = %v, want 2 (attempts before the dead letter)", got)
	}
}

// Postgres goes away for much longer than the whole backoff schedule while
// events keep arriving: the consumer stops fetching and probes, nothing is
// dead-lettered, and once Postgres is back every event is applied exactly
// once.
func TestPostgresOutageLongerThanBackoffScheduleLosesNothing(t *testing.T) {
	h := syncdtest.NewHarness(t)
	ctx := context.Background()
	proxy := newPGProxy(t, h.DBURL)
	pool := proxy.pool(t)
	writes := countUserWrites(t, h.Pool)

	reg := prometheus.NewRegistry()
	cfg := consumers.Config{
		BatchSize:   4,
		MaxAttempts: 3,
		RetryMin:    10 * time.Millisecond,
		RetryMax:    40 * time.Millisecond,
		ProbeMax:    40 * time.Millisecond,
		StopTimeout: 5 * time.Second,
		Registerer:  reg,
	}
	// The longest an event could be retried before it was dead-lettered,
	// had the outage's failures counted against it: every attempt at the
	// longest backoff, plus a probe.
	schedule := time.Duration(cfg.MaxAttempts)*cfg.RetryMax + cfg.ProbeMax
	c, err := consumers.New(cfg, pool, h.NATS.JS)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("consumer: %v", err)
		}
	})

	n := 0
	post := func(count int) {
		for range count {
			n++
			id := fmt.Sprintf("user_outage_%03d", n)
			h.PostWorkOS(syncdtest.WorkOSEvent(fmt.Sprintf("event_outage_%03d", n), "user.created", userData(id, id+"@example.com", 1)))
		}
	}
	post(10)
	awaitLedger(t, h.Pool, 10)

	proxy.down()
	downAt := time.Now()
	post(10) // the first of these fail their batch and pause the consumer
	syncdtest.Eventually(t, 30*time.Second, "consumer pauses", func() bool {
		return metric(t, reg, "syncd_consumer_paused", nil) == 1
	})
	post(10) // arrive while paused
	// Paused means not fetching: what arrived meanwhile waits in the stream.
	syncdtest.Eventually(t, 10*time.Second, "events of the outage wait in the stream", func() bool {
		return consumerInfo(t, h.NATS.JS).NumPending >= 10
	})
	// Hold the outage for a fixed span, many times the schedule: the point
	// is what happens after every backoff is exhausted, and no condition
	// says "the consumer would have given up by now". Also await that the
	// consumer kept probing through it.
	syncdtest.Eventually(t, 30*time.Second, "outage outlasts the backoff schedule", func() bool {
		return time.Since(downAt) > 25*schedule && proxy.refused.Load() >= 10
	})
	if d := dlDepth(t, h.NATS.JS); d != 0 {
		t.Fatalf("%d dead letters during the outage", d)
	}
	if got := metric(t, reg, "syncd_consumer_paused", nil); got != 1 {
		t.Fatalf("consumer resumed while Postgres was away (paused = %v)", got)
	}
	post(5) // still arriving

	proxy.up()
	awaitLedger(t, h.Pool, n)
	h.WaitSettled()
	if d := dlDepth(t, h.NATS.JS); d != 0 {
		t.Errorf("%d dead letters after the outage", d)
	}
	if got := metric(t, reg, "syncd_dead_lettered_total", nil); got != 0 {
		t.Errorf("syncd_dead_lettered_total = %v", got)
	}
	if got := metric(t, reg, "syncd_consumer_paused", nil); got != 0 {
		t.Errorf("consumer still paused")
	}
	// The outage was seen as such and counted against no event.
	if got := metric(t, reg, "syncd_event_retries_total", map[string]string{"class": "transient"}); got < 1 {
		t.Errorf("no transient retries: the outage went unnoticed")
	}
	if got := metric(t, reg, "syncd_event_retries_total", map[string]string{"class": "permanent"}); got != 0 {
		t.Errorf("%v failures of the outage counted toward dead-lettering", got)
	}
	// Exactly once: one ledger row and one write per user.
	var ledger, users, applied int
	if err := h.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM webhook_events WHERE event_id LIKE 'event_outage_%'),
		(SELECT count(*) FROM users WHERE workos_user_id LIKE 'user_outage_%'),
		(SELECT count(*) FROM webhook_events WHERE event_id LIKE 'event_outage_%' AND outcome = 'applied')`).Scan(&ledger, &users, &applied); err != nil {
		t.Fatal(err)
	}
	if ledger != n || users != n || applied != n {
		t.Errorf("ledger %d, users %d, applied %d; want %d each", ledger, users, applied, n)
	}
	writes.assertOnce(t, n)
}

// Postgres answers but refuses writes, as a standby does in a failover:
// every batch fails again and again. With MaxAttempts 1 a single counted
// failure would dead-letter an event; transient failures never count.
func TestTransientFailuresNeverCountTowardDeadLetter(t *testing.T) {
	h := syncdtest.NewHarness(t)
	reg := prometheus.NewRegistry()
	h.ConsumerConfig = consumers.Config{MaxAttempts: 1, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, ProbeMax: 20 * time.Millisecond, Registerer: reg}
	ctx := context.Background()
	setReadOnly(t, h.DBURL, true)
	const n = 5
	for i := range n {
		id := fmt.Sprintf("user_ro_%d", i)
		h.PostWorkOS(syncdtest.WorkOSEvent(fmt.Sprintf("event_ro_%d", i), "user.created", userData(id, id+"@example.com", 1)))
	}
	h.StartConsumer()
	syncdtest.Eventually(t, 30*time.Second, "each event fails many times", func() bool {
		return metric(t, reg, "syncd_event_retries_total", nil) >= 10*n || dlDepth(t, h.NATS.JS) > 0
	})
	if d := dlDepth(t, h.NATS.JS); d != 0 {
		t.Fatalf("%d transient failures dead-lettered", d)
	}
	if got := metric(t, reg, "syncd_event_retries_total", map[string]string{"class": "permanent"}); got != 0 {
		t.Fatalf("%v failures counted as permanent", got)
	}
	setReadOnly(t, h.DBURL, false)
	awaitLedger(t, h.Pool, n)
	h.WaitSettled()
	if d := dlDepth(t, h.NATS.JS); d != 0 {
		t.Errorf("%d dead letters", d)
	}
	var users int
	if err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE workos_user_id LIKE 'user_ro_%'`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if users != n {
		t.Errorf("users %d, want %d", users, n)
	}
}

func TestClassify(t *testing.T) {
	refused := func() error {
		// A real refused connection, as pgx reports it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = pgx.Connect(ctx, "postgres://x@"+addr+"/x?sslmode=disable&connect_timeout=2")
		return err
	}()
	for _, c := range []struct {
		name string
		err  error
		want consumers.Class
	}{
		{"undecodable", fmt.Errorf("apply: %w: data", consumers.ErrUndecodable), consumers.Undecodable},
		{"invariant", fmt.Errorf("apply: %w", consumers.ErrInvariant), consumers.Permanent},
		{"check violation", &pgconn.PgError{Code: "23514"}, consumers.Permanent},
		{"undefined column", &pgconn.PgError{Code: "42703"}, consumers.Permanent},
		{"serialization failure", fmt.Errorf("x: %w", &pgconn.PgError{Code: "40001"}), consumers.Transient},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, consumers.Transient},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, consumers.Transient},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, consumers.Transient},
		{"too many connections", &pgconn.PgError{Code: "53300"}, consumers.Transient},
		{"read-only standby", &pgconn.PgError{Code: "25006"}, consumers.Transient},
		{"lock timeout", &pgconn.PgError{Code: "55P03"}, consumers.Transient},
		{"connection refused", refused, consumers.Transient},
		{"connection cut", fmt.Errorf("ledger: %w", io.ErrUnexpectedEOF), consumers.Transient},
		{"deadline", context.DeadlineExceeded, consumers.Transient},
		{"nats timeout", fmt.Errorf("publish dead letter: %w", nats.ErrTimeout), consumers.Transient},
		{"nats no responders", nats.ErrNoResponders, consumers.Transient},
		{"unknown", errors.New("something else"), consumers.Permanent},
	} {
		if got := consumers.Classify(c.err); got != c.want {
			t.Errorf("%s: Classify(%v) = %q, want %q", c.name, c.err, got, c.want)
		}
	}
	if refused == nil {
		t.Fatal("connecting to a closed port succeeded")
	}
}

// pgProxy forwards TCP to Postgres and can be taken down: down cuts the
// connections it carries and closes new ones at once, the way a Postgres
// that went away looks to a client; up forwards again on the same
// address, so the consumer's pool never changes its configuration.
type pgProxy struct {
	ln      net.Listener
	target  string
	dbURL   string
	refused atomic.Int64

	mu     sync.Mutex
	isDown bool
	conns  map[net.Conn]struct{}
}

func newPGProxy(t *testing.T, dbURL string) *pgProxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: u.Host, dbURL: dbURL, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.down()
	})
	return p
}

func (p *pgProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.isDown
		p.mu.Unlock()
		if down {
			p.refused.Add(1)
			c.Close()
			continue
		}
		go p.forward(c)
	}
}

func (p *pgProxy) forward(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.isDown {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(server, client)
	go pipe(client, server)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

func (p *pgProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *pgProxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = false
}

// pool opens a pool on the test database through the proxy.
func (p *pgProxy) pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(p.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(p.ln.Addr().String())
	portN, _ := strconv.Atoi(port)
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = host, uint16(portN)
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	cfg.ConnConfig.Fallbacks = nil
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// userWrites records every insert and update of users, so a test can tell
// an event applied once from one applied twice with the same result.
type userWrites struct{ pool *pgxpool.Pool }

func countUserWrites(t *testing.T, pool *pgxpool.Pool) userWrites {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		CREATE TABLE test_user_writes (workos_user_id text NOT NULL);
		CREATE FUNCTION test_record_user_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO test_user_writes VALUES (NEW.workos_user_id); RETURN NEW; END $$;
		CREATE TRIGGER test_user_writes AFTER INSERT OR UPDATE ON users
		FOR EACH ROW EXECUTE FUNCTION test_record_user_write();`)
	if err != nil {
		t.Fatal(err)
	}
	return userWrites{pool}
}

func (w userWrites) assertOnce(t *testing.T, n int) {
	t.Helper()
	var users, multi int
	if err := w.pool.QueryRow(context.Background(), `
		SELECT count(*), count(*) FILTER (WHERE writes > 1)
		FROM (SELECT workos_user_id, count(*) AS writes FROM test_user_writes GROUP BY 1) w`).Scan(&users, &multi); err != nil {
		t.Fatal(err)
	}
	if users != n || multi != 0 {
		t.Errorf("user writes: %d users written, %d more than once; want %d once each", users, multi, n)
	}
}

// setReadOnly makes new sessions of the test database read-only (or not)
// and ends the current ones, as a failover to a standby and back would.
func setReadOnly(t *testing.T, dbURL string, on bool) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	admin, err := pgx.Connect(ctx, syncdtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	stmt := "ALTER DATABASE " + name + " SET default_transaction_read_only = on"
	if !on {
		stmt = "ALTER DATABASE " + name + " RESET default_transaction_read_only"
	}
	if _, err := admin.Exec(ctx, stmt); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, strings.TrimPrefix(u.Path, "/")); err != nil {
		t.Fatal(err)
	}
}

func awaitLedger(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	syncdtest.Eventually(t, 60*time.Second, fmt.Sprintf("%d events in the ledger", n), func() bool {
		var got int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events`).Scan(&got)
		return err == nil && got >= n
	})
}

func consumerInfo(t *testing.T, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream.Webhooks, stream.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func dlDepth(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// metric sums the samples of a counter or gauge (a histogram: its count)
// whose labels include labels.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	sample:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue sample
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// deadLetters lists every message in DEADLETTER.
func deadLetters(t *testing.T, js jetstream.JetStream) []deadletter.Letter {
	t.Helper()
	ctx := context.Background()
	store, err := deadletter.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	letters, err := store.List(ctx, deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return letters
}
