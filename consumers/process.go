package consumers

// A batch of messages through the applier: decoded, applied, and each
// message settled by the policy in settle.go.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/stream"
)

// Process applies a batch of messages and settles each one: ack after
// commit, redelivery with backoff, or dead letter. It returns the error
// that failed the whole batch transiently, if any, so the caller can pause.
// Nothing an event carries makes it panic: a panic while decoding,
// applying or settling an event is that event's permanent failure.
func (c *Consumer) Process(ctx context.Context, msgs []jetstream.Msg) error {
	_, err := c.process(ctx, msgs)
	return err
}

// process is Process that also returns the last message it acked or
// terminated, if any: settled for good, a no-op to touch again.
func (c *Consumer) process(ctx context.Context, msgs []jetstream.Msg) (settled jetstream.Msg, transient error) {
	start := time.Now()
	ctx, tr := c.traceBatch(ctx, msgs)
	defer func() { tr.end(transient) }()
	evs := make([]Event, 0, len(msgs))
	kept := make([]jetstream.Msg, 0, len(msgs))
	for _, m := range msgs {
		ev, err := decodeProtected(m)
		if err != nil {
			if c.settleFailure(ctx, m, ev, err) {
				settled = m
			}
			continue
		}
		evs = append(evs, ev)
		kept = append(kept, m)
	}
	// Each worker applies the events of its keys in its own transaction,
	// on its own connection: two workers never write one row at once.
	parts := c.applier.Partition(evs, c.cfg.ApplyWorkers)
	type outcome struct {
		res []Result
		err error
	}
	outs := make([]outcome, len(parts))
	var wg sync.WaitGroup
	for p, idx := range parts {
		sub := make([]Event, len(idx))
		for j, i := range idx {
			sub[j] = evs[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[p].res, outs[p].err = c.applyBlamed(ctx, sub)
		}()
	}
	wg.Wait()
	for p, idx := range parts {
		if err := outs[p].err; err != nil {
			// A transient failure: nothing of this part was committed and
			// no event is to blame, so it does not count toward
			// dead-lettering.
			c.log.WarnContext(ctx, "batch failed, will retry", "events", len(idx), "class", Classify(err), "err", err)
			for _, i := range idx {
				tr.retry(kept[i], err)
				_ = kept[i].NakWithDelay(c.backoff(stream.Deliveries(kept[i])))
				c.metrics.retries.WithLabelValues(c.sourceLabel(evs[i].Source), string(Transient)).Inc()
			}
			transient = err
			continue
		}
		for j, i := range idx {
			m, r := kept[i], outs[p].res[j]
			tr.result(m, r)
			if r.Err != nil {
				if c.settleFailure(ctx, m, evs[i], r.Err) {
					settled = m
				}
				continue
			}
			c.settleApplied(m, evs[i], r.Outcome)
			settled = m
		}
	}
	if transient != nil {
		return settled, transient
	}
	c.metrics.batch.Observe(time.Since(start).Seconds())
	return settled, nil
}

// decodeProtected is DecodeMsg, with a panic turned into the message's
// permanent failure and the facts needed to count and dead-letter it
// taken from the message itself.
func decodeProtected(m jetstream.Msg) (ev Event, err error) {
	err = protect(func() (err error) {
		ev, err = DecodeMsg(m)
		return err
	})
	if errors.Is(err, ErrPanic) {
		ev = Event{}
		_ = protect(func() error {
			ev.Source, ev.Envelope.Type = stream.SplitSubject(m.Subject())
			if md, err := m.Metadata(); err == nil {
				ev.Seq = md.Sequence.Stream
			}
			return nil
		})
	}
	return ev, err
}

// applyBlamed is Apply that blames every permanent failure on an event.
// Apply blames the events it can; a permanent error it returns belongs to
// none in particular (a panic outside any event's part, a commit refused),
// so the events are applied again one at a time, each in its own
// transaction, where the error is the event's. Transient errors fail the
// batch as before.
func (c *Consumer) applyBlamed(ctx context.Context, evs []Event) ([]Result, error) {
	var res []Result
	err := protect(func() (err error) {
		res, err = c.Apply(ctx, evs)
		return err
	})
	if err == nil || Classify(err) == Transient {
		return res, err
	}
	if len(evs) == 1 {
		return []Result{{Err: err}}, nil
	}
	c.log.WarnContext(ctx, "batch failed permanently without a culprit, applying its events one at a time", "events", len(evs), "err", err)
	res = make([]Result, len(evs))
	for i := range evs {
		r, err := c.applyBlamed(ctx, evs[i:i+1])
		if err != nil {
			// Transient: the batch is retried; what committed meanwhile
			// is skipped then, through the ledger.
			return nil, err
		}
		res[i] = r[0]
	}
	return res, nil
}

// Apply applies events as Applier.Apply does, without settling them.
func (c *Consumer) Apply(ctx context.Context, evs []Event) ([]Result, error) {
	return c.applier.Apply(ctx, evs)
}
