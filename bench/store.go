package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/stream"
)

// The store alone: what the end-to-end run's webhooks wait for at least.
//
// A webhook's 2xx waits for its event to be fsynced by JetStream. This
// measures that wait with nothing else on the machine's hands: the same
// embedded server and stream (file store, sync always) on the same disk,
// the realistic mix's messages published at the end-to-end rate, open
// loop, with no HTTP, no signatures, no Postgres and no consumer. Once
// with a plain publish per message (an fsync each), once through syncd's
// group commit. No syncd webhook can be answered faster than this, so it
// is the baseline the end-to-end p99 is read against.

// storeResult is the PubAck latency of each round of the two ways to
// publish.
type storeResult struct {
	plain, group []loadResult
	batched      float64 // share of the messages group commit batched
}

// publisher is what both jetstream.JetStream and stream.GroupPublisher are.
type publisher interface {
	PublishMsgAsync(*nats.Msg, ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

func benchStoreAlone(ctx context.Context, o options, fx fixtures, root string, rate float64) (storeResult, error) {
	var r storeResult
	evs, err := decodeAll(fx.mix(40000, 3))
	if err != nil {
		return r, err
	}
	msgs := make([]*nats.Msg, len(evs))
	for i, ev := range evs {
		if msgs[i], err = stream.EventMsg(ev.Source, ev.Envelope, ev.Body, time.Now(), ""); err != nil {
			return r, err
		}
		// Every message is stored: a fresh id each, as in the load runs.
		msgs[i].Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s:%s:%d", ev.Source, ev.Envelope.ID, i))
	}
	// Two rounds of each in turn: the disk's stalls come and go, and
	// every round is reported.
	var batched []float64
	for _, grouped := range []bool{false, true, true, false} {
		res, b, err := storeRun(ctx, o, root, msgs, rate, grouped)
		if err != nil {
			return r, err
		}
		if grouped {
			r.group, batched = append(r.group, res), append(batched, b)
		} else {
			r.plain = append(r.plain, res)
		}
	}
	r.batched = (batched[0] + batched[1]) / 2
	return r, nil
}

// storeRun publishes msgs at rate for o.loadFor into a fresh embedded
// store under root and measures each message's wait for its PubAck.
func storeRun(ctx context.Context, o options, root string, msgs []*nats.Msg, rate float64, grouped bool) (loadResult, float64, error) {
	dir, err := os.MkdirTemp(root, "store-")
	if err != nil {
		return loadResult{}, 0, err
	}
	defer os.RemoveAll(dir)
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir, Sync: stream.SyncAlways})
	if err != nil {
		return loadResult{}, 0, err
	}
	defer conn.Close()
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		return loadResult{}, 0, err
	}
	var pub publisher = conn.JS
	var g *stream.GroupPublisher
	if grouped {
		g = stream.NewGroupPublisher(conn.NC, conn.JS, stream.GroupConfig{})
		pub = g
	}
	if err := quiesce(ctx, o.adminURL); err != nil {
		return loadResult{}, 0, err
	}
	res := paced(ctx, rate, o.loadFor, func(n int64) func() error {
		m := msgs[int(n-1)%len(msgs)]
		return func() error {
			f, err := pub.PublishMsgAsync(m)
			if err != nil {
				return err
			}
			select {
			case <-f.Ok():
				return nil
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	batched := 0.0
	if g != nil && res.Requests > 0 {
		batched = float64(g.Stats().Batched) / float64(res.Requests)
	}
	return res, batched, nil
}

// p99s are the rounds' p99, in order.
func p99s(rs []loadResult) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%.1f", float64(r.P99)/float64(time.Millisecond)))
	}
	return strings.Join(parts, ", ") + " ms"
}

// value is the row's result.
func (r storeResult) value() string {
	return fmt.Sprintf("p99 of each 8 s round: %s one fsync each; %s with group commit (%.0f%% batched); p50 %s", p99s(r.plain), p99s(r.group), 100*r.batched, ms(r.plain[0].P50))
}

// errs notes failed publishes.
func (r storeResult) errs() string {
	var n int64
	for _, l := range append(append([]loadResult(nil), r.plain...), r.group...) {
		n += l.Errors
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d publishes failed", n)
}

// note says what the store alone takes, for the end-to-end row.
func (r storeResult) note() string {
	return "JetStream alone at this rate on this disk (5c): p99 " + p99s(r.plain) + " in its rounds of one fsync each"
}
