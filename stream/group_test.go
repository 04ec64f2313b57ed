package stream_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/stream"
)

// gatedJS holds the PubAck of the next plain publish until release, so a
// test decides what queues behind it.
// With silence set, a message it matches is dropped and never answered,
// as nats-server does not answer a commit that failed after staging.
type gatedJS struct {
	jetstream.JetStream
	gate    chan struct{}
	silence func(*nats.Msg) bool
}

func (g *gatedJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if g.silence != nil && g.silence(m) {
		return heldFuture{ok: make(chan *jetstream.PubAck), err: make(chan error)}, nil
	}
	gate := g.gate
	g.gate = nil
	fut, err := g.JetStream.PublishMsgAsync(m, opts...)
	if err != nil || gate == nil {
		return fut, err
	}
	h := heldFuture{PubAckFuture: fut, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		<-gate
		select {
		case a := <-fut.Ok():
			h.ok <- a
		case err := <-fut.Err():
			h.err <- err
		}
	}()
	return h, nil
}

type heldFuture struct {
	jetstream.PubAckFuture
	ok  chan *jetstream.PubAck
	err chan error
}

func (h heldFuture) Ok() <-chan *jetstream.PubAck { return h.ok }
func (h heldFuture) Err() <-chan error            { return h.err }

func groupConn(t *testing.T, atomic bool) *stream.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := stream.Ensure(ctx, conn.JS, stream.Config{AtomicPublish: atomic}, stream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	return conn
}

func webhookMsg(id string) *nats.Msg {
	m := nats.NewMsg("webhooks.stripe.customer.updated")
	m.Data = []byte(`{"id":"` + id + `"}`)
	m.Header.Set(jetstream.MsgIDHeader, "stripe:"+id)
	return m
}

