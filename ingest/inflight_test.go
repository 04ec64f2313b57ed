package ingest_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// gated holds every publish to the real JetStream until open is closed:
// JetStream falling behind, on cue.
type gated struct {
	js      jetstream.JetStream
	open    chan struct{}
	entered chan struct{}
}

func (g *gated) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	g.entered <- struct{}{}
	<-g.open
	return g.js.PublishMsgAsync(m, opts...)
}

// TestInFlightLimitShedsAtOnce: with MaxInFlight webhooks waiting for
// JetStream, the next verified one is answered 503 with Retry-After at
// once instead of joining the queue; once JetStream catches up, the held
// ones are stored and the refused one, retried, is too.
func TestInFlightLimitShedsAtOnce(t *testing.T) {
	conn := syncdtest.JetStream(t)
	g := &gated{js: conn.JS, open: make(chan struct{}), entered: make(chan struct{}, 8)}
	h, err := ingest.New(ingest.Config{WorkOSSecrets: "whsec_a", MaxInFlight: 2, PublishTimeout: 30 * time.Second}, g)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	send := func(id string) reply {
		body := workosBody(id)
		return post(t, srv, http.MethodPost, "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", body, time.Now())}, body)
	}

	held := make(chan reply, 2)
	for _, id := range []string{"event_held_1", "event_held_2"} {
		go func() { held <- send(id) }()
		<-g.entered
	}
	if got := send("event_shed"); got.status != http.StatusServiceUnavailable || got.Error != "busy" || got.retryAfter == "" {
		t.Fatalf("third webhook while two wait: %+v, want 503 busy with Retry-After", got)
	}
	close(g.open)
	for range 2 {
		if r := <-held; r.status != http.StatusOK {
			t.Fatalf("held webhook: %+v", r)
		}
	}
	if h.InFlight() != 0 {
		t.Fatalf("%d still counted in flight", h.InFlight())
	}
	if r := send("event_shed"); r.status != http.StatusOK {
		t.Fatalf("refused webhook retried: %+v", r)
	}
	s, err := conn.JS.Stream(t.Context(), stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("stream holds %d messages, want 3", info.State.Msgs)
	}
}

func TestInFlightLimitMustBePositive(t *testing.T) {
	if err := (ingest.Config{WorkOSSecrets: "whsec_a", MaxInFlight: -1}).Check(); err == nil {
		t.Fatal("a negative in-flight limit was accepted")
	}
}

// late is a publisher whose PubAcks come when the test says, or whose
// publish panics.
type late struct {
	ok    chan *jetstream.PubAck
	panic bool
}

type lateFuture struct {
	ok  chan *jetstream.PubAck
	msg *nats.Msg
}

func (f lateFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f lateFuture) Err() <-chan error            { return nil }
func (f lateFuture) Msg() *nats.Msg               { return f.msg }

func (l *late) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if l.panic {
		panic("publisher bug")
	}
	return lateFuture{l.ok, m}, nil
}

// TestInFlightSlotIsHeldUntilTheClientIsDone: a webhook whose PubAck is
// late gets its 503, but keeps its slot (and body) until the client
// library settles the publish: while JetStream is stalled, no more
// messages are let in than the limit. A publisher that panics gives its
// slot back.
func TestInFlightSlotIsHeldUntilTheClientIsDone(t *testing.T) {
	l := &late{ok: make(chan *jetstream.PubAck, 1)}
	h, err := ingest.New(ingest.Config{WorkOSSecrets: "whsec_a", MaxInFlight: 1, PublishTimeout: 50 * time.Millisecond}, l)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	send := func(id string) reply {
		body := workosBody(id)
		return post(t, srv, http.MethodPost, "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", body, time.Now())}, body)
	}
	if r := send("event_late"); r.status != http.StatusServiceUnavailable || r.Error != "not_stored" {
		t.Fatalf("webhook without a PubAck in time: %+v, want 503 not_stored", r)
	}
	if h.InFlight() != 1 {
		t.Fatalf("%d in flight after the timeout, want 1 (the client still holds the message)", h.InFlight())
	}
	if r := send("event_next"); r.status != http.StatusServiceUnavailable || r.Error != "busy" {
		t.Fatalf("webhook while the late one is pending: %+v, want 503 busy", r)
	}
	l.ok <- &jetstream.PubAck{Stream: stream.Webhooks, Sequence: 1}
	deadline := time.Now().Add(10 * time.Second)
	for h.InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slot was not given back once the publish settled")
		}
		time.Sleep(time.Millisecond) // awaiting the settling goroutine
	}

	l.panic = true
	body := workosBody("event_panic")
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/workos", bytes.NewReader(body))
	req.Header.Set("WorkOS-Signature", ingest.SignWorkOS("whsec_a", body, time.Now()))
	if resp, err := http.DefaultClient.Do(req); err == nil { // the server drops the connection of a panicking handler
		resp.Body.Close()
	}
	if h.InFlight() != 0 {
		t.Fatalf("%d in flight after a publisher panic, want 0", h.InFlight())
	}
}

func TestInFlightLimitIsBoundedByTheClient(t *testing.T) {
	if err := (ingest.Config{WorkOSSecrets: "whsec_a", MaxInFlight: stream.MaxPendingPublishes + 1}).Check(); err == nil {
		t.Fatal("an in-flight limit above the client's pending publishes was accepted")
	}
}
