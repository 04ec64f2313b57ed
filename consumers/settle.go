package consumers

// The settle policy: ack after commit, redelivery with backoff for
// transient failures, attempt counts and dead letters for permanent ones.

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/backoff"
	"github.com/syncd/syncd/stream"
)

// settleApplied acks an event whose batch committed.
func (c *Consumer) settleApplied(m jetstream.Msg, ev Event, out Outcome) {
	c.failures.forget(ev.Seq)
	_ = m.Ack()
	if err := protect(func() error {
		source := c.sourceLabel(ev.Source)
		c.metrics.events.WithLabelValues(source, string(out)).Inc()
		c.metrics.lastApplied.WithLabelValues(source).SetToCurrentTime()
		if !ev.ReceivedAt.IsZero() {
			c.metrics.lag.WithLabelValues(source).Observe(time.Since(ev.ReceivedAt).Seconds())
		}
		return nil
	}); err != nil {
		c.log.Error("metrics of an applied event", "seq", ev.Seq, "err", err)
	}
}

// settleFailure redelivers a failed event later or dead-letters it, and
// reports whether the message was terminated. Only permanent failures
// count toward MaxAttempts; undecodable ones are dead-lettered at once.
func (c *Consumer) settleFailure(ctx context.Context, m jetstream.Msg, ev Event, cause error) (terminated bool) {
	err := protect(func() error {
		terminated = c.settleFailureUnprotected(ctx, m, ev, cause)
		return nil
	})
	if err == nil {
		return terminated
	}
	// Settling itself panicked: a permanent failure of the event like
	// any other, bounded by MaxAttempts, then a dead letter that carries
	// nothing of the event but the message.
	stack, _ := panicStack(err)
	attempts := c.failures.add(ev.Seq)
	c.log.Error("settling an event panicked", "seq", ev.Seq, "attempt", attempts, "err", err, "stack", stack)
	if attempts < c.cfg.MaxAttempts {
		_ = m.NakWithDelay(c.backoff(attempts))
		return false
	}
	var stored bool
	panicked := err
	if perr := protect(func() (err error) {
		stored, err = c.deadLetter(ctx, m, Event{Seq: ev.Seq}, Permanent, panicked, attempts)
		return err
	}); perr != nil {
		c.log.Error("dead letter after a panic", "seq", ev.Seq, "stored", stored, "err", perr)
		if !stored {
			_ = m.NakWithDelay(c.backoff(stream.Deliveries(m)))
		}
		return false
	}
	c.failures.forget(ev.Seq)
	return true
}

func (c *Consumer) settleFailureUnprotected(ctx context.Context, m jetstream.Msg, ev Event, cause error) (terminated bool) {
	class := Classify(cause)
	attempts := 1
	if class == Permanent {
		attempts = c.failures.add(ev.Seq)
	}
	source := c.sourceLabel(ev.Source)
	log := c.log.With("source", ev.Source, "event_id", ev.Envelope.ID, "type", ev.Envelope.Type, "seq", ev.Seq, "attempt", attempts, "class", class)
	if stack, ok := panicStack(cause); ok {
		log = log.With("stack", stack)
	}
	switch {
	case class == Transient:
		log.WarnContext(ctx, "event failed, will retry", "err", cause)
		c.metrics.retries.WithLabelValues(source, string(class)).Inc()
		_ = m.NakWithDelay(c.backoff(stream.Deliveries(m)))
		return false
	case class == Permanent && attempts < c.cfg.MaxAttempts:
		log.WarnContext(ctx, "event failed, will retry", "err", cause)
		c.metrics.retries.WithLabelValues(source, string(class)).Inc()
		_ = m.NakWithDelay(c.backoff(attempts))
		return false
	}
	stored, err := c.deadLetter(ctx, m, ev, class, cause, attempts)
	if err != nil && !stored {
		// A NATS failure: transient. The count is kept, so the next
		// delivery tries the dead letter again instead of starting over.
		log.Error("dead letter not stored, will retry", "err", err)
		c.metrics.retries.WithLabelValues(source, string(Transient)).Inc()
		_ = m.NakWithDelay(c.backoff(stream.Deliveries(m)))
		return false
	}
	if err != nil {
		// Stored but the original not terminated: it comes back after
		// AckWait. The count is kept so that it is dead-lettered again at
		// once, and that copy is dropped as a duplicate.
		log.Warn("dead letter stored, original not terminated", "err", err)
	} else {
		c.failures.forget(ev.Seq)
	}
	log.ErrorContext(ctx, "event dead-lettered", "err", cause)
	c.metrics.deadLettered.WithLabelValues(source, c.typeLabel(ev.Source, ev.Envelope.Type), string(class)).Inc()
	return err == nil
}

// deadLetter stores a copy of the message in DEADLETTER with the reason,
// then terminates the original (see DeadLetter).
func (c *Consumer) deadLetter(ctx context.Context, m jetstream.Msg, ev Event, class Class, cause error, attempts int) (stored bool, err error) {
	return DeadLetter(ctx, c.js, c.cfg.Durable, m, ev, class, cause, attempts)
}

// failureCounts counts permanent failures per stream sequence, in memory:
// lost on restart or split between replicas, which only grants an event a
// few more attempts. Entries of events another replica settled are pruned
// once they are old.
type failureCounts map[uint64]failureCount

type failureCount struct {
	n    int
	last time.Time
}

func (f failureCounts) add(seq uint64) int {
	now := time.Now()
	if len(f) >= 4096 {
		for k, v := range f {
			if now.Sub(v.last) > time.Hour {
				delete(f, k)
			}
		}
	}
	fc := f[seq]
	fc.n++
	fc.last = now
	f[seq] = fc
	return fc.n
}

func (f failureCounts) forget(seq uint64) { delete(f, seq) }

// backoff is the redelivery delay after the n-th failure.
func (c *Consumer) backoff(n int) time.Duration {
	return backoff.Delay(n, c.cfg.RetryMin, c.cfg.RetryMax)
}
