package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/stream"
)

type applyResult struct {
	events                    int
	syncd, limit, naive, skip float64
	limitHow                  string
}

// keepDBs leaves the measurements' databases behind (-keep-dbs) to look at
// their plans and statistics afterwards.
var keepDBs bool

// createDB makes a migrated database for one measurement.
func createDB(ctx context.Context, adminURL, name string) (*pgxpool.Pool, func(), error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", adminURL, err)
	}
	defer admin.Close(ctx)
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, nil, err
	}
	u, _ := url.Parse(adminURL)
	u.Path = "/" + name
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if _, err := migrations.Up(ctx, pool); err != nil {
		return nil, nil, err
	}
	drop := func() {
		pool.Close()
		if keepDBs {
			return
		}
		if c, err := pgx.Connect(context.Background(), adminURL); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}
	return pool, drop, nil
}

// prefill stores the events in WEBHOOKS. Duplicates get their own message
// ids, as a provider retry past the duplicate window would. At most a
// thousand publishes are in flight: with fsync before every ack the
// stream falls behind an unbounded burst.
func prefill(ctx context.Context, js jetstream.JetStream, evs []event) error {
	decoded, err := decodeAll(evs)
	if err != nil {
		return err
	}
	var futs []jetstream.PubAckFuture
	wait := func() error {
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futs = futs[:0]
		return nil
	}
	for i, ev := range decoded {
		m, err := stream.EventMsg(ev.Source, ev.Envelope, ev.Body, time.Now(), "")
		if err != nil {
			return err
		}
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s:%s:%d", ev.Source, ev.Envelope.ID, i))
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		if futs = append(futs, f); len(futs) == 1000 {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	return wait()
}

// drain runs the durable consumer until every stored event is settled.
func drain(ctx context.Context, pool *pgxpool.Pool, js jetstream.JetStream) (time.Duration, error) {
	return drainWith(ctx, 0, pool, js)
}

// drainWith is drain with that many apply workers (0: syncd's default).
func drainWith(ctx context.Context, workers int, pool *pgxpool.Pool, js jetstream.JetStream) (time.Duration, error) {
	c, err := consumers.New(consumers.Config{Registerer: prometheus.NewRegistry(), ApplyWorkers: workers}, pool, js)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(rctx) }()
	err = waitSettled(ctx, js, 10*time.Minute)
	took := time.Since(start)
	cancel()
	<-done
	return took, err
}

func waitSettled(ctx context.Context, js jetstream.JetStream, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := js.Consumer(ctx, stream.Webhooks, stream.Consumer)
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		time.Sleep(5 * time.Millisecond) // polling the consumer's state
	}
	return fmt.Errorf("consumer did not settle within %s", limit)
}

func benchApply(ctx context.Context, o options, fx fixtures) (applyResult, error) {
	return benchWorkload(ctx, o, "apply", fx.mix(o.entities, 1), true)
}

// benchHotKey is the hot-key workload: 20,000 customers, 130,000
// customer.updated events.
func benchHotKey(ctx context.Context, o options, fx fixtures) (applyResult, error) {
	return benchWorkload(ctx, o, "hotkey", fx.hotKey(o.hotCustomers, o.hotEvents, 1), false)
}

// benchWorkload drains evs from a pre-filled stream through syncd's
// consumer and measures the references on the same events: the best SQL
// for the same rows (limit.go) and one transaction per event; with skip,
// also the replay of the applied stream.
func benchWorkload(ctx context.Context, o options, name string, evs []event, skip bool) (applyResult, error) {
	r := applyResult{events: len(evs)}
	dir, err := os.MkdirTemp("", "syncd-bench-js-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir})
	if err != nil {
		return r, err
	}
	defer conn.Close()
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		return r, err
	}
	if err := prefill(ctx, conn.JS, evs); err != nil {
		return r, err
	}

	pool, drop, err := createDB(ctx, o.adminURL, "syncd_bench_"+name)
	if err != nil {
		return r, err
	}
	defer drop()
	// Each measurement starts from a quiet disk, as the end-to-end run
	// does: the prefill leaves up to 200 MB of the stream's pages dirty,
	// and the stages before, Postgres's. Inside one make bench on a slow
	// disk the hot-key drain ran at 0.64x the same drain run alone.
	if err := quiesce(ctx, o.adminURL); err != nil {
		return r, err
	}
	prof, _ := os.Create(filepath.Join(o.profiles, name+"-cpu.pprof"))
	if prof != nil {
		_ = pprof.StartCPUProfile(prof)
	}
	took, err := drainWith(ctx, o.workers, pool, conn.JS)
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	if err != nil {
		return r, err
	}
	r.syncd = float64(len(evs)) / took.Seconds()

	if skip {
		// Skip path: the same stream again from the start, all in the ledger.
		if err := conn.JS.DeleteConsumer(ctx, stream.Webhooks, stream.Consumer); err != nil {
			return r, err
		}
		if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
			return r, err
		}
		if took, err = drainWith(ctx, o.workers, pool, conn.JS); err != nil {
			return r, err
		}
		r.skip = float64(len(evs)) / took.Seconds()
	}
	// The database is not needed any more: free its disk and cache for the
	// references.
	drop()

	decoded, err := decodeAll(evs)
	if err != nil {
		return r, err
	}
	// One transaction per event, through the same handlers and SQL, on a
	// share of the events (it is slow).
	npool, ndrop, err := createDB(ctx, o.adminURL, "syncd_bench_naive")
	if err != nil {
		return r, err
	}
	defer ndrop()
	a, err := consumers.NewApplier(consumers.ApplierConfig{}, npool)
	if err != nil {
		return r, err
	}
	share := decoded[:min(len(decoded), 4000)]
	if err := quiesce(ctx, o.adminURL); err != nil {
		return r, err
	}
	start := time.Now()
	for _, ev := range share {
		if _, err := a.Apply(ctx, []consumers.Event{ev}); err != nil {
			return r, err
		}
	}
	r.naive = float64(len(share)) / time.Since(start).Seconds()
	ndrop()

	r.limit, r.limitHow, err = benchLimit(ctx, o, decoded)
	return r, err
}

func decodeAll(evs []event) ([]consumers.Event, error) {
	out := make([]consumers.Event, 0, len(evs))
	now := time.Now()
	for _, ev := range evs {
		var env events.Envelope
		var err error
		if ev.source == stream.SourceWorkOS {
			env, err = events.DecodeWorkOS(ev.body)
		} else {
			env, err = events.DecodeStripe(ev.body)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, consumers.Event{Source: ev.source, Envelope: env, Body: ev.body, ReceivedAt: now})
	}
	return out, nil
}
