package syncdtest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/stream"
)

// Test secrets; the rotated one is accepted alongside.
const (
	WorkOSSecret        = "whsec_test_workos"
	WorkOSRotated       = "whsec_test_workos_next"
	StripeSecret        = "whsec_test_stripe"
	StripeConnectSecret = "whsec_test_stripe_connect"
)

// JetStream starts an embedded JetStream server for the test, with the
// streams and the durable consumer in place.
func JetStream(t testing.TB) *stream.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatalf("embedded JetStream: %v", err)
	}
	t.Cleanup(conn.Close)
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	return conn
}

// Harness is syncd wired as `syncd serve` wires it, over a fresh database
// and an embedded JetStream.
type Harness struct {
	T      testing.TB
	Pool   *pgxpool.Pool
	DBURL  string
	NATS   *stream.Conn
	Server *httptest.Server
	// ConsumerConfig is used by StartConsumer.
	ConsumerConfig consumers.Config
	// Setup, if set, is called with each consumer StartConsumer builds,
	// before it runs (tests inject handlers with it).
	Setup func(*consumers.Consumer)

	stop context.CancelFunc
	done chan error
}

// NewHarness starts ingest over HTTP; the consumer is started by
// StartConsumer so tests can choose when events are applied.
func NewHarness(t testing.TB) *Harness {
	t.Helper()
	h := &Harness{T: t, DBURL: DatabaseURL(t), NATS: JetStream(t)}
	pool, err := pgxpool.New(context.Background(), h.DBURL)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	h.Pool = pool
	ing, err := ingest.New(ingest.Config{
		WorkOSSecrets:        WorkOSSecret + "," + WorkOSRotated,
		StripeSecrets:        StripeSecret,
		StripeConnectSecrets: StripeConnectSecret,
		PublishTimeout:       5 * time.Second,
	}, h.NATS.JS)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	mux := http.NewServeMux()
	ing.Register(mux)
	h.Server = httptest.NewServer(mux)
	t.Cleanup(h.Server.Close)
	h.ConsumerConfig = consumers.Config{RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	t.Cleanup(h.StopConsumer)
	return h
}

// StartConsumer runs the durable apply consumer in the background.
func (h *Harness) StartConsumer() {
	h.T.Helper()
	if h.done != nil {
		h.T.Fatal("consumer already running")
	}
	c, err := consumers.New(h.ConsumerConfig, h.Pool, h.NATS.JS)
	if err != nil {
		h.T.Fatalf("consumer: %v", err)
	}
	if h.Setup != nil {
		h.Setup(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.done = cancel, make(chan error, 1)
	go func() { h.done <- c.Run(ctx) }()
}

// StopConsumer stops the consumer softly and waits for it.
func (h *Harness) StopConsumer() {
	if h.done == nil {
		return
	}
	h.stop()
	if err := <-h.done; err != nil && !errors.Is(err, context.Canceled) {
		h.T.Errorf("consumer: %v", err)
	}
	h.done = nil
}

// Post sends body to path with one header and returns the status.
func (h *Harness) Post(path, header, value string, body []byte) *http.Response {
	h.T.Helper()
	req, err := http.NewRequest(http.MethodPost, h.Server.URL+path, bytes.NewReader(body))
	if err != nil {
		h.T.Fatal(err)
	}
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := h.Server.Client().Do(req)
	if err != nil {
		h.T.Fatalf("post %s: %v", path, err)
	}
	resp.Body.Close()
	return resp
}

// PostWorkOS signs body as WorkOS does and posts it; it fails the test
// unless the answer is 200.
func (h *Harness) PostWorkOS(body []byte) {
	h.T.Helper()
	resp := h.Post("/webhooks/workos", "WorkOS-Signature", ingest.SignWorkOS(WorkOSSecret, body, time.Now()), body)
	if resp.StatusCode != http.StatusOK {
		h.T.Fatalf("POST /webhooks/workos: %s", resp.Status)
	}
}

// PostStripe signs body with stripe-go's test helper and posts it to the
// platform or Connect endpoint; it fails the test unless the answer is 200.
func (h *Harness) PostStripe(body []byte, connect bool) {
	h.T.Helper()
	path, secret := "/webhooks/stripe", StripeSecret
	if connect {
		path, secret = "/webhooks/stripe/connect", StripeConnectSecret
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
	resp := h.Post(path, "Stripe-Signature", sp.Header, body)
	if resp.StatusCode != http.StatusOK {
		h.T.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// WaitSettled waits until the durable consumer has nothing pending or
// unacknowledged: every stored event was applied, skipped or set aside.
// The consumer's own pending count is updated after the PubAck, not with
// it, so it is read against the stream's last sequence: the ack floor must
// have reached it.
func (h *Harness) WaitSettled() {
	h.T.Helper()
	Eventually(h.T, 30*time.Second, "consumer settles", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := h.NATS.JS.Stream(ctx, stream.Webhooks)
		if err != nil {
			return false
		}
		last := s.CachedInfo().State.LastSeq
		c, err := s.Consumer(ctx, stream.Consumer)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= last
	})
}

// Eventually polls cond until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		<-tick.C
	}
}
