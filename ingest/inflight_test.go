package ingest_test

import (
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
