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
// come back within seconds; while the process lives its messages keep
// their lease with heartbeats, and a clean stop hands them back at once.

// leases are the messages a consumer holds: pulled and not yet settled,
// in a batch being applied or buffered behind it. Every third of AckWait
// each gets a progress heartbeat, so a batch that takes longer than
// AckWait keeps its messages, and those waiting behind it theirs.
type leases struct {
	mu   sync.Mutex
	held map[jetstream.Msg]struct{}
	stop chan struct{}
	done sync.WaitGroup
}

func (c *Consumer) startLeases(ackWait time.Duration) *leases {
	l := &leases{held: map[jetstream.Msg]struct{}{}, stop: make(chan struct{})}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		tick := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				l.mu.Lock()
				held := make([]jetstream.Msg, 0, len(l.held))
				for m := range l.held {
					held = append(held, m)
				}
				l.mu.Unlock()
				for _, m := range held {
					// A message settled meanwhile answers
					// ErrMsgAlreadyAckd: nothing is sent.
					_ = m.InProgress()
				}
			}
		}
	}()
	return l
}

func (l *leases) add(m jetstream.Msg) {
	l.mu.Lock()
	l.held[m] = struct{}{}
	l.mu.Unlock()
}

func (l *leases) release(ms []jetstream.Msg) {
	l.mu.Lock()
	for _, m := range ms {
		delete(l.held, m)
	}
	l.mu.Unlock()
}

// close stops the heartbeats.
func (l *leases) close() {
	close(l.stop)
	l.done.Wait()
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
