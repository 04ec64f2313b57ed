package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/retention"
	"github.com/syncd/syncd/stream"
)

// steadyRate is the spacing of the ledger's fill, in rows a second of
// applied_at: the pruner's clock runs at apply's rate ÷ steadyRate, so
// rows age past the cutoff as fast as apply inserts them.
const steadyRate = 2500

// Section 8's schedule: windows of retentionWindow, in blocks of four —
// without, with, with, without — so that a drift of the rate over a block
// (autovacuum, the stream's tail) weighs on both sides alike.
const (
	retentionWindow = 3 * time.Second
	steadyBlocks    = 5
	catchUpBlocks   = 2
)

type retentionResult struct {
	steady, catchUp phaseResult
}

type phaseResult struct {
	blocks        int
	without, with float64 // mean events/s of the windows without and with the pruner
	cost          float64 // median over blocks of 1 − with/without
	pruned        int64
	prunedPerSec  float64 // over the windows with the pruner
}

// benchRetention applies a long steady load into the full database in one
// continuous drain and turns the pruner on and off beside it in windows.
//
// Steady state: the pruner's clock puts the cutoff at the oldest ledger
// row when the phase starts and moves only while the pruner runs, at the
// speed that ages rows past it as fast as apply inserted them in the
// window before (the fill is spaced steadyRate a second): the deletes a
// ledger at retention needs to stay the same size under that load, and no
// more.
// Catch-up: the clock jumps so half the ledger is past the cutoff, a
// backlog the pruner drains at its duty's pace, as after retention is first
// enabled on a long ledger.
//
// The load is the same entities again and again with newer versions
// (mixGen), so the synced tables do not grow over the run.
func benchRetention(ctx context.Context, o options, fx fixtures, pool *pgxpool.Pool, js jetstream.JetStream, rate float64) (retentionResult, error) {
	var r retentionResult
	var oldest time.Time
	if err := pool.QueryRow(ctx, `SELECT min(applied_at) FROM webhook_events`).Scan(&oldest); err != nil {
		return r, err
	}
	// Enough events for the whole schedule at the rate apply reached into
	// this database in section 7, with a margin.
	windows := 1 + 4*(steadyBlocks+catchUpBlocks)
	perGen := len(fx.mixGen(o.entities, 21, 1))
	gens := int(float64(windows)*retentionWindow.Seconds()*rate*2)/perGen + 1
	for g := 1; g <= gens; g++ {
		if err := prefill(ctx, js, fx.mixGen(o.entities, 21, g)); err != nil {
			return r, err
		}
	}
	c, err := consumers.New(consumers.Config{Registerer: prometheus.NewRegistry()}, pool, js)
	if err != nil {
		return r, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	defer func() { cancel(); <-done }()

	clock := &pruneClock{}
	p, err := retention.New(retention.Config{Now: clock.now, Registerer: prometheus.NewRegistry()}, pool)
	if err != nil {
		return r, err
	}
	run := &windowRun{js: js, p: p, clock: clock, rate: rate}
	if err := run.start(ctx); err != nil {
		return r, err
	}
	// A first window without the pruner: the consumer's warm-up.
	if _, _, err := run.window(ctx, false, 0); err != nil {
		return r, err
	}
	ret := p.Config().Retention
	clock.set(oldest.Add(ret))
	r.steady, err = run.phase(ctx, steadyBlocks, true)
	if errors.Is(err, errDrained) && r.steady.blocks > 0 {
		return r, nil // the median of the blocks that ran; no catch-up
	} else if err != nil {
		return r, err
	}
	newest := oldest.Add(time.Duration(float64(o.ledgerRows) / steadyRate * float64(time.Second))) // the fill's
	clock.set(clock.now().Add(newest.Sub(clock.now().Add(-ret)) / 2))
	r.catchUp, err = run.phase(ctx, catchUpBlocks, false)
	if errors.Is(err, errDrained) && r.catchUp.blocks > 0 {
		err = nil // the median of the blocks that ran
	}
	return r, err
}

// pruneClock is the pruner's clock: it stands still unless running, and
// then runs at speed.
type pruneClock struct {
	mu      sync.Mutex
	base    time.Time
	since   time.Time // when it started running
	running bool
	speed   float64
}

func (c *pruneClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *pruneClock) nowLocked() time.Time {
	if c.running {
		return c.base.Add(time.Duration(float64(time.Since(c.since)) * c.speed))
	}
	return c.base
}

func (c *pruneClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base, c.since = t, time.Now()
}

// run starts (at speed) or stops the clock.
func (c *pruneClock) run(on bool, speed float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base = c.nowLocked()
	c.running, c.since, c.speed = on, time.Now(), speed
}

// windowRun measures windows of one continuous drain.
type windowRun struct {
	js    jetstream.JetStream
	p     *retention.Pruner
	clock *pruneClock
	floor uint64 // the consumer's ack floor at the end of the last window
	at    time.Time
	rate  float64 // events a second of the last window without the pruner
}

func (w *windowRun) ackFloor(ctx context.Context) (uint64, uint64, error) {
	c, err := w.js.Consumer(ctx, stream.Webhooks, stream.Consumer)
	if err != nil {
		return 0, 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.AckFloor.Stream, info.NumPending, nil
}

func (w *windowRun) start(ctx context.Context) error {
	f, _, err := w.ackFloor(ctx)
	w.floor, w.at = f, time.Now()
	return err
}

// errDrained: the stream ran out before the schedule did.
var errDrained = errors.New("the stream ran dry before the schedule ended")

// window runs one window, the pruner passing over every table again and
// again when prune is set (its clock at speed), and returns the events
// settled a second and the rows it deleted.
func (w *windowRun) window(ctx context.Context, prune bool, speed float64) (rate float64, pruned int64, err error) {
	var wg sync.WaitGroup
	var failed error
	pctx, stop := context.WithCancel(ctx)
	if prune {
		w.clock.run(true, speed)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				res, err := w.p.Prune(pctx)
				pruned += res.Total()
				if err != nil && pctx.Err() == nil {
					failed = err
					return
				}
				// The pass interval: serve waits minutes and then
				// deletes what aged meanwhile; a second here deletes the
				// same rows in smaller passes.
				t := time.NewTimer(time.Second)
				select {
				case <-pctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		}()
	}
	t := time.NewTimer(retentionWindow)
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	stop()
	wg.Wait()
	w.clock.run(false, 0)
	if ctx.Err() != nil {
		return 0, 0, ctx.Err()
	}
	if failed != nil {
		return 0, 0, fmt.Errorf("prune: %w", failed)
	}
	f, pending, err := w.ackFloor(ctx)
	if err != nil {
		return 0, 0, err
	}
	now := time.Now()
	rate = float64(f-w.floor) / now.Sub(w.at).Seconds()
	w.floor, w.at = f, now
	if !prune {
		w.rate = rate
	}
	if pending == 0 {
		return rate, pruned, errDrained
	}
	return rate, pruned, nil
}

// phase runs blocks of without, with, with, without. aging: the pruner's
// clock runs at the speed that ages rows as fast as apply inserted them in
// the window before; else at real time.
func (w *windowRun) phase(ctx context.Context, blocks int, aging bool) (phaseResult, error) {
	var res phaseResult
	var costs, without, with []float64
	var withTime time.Duration
	for range blocks {
		var rates [4]float64
		speed := 1.0
		if aging {
			speed = w.rate / steadyRate
		}
		for i, prune := range []bool{false, true, true, false} {
			began := time.Now()
			rate, n, err := w.window(ctx, prune, speed)
			if errors.Is(err, errDrained) {
				return res.finish(costs, without, with, withTime), fmt.Errorf("retention: %w after %d blocks", err, res.blocks)
			} else if err != nil {
				return res, err
			}
			rates[i] = rate
			if prune {
				res.pruned += n
				withTime += time.Since(began)
			}
		}
		wo, wi := (rates[0]+rates[3])/2, (rates[1]+rates[2])/2
		without, with = append(without, wo), append(with, wi)
		costs = append(costs, 1-wi/wo)
		res.blocks++
	}
	return res.finish(costs, without, with, withTime), nil
}

// finish sums up the blocks that ran.
func (res phaseResult) finish(costs, without, with []float64, withTime time.Duration) phaseResult {
	if len(costs) == 0 {
		return res
	}
	res.without, res.with = mean(without), mean(with)
	slices.Sort(costs)
	res.cost = costs[len(costs)/2]
	res.prunedPerSec = float64(res.pruned) / withTime.Seconds()
	return res
}