// publishHeld publishes first while the next plain publish's PubAck is
// held, then ids, which queue behind it, then releases, and returns each
// message's PubAck (first's at 0).
func publishHeld(t *testing.T, g *stream.GroupPublisher, js *gatedJS, first string, ids ...string) []*jetstream.PubAck {
	t.Helper()
	gate := make(chan struct{})
	js.gate = gate
	var futs []jetstream.PubAckFuture
	for _, id := range append([]string{first}, ids...) {
		f, err := g.PublishMsgAsync(webhookMsg(id))
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	close(gate)
	acks := make([]*jetstream.PubAck, len(futs))
	for i, f := range futs {
		select {
		case acks[i] = <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("%s: %v", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no PubAck", f.Msg().Header.Get(jetstream.MsgIDHeader))
		}
	}
	return acks
}

// checkStored says each PubAck's sequence holds its own message, once.
func checkStored(t *testing.T, conn *stream.Conn, ids []string, acks []*jetstream.PubAck) {
	t.Helper()
	ctx := context.Background()
	s, err := conn.JS.Stream(ctx, stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]string{}
	for i, a := range acks {
		if a.Duplicate {
			continue
		}
		if prev, ok := seen[a.Sequence]; ok {
			t.Errorf("%s and %s both got sequence %d", prev, ids[i], a.Sequence)
		}
		seen[a.Sequence] = ids[i]
		m, err := s.GetMsg(ctx, a.Sequence)
		if err != nil {
			t.Fatalf("%s at %d: %v", ids[i], a.Sequence, err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != "stripe:"+ids[i] || string(m.Data) != `{"id":"`+ids[i]+`"}` {
			t.Errorf("sequence %d holds %s %s, want %s's message", a.Sequence, got, m.Data, ids[i])
		}
	}
}

func streamMsgs(t *testing.T, conn *stream.Conn) uint64 {
	t.Helper()
	s, err := conn.JS.Stream(context.Background(), stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Messages that arrive while a publish is outstanding go out as one atomic
// batch, and each still gets the PubAck of its own stored message.
func TestGroupCommitBatchesWhatQueues(t *testing.T) {
	conn := groupConn(t, true)
	js := &gatedJS{JetStream: conn.JS}
	g := stream.NewGroupPublisher(conn.NC, js, stream.GroupConfig{MaxInFlight: 1, MinBatch: 2, MaxBatch: 40})
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_%d", i)
	}
	acks := publishHeld(t, g, js, "evt_first", ids...)
	checkStored(t, conn, append([]string{"evt_first"}, ids...), acks)
	if st := g.Stats(); st.Batched != 100 || st.Batches != 3 || st.Fallbacks != 0 {
		t.Errorf("stats %+v, want the 100 queued in 3 batches of at most 40", st)
	}
	if n := streamMsgs(t, conn); n != 101 {
		t.Errorf("stream holds %d messages, want 101", n)
	}
}

// A batch refused for a duplicate in it is sent again one by one: the
// duplicate gets its duplicate PubAck and the rest are stored. An id sent
// lately, or twice in the queue, goes on its own and does not spoil a batch.
func TestGroupCommitDuplicates(t *testing.T) {
	conn := groupConn(t, true)
	if _, err := conn.JS.PublishMsg(context.Background(), webhookMsg("evt_old")); err != nil {
		t.Fatal(err)
	}
	js := &gatedJS{JetStream: conn.JS}
	g := stream.NewGroupPublisher(conn.NC, js, stream.GroupConfig{MaxInFlight: 1, MinBatch: 2})

	// evt_old is in the stream but not among the ids this publisher sent:
	// the server refuses the batch.
	ids := []string{"evt_a", "evt_old", "evt_b", "evt_c", "evt_c"}
	acks := publishHeld(t, g, js, "evt_first", ids...)
	ids = append([]string{"evt_first"}, ids...)
	checkStored(t, conn, ids, acks)
	for i, a := range acks {
		if want := ids[i] == "evt_old" || i == len(ids)-1; a.Duplicate != want {
			t.Errorf("%s (%d): duplicate %v, want %v", ids[i], i, a.Duplicate, want)
		}
	}
	if st := g.Stats(); st.Fallbacks != 1 || st.Batches != 0 {
		t.Errorf("stats %+v, want one batch refused and sent one by one", st)
	}

	// evt_a was sent by this publisher: it goes alone, the batch is stored.
	ids = []string{"evt_d", "evt_a", "evt_e"}
	acks = publishHeld(t, g, js, "evt_second", ids...)
	ids = append([]string{"evt_second"}, ids...)
	checkStored(t, conn, ids, acks)
	if !acks[2].Duplicate || acks[1].Duplicate || acks[3].Duplicate {
		t.Errorf("duplicates %v %v %v, want only evt_a's", acks[1].Duplicate, acks[2].Duplicate, acks[3].Duplicate)
	}
	if st := g.Stats(); st.Fallbacks != 1 || st.Batches != 1 || st.Batched != 2 {
		t.Errorf("stats %+v, want evt_d and evt_e in one batch", st)
	}
	if n := streamMsgs(t, conn); n != 1+4+3 {
		t.Errorf("stream holds %d messages, want 8", n)
	}
}

// A stream that does not take atomic batches gets every message on its own
// and is not asked again.
func TestGroupCommitWithoutAtomicBatches(t *testing.T) {
	conn := groupConn(t, false)
	js := &gatedJS{JetStream: conn.JS}
	g := stream.NewGroupPublisher(conn.NC, js, stream.GroupConfig{MaxInFlight: 1, MinBatch: 2})
	for round := range 2 {
		ids := []string{fmt.Sprintf("evt_%d_a", round), fmt.Sprintf("evt_%d_b", round), fmt.Sprintf("evt_%d_c", round)}
		first := fmt.Sprintf("evt_%d_first", round)
		acks := publishHeld(t, g, js, first, ids...)
		checkStored(t, conn, append([]string{first}, ids...), acks)
	}
	if st := g.Stats(); st.Fallbacks != 1 || st.Batches != 0 {
		t.Errorf("stats %+v, want one refused batch, then none tried", st)
	}
	if n := streamMsgs(t, conn); n != 8 {
		t.Errorf("stream holds %d messages, want 8", n)
	}
}

// A send the server never answers gives its slot back after AckTimeout:
// its messages fail with a timeout (their callers have given up by then,
// and sending them again would load a slow server twice), and what queued
// behind goes on.
func TestGroupCommitGivesUpOnAnUnansweredSend(t *testing.T) {
	conn := groupConn(t, true)
	js := &gatedJS{JetStream: conn.JS}
	g := stream.NewGroupPublisher(conn.NC, js, stream.GroupConfig{MaxInFlight: 1, MinBatch: 2, AckTimeout: 100 * time.Millisecond})
	awaitErr := func(f jetstream.PubAckFuture) {
		t.Helper()
		select {
		case a := <-f.Ok():
			t.Fatalf("%s acknowledged %+v, want a timeout", f.Msg().Header.Get(jetstream.MsgIDHeader), a)
		case err := <-f.Err():
			if !errors.Is(err, nats.ErrTimeout) {
				t.Fatalf("%s: %v, want a timeout", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: neither PubAck nor error: its slot is held", f.Msg().Header.Get(jetstream.MsgIDHeader))
		}
	}

	js.silence = func(m *nats.Msg) bool { return m.Header.Get(jetstream.MsgIDHeader) == "stripe:evt_lost" }
	lost, err := g.PublishMsgAsync(webhookMsg("evt_lost"))
	if err != nil {
		t.Fatal(err)
	}
	awaitErr(lost)

	// The commit of the batch that queues behind evt_first is lost.
	js.silence = func(m *nats.Msg) bool { return m.Header.Get("Nats-Batch-Commit") != "" }
	gate := make(chan struct{})
	js.gate = gate
	var futs []jetstream.PubAckFuture
	for _, id := range []string{"evt_first", "evt_a", "evt_b", "evt_c"} {
		f, err := g.PublishMsgAsync(webhookMsg(id))
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	close(gate)
	select {
	case <-futs[0].Ok():
	case err := <-futs[0].Err():
		t.Fatalf("evt_first: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("evt_first: no PubAck")
	}
	for _, f := range futs[1:] {
		awaitErr(f)
	}
	if st := g.Stats(); st.Fallbacks != 0 || st.Batches != 0 {
		t.Errorf("stats %+v, want the unanswered batch neither stored nor sent again", st)
	}

	// The slots are free: the next webhook is stored at once.
	js.silence = nil
	next, err := g.PublishMsgAsync(webhookMsg("evt_next"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-next.Ok():
	case err := <-next.Err():
		t.Fatalf("evt_next: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("evt_next: no PubAck")
	}
	if n := streamMsgs(t, conn); n != 2 {
		t.Errorf("stream holds %d messages, want evt_first and evt_next", n)
	}
}
