package consumers

// The JetStream side of the consumer: the pull loop that hands batches to
// the applier, and the pause that follows a transient failure.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/backoff"
	"github.com/syncd/syncd/stream"
)

// pullHeartbeat is the idle heartbeat asked of the server for each pull.
const pullHeartbeat = jetstream.PullHeartbeat(5 * time.Second)

// consume pulls and applies batches until ctx is done or a batch fails
// transiently, which it returns, or JetStream fails it (err). Either way it
// stops fetching and hands back what it had buffered before returning.
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer) (transient, err error) {
	// A pull the server dropped (its durable deleted and made again, a
	// leader change) is noticed by missed heartbeats: at 5 s, within ~10 s
	// rather than the library's 30 s heartbeat.
	it, err := cons.Messages(jetstream.PullMaxMessages(2*c.cfg.BatchSize), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", c.cfg.Durable, err)
	}
	ackWait := stream.DefaultAckWait
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		ackWait = info.Config.AckWait
	}
	// The batches in flight finish even when a stop arrives, given
	// StopTimeout from the stop, and so does the hand-back; a slow batch
	// is not cut short otherwise (a deadline would fail it as transient
	// forever).
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.StopTimeout, cancelWork) })
	defer stopTimer()

	leases := c.startLeases(ackWait)
	msgs := make(chan jetstream.Msg, c.cfg.BatchSize)
	var lastErr error // written by the pump before it closes msgs
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				// Reconnects are reported and recovered from by the
				// iterator; terminal errors (the durable deleted) close
				// it and end the loop above. Missed heartbeats mean the
				// server lost our pull (the durable may have been made
				// again under the same name): stop, so Run opens the
				// durable afresh instead of waiting on a pull nobody
				// serves.
				lastErr = err
				c.log.Warn("pull from JetStream", "err", err)
				if errors.Is(err, jetstream.ErrNoHeartbeat) {
					it.Stop()
				}
				continue
			}
			leases.add(m)
			msgs <- m
		}
	}()
	var last jetstream.Msg // the last message settled, for the barrier
	defer func() {
		// Soft stop or pause: no more pulls; what was buffered goes back
		// at once rather than after AckWait.
		it.Drain()
		var held []jetstream.Msg
		for m := range msgs {
			held = append(held, m)
		}
		leases.close()
		c.handBack(work, held, last)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					return nil, nil
				}
				if lastErr == nil {
					lastErr = errors.New("message iterator closed")
				}
				return nil, fmt.Errorf("pull from consumer %s: %w", c.cfg.Durable, lastErr)
			}
			batch := c.fill(ctx, m, msgs)
			settled, transient := c.process(work, batch)
			leases.release(batch)
			if settled != nil {
				last = settled
			}
			if transient != nil {
				return transient, nil
			}
		}
	}
}

// pause waits until Postgres answers again, probing with backoff. The
// caller has stopped fetching: events keep arriving in the stream and wait
// there, so however long the outage, none is delivered, counted or
// dead-lettered meanwhile.
func (c *Consumer) pause(ctx context.Context, cause error) {
	c.metrics.paused.Set(1)
	defer c.metrics.paused.Set(0)
	c.log.Warn("consumer paused: probing Postgres", "err", cause)
	wait := min(c.cfg.RetryMin, c.cfg.ProbeMax)
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, max(c.cfg.ProbeMax, time.Second))
		err := c.pool.Ping(pctx)
		cancel()
		if err == nil {
			c.log.Info("consumer resumed", "probes", attempt)
			return
		}
		if !backoff.Sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, c.cfg.ProbeMax)
	}
}

// fill makes a batch of first and what follows it: what has arrived, and
// for up to Linger after first what arrives meanwhile, at most BatchSize.
// Under a steady load a batch that waits a little is several times fuller,
// and Postgres spends its CPU on rows rather than on statements and
// commits; a backlog fills the batch at once and does not wait.
func (c *Consumer) fill(ctx context.Context, first jetstream.Msg, msgs <-chan jetstream.Msg) []jetstream.Msg {
	batch := []jetstream.Msg{first}
	var linger <-chan time.Time
	if c.cfg.Linger > 0 {
		t := time.NewTimer(c.cfg.Linger)
		defer t.Stop()
		linger = t.C
	}
	for len(batch) < c.cfg.BatchSize {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
			continue
		default:
		}
		if linger == nil {
			return batch
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		case <-linger:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}
