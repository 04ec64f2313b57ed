package consumers

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A message the consumer holds is leased: JetStream gives it to another
// consumer (or to this one again) once AckWait passes without word. AckWait
// is short (stream.DefaultAckWait), so that after a crash the held events
// come back within seconds; a batch that takes longer keeps its lease with
// heartbeats, and a clean stop hands the rest back at once.

// heartbeat tells JetStream every third of AckWait that the batch is still
// being worked on, until the returned stop is called.
func (c *Consumer) heartbeat(batch []jetstream.Msg, ackWait time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				for _, m := range batch {
					// Settled messages answer ErrMsgAlreadyAckd: nothing sent.
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// handBackTimeout bounds a hand-back outside a stop (a pause), where ctx
// has no deadline.
const handBackTimeout = 10 * time.Second

// handBack returns the messages held but not applied to JetStream and
// waits until the server has recorded it. A plain Nak only queues the
// message for redelivery in the server's memory: if the server stops
// next (the embedded one stops with the process), the message waits out
// AckWait after the restart. A Nak with a delay stores the new deadline
// with the consumer's state, so a restarted server redelivers at once. It
// is sent as a request: the answer means the server processed it, and
// every ack sent before it (acks are processed in order), so the embedded
// server may stop afterwards without losing any. With nothing to hand
// back, a progress request on the last message settled (a no-op for a
// settled message) is that barrier for the last batch's acks.
func (c *Consumer) handBack(ctx context.Context, held []jetstream.Msg, last jetstream.Msg) {
	if len(held) == 0 && last == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, handBackTimeout)
	defer cancel()
	nc := c.js.Conn()
	request := func(m jetstream.Msg, body []byte) {
		if m.Reply() == "" {
			return
		}
		if _, err := nc.RequestWithContext(ctx, m.Reply(), body); err != nil && ctx.Err() == nil {
			c.log.Warn("hand back to JetStream", "err", err)
		}
	}
	if len(held) == 0 {
		request(last, []byte("+WPI"))
		return
	}
	nak := []byte(`-NAK {"delay": 1000000}`) // 1ms: due at once, and stored
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, m := range held {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			request(m, nak)
		}()
	}
	wg.Wait()
	c.log.Debug("handed back to JetStream", "messages", len(held))
}
