package syncdtest

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/service"
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

// Harness is syncd as `syncd serve` runs it — the service package, with
// ingest and the consumer role — over a fresh database and an embedded
// JetStream, listening on a free loopback port.
type Harness struct {
	T testing.TB
	// Service is the running service; Pool and NATS are its own.
	Service *service.Service
	Pool    *pgxpool.Pool
	DBURL   string
	NATS    *stream.Conn
	// URL is the service's HTTP address, http://127.0.0.1:port.
	URL string
	// ConsumerConfig is used by StartConsumer.
	ConsumerConfig consumers.Config
	// Setup, if set, is called with each consumer StartConsumer builds,
	// before it runs (tests inject handlers with it).
	Setup func(*consumers.Consumer)

	client *http.Client
}

// HarnessConfig is the service configuration NewHarness starts: test
// secrets, the consumer held until StartConsumer, no retention (tests
// use events from long ago), a database and data dir of the test's own.
func HarnessConfig(t testing.TB) service.Config {
	t.Helper()
	return service.Config{
		Role:        service.RoleAll,
		DatabaseURL: DatabaseURL(t),
		NATS:        stream.ConnConfig{DataDir: filepath.Join(t.TempDir(), "data")},
		HTTPAddr:    "127.0.0.1:0",
		Ingest: ingest.Config{
			WorkOSSecrets:        WorkOSSecret + "," + WorkOSRotated,
			StripeSecrets:        StripeSecret,
			StripeConnectSecrets: StripeConnectSecret,
			PublishTimeout:       5 * time.Second,
		},
		HoldConsumer: true,
		Registry:     prometheus.NewRegistry(),
	}
}

// NewHarness starts the service; the consumer is started by StartConsumer
// so tests can choose when events are applied.
func NewHarness(t testing.TB) *Harness {
	t.Helper()
	return NewHarnessWith(t, HarnessConfig(t))
}

// NewHarnessWith starts the service from cfg (see HarnessConfig).
func NewHarnessWith(t testing.TB, cfg service.Config) *Harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := service.New(ctx, cfg)
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	if err := svc.Start(ctx); err != nil {
		_ = svc.Stop(context.Background())
		t.Fatalf("start service: %v", err)
	}
	h := &Harness{
		T: t, Service: svc, Pool: svc.Pool(), DBURL: cfg.DatabaseURL, NATS: svc.NATS(),
		URL:            "http://" + svc.Addr().String(),
		ConsumerConfig: consumers.Config{RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond},
		client:         &http.Client{Timeout: 30 * time.Second},
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h.StopConsumer()
		if err := svc.Stop(ctx); err != nil {
			t.Errorf("stop service: %v", err)
		}
	})
	return h
}

// StartConsumer runs the durable apply consumer in the background, with
// ConsumerConfig.
func (h *Harness) StartConsumer() {
	h.T.Helper()
	if err := h.Service.StartConsumer(h.ConsumerConfig, h.Setup); err != nil {
		h.T.Fatalf("consumer: %v", err)
	}
}

// StopConsumer stops the consumer softly and waits for it.
func (h *Harness) StopConsumer() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Service.StopConsumer(ctx); err != nil {
		h.T.Errorf("consumer: %v", err)
	}
}

// Post sends body to path with one header and returns the status.
func (h *Harness) Post(path, header, value string, body []byte) *http.Response {
	h.T.Helper()
	req, err := http.NewRequest(http.MethodPost, h.URL+path, bytes.NewReader(body))
	if err != nil {
		h.T.Fatal(err)
	}
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := h.client.Do(req)
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
