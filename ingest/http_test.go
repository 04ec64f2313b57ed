package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

func newServer(t *testing.T, js ingest.Publisher) *httptest.Server {
	t.Helper()
	h, err := ingest.New(ingest.Config{
		WorkOSSecrets:        "whsec_a, whsec_b",
		StripeSecrets:        syncdtest.StripeSecret,
		StripeConnectSecrets: syncdtest.StripeConnectSecret,
		MaxBody:              4096,
		PublishTimeout:       2 * time.Second,
	}, js)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	status     int
	retryAfter string
	Error      string `json:"error"`
}

func post(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string, body []byte) reply {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(b, &r); err != nil || r.Error == "" {
			t.Fatalf("%d answer is not a JSON error: %q", resp.StatusCode, b)
		}
	}
	return r
}

func workosBody(id string) []byte {
	return []byte(`{"object":"event","id":"` + id + `","event":"user.created","data":{"id":"user_1"},"created_at":"2026-01-15T12:00:00.000Z"}`)
}

func TestWebhookStoredWithHeadersAndRawBytes(t *testing.T) {
	conn := syncdtest.JetStream(t)
	srv := newServer(t, conn.JS)
	body := workosBody("event_A")
	// Odd spacing survives byte for byte.
	body = append([]byte("  "), body...)
	r := post(t, srv, "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_b", body, time.Now())}, body)
	if r.status != 200 {
		t.Fatalf("status %d (%s), want 200", r.status, r.Error)
	}
	// The duplicate is also a 200 and is not stored twice.
	r = post(t, srv, "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", body, time.Now())}, body)
	if r.status != 200 {
		t.Fatalf("duplicate: status %d, want 200", r.status)
	}
	ctx := context.Background()
	s, err := conn.JS.Stream(ctx, stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "webhooks.workos.user.created" {
		t.Errorf("subject %q", m.Subject)
	}
	if !bytes.Equal(m.Data, body) {
		t.Errorf("stored body differs from the raw body")
	}
	for k, want := range map[string]string{
		jetstream.MsgIDHeader:   "workos:event_A",
		stream.HeaderSource:     "workos",
		stream.HeaderEventType:  "user.created",
		stream.HeaderEventID:    "event_A",
		stream.HeaderProviderAt: "2026-01-15T12:00:00Z",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if m.Header.Get(stream.HeaderReceivedAt) == "" {
		t.Errorf("no receive time header")
	}
}

func TestWebhookStatuses(t *testing.T) {
	conn := syncdtest.JetStream(t)
	srv := newServer(t, conn.JS)
	now := time.Now()
	body := workosBody("event_B")
	sig := func(b []byte) map[string]string {
		return map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", b, now)}
	}
	big := append(workosBody("event_big")[:0:0], workosBody("event_big")...)
	big = append(big, bytes.Repeat([]byte(" "), 5000)...)
	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   []byte
		want   int
		code   string
	}{
		{"missing signature", "POST", "/webhooks/workos", nil, body, 400, "missing_signature"},
		{"malformed signature", "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": "t=x"}, body, 400, "malformed_signature"},
		{"wrong secret", "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("nope", body, now)}, body, 401, "invalid_signature"},
		{"stale", "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", body, now.Add(-time.Hour))}, body, 401, "timestamp_out_of_tolerance"},
		{"future", "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", body, now.Add(time.Hour))}, body, 401, "timestamp_out_of_tolerance"},
		{"not JSON", "POST", "/webhooks/workos", sig([]byte("hello")), []byte("hello"), 400, "invalid_event"},
		{"empty body", "POST", "/webhooks/workos", sig([]byte{}), []byte{}, 400, "invalid_event"},
		{"JSON but no event", "POST", "/webhooks/workos", sig([]byte(`{"a":1}`)), []byte(`{"a":1}`), 400, "invalid_event"},
		{"JSON array", "POST", "/webhooks/workos", sig([]byte(`[1]`)), []byte(`[1]`), 400, "invalid_event"},
		{"too large", "POST", "/webhooks/workos", sig(big), big, 413, "body_too_large"},
		{"wrong method", "GET", "/webhooks/workos", nil, nil, 405, "method_not_allowed"},
		{"stripe wrong secret", "POST", "/webhooks/stripe", map[string]string{"Stripe-Signature": ingest.SignStripe(syncdtest.StripeConnectSecret, body, now)}, body, 401, "invalid_signature"},
		{"stripe connect with platform secret", "POST", "/webhooks/stripe/connect", map[string]string{"Stripe-Signature": ingest.SignStripe(syncdtest.StripeSecret, body, now)}, body, 401, "invalid_signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, srv, tc.method, tc.path, tc.hdr, tc.body)
			if r.status != tc.want || r.Error != tc.code {
				t.Fatalf("got %d %q, want %d %q", r.status, r.Error, tc.want, tc.code)
			}
		})
	}
	s, _ := conn.JS.Stream(context.Background(), stream.Webhooks)
	if info, _ := s.Info(context.Background()); info.State.Msgs != 0 {
		t.Fatalf("rejected requests stored %d messages", info.State.Msgs)
	}
}

func TestWebhook503WhenJetStreamDoesNotStore(t *testing.T) {
	conn := syncdtest.JetStream(t)
	srv := newServer(t, conn.JS)
	// The stream is gone: nothing can store the event.
	if err := conn.JS.DeleteStream(context.Background(), stream.Webhooks); err != nil {
		t.Fatal(err)
	}
	body := workosBody("event_C")
	r := post(t, srv, "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", body, time.Now())}, body)
	if r.status != 503 || r.retryAfter == "" {
		t.Fatalf("got %d with Retry-After %q, want 503 with Retry-After", r.status, r.retryAfter)
	}
	// NATS itself gone.
	conn.Close()
	r = post(t, srv, "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", body, time.Now())}, body)
	if r.status != 503 || !strings.Contains(r.Error, "not_stored") {
		t.Fatalf("server down: got %d %q, want 503 not_stored", r.status, r.Error)
	}
}

// A body sent without Content-Length (chunked) is held to the same limit.
func TestChunkedBodyOverLimitIs413(t *testing.T) {
	conn := syncdtest.JetStream(t)
	srv := newServer(t, conn.JS)
	body := append(workosBody("event_chunked"), bytes.Repeat([]byte(" "), 8192)...)
	// A reader of unknown length makes the client send it chunked.
	req, _ := http.NewRequest("POST", srv.URL+"/webhooks/workos", io.MultiReader(bytes.NewReader(body)))
	req.Header.Set("WorkOS-Signature", ingest.SignWorkOS("whsec_a", body, time.Now()))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("content length %d, status %d; want a chunked request answered 413", req.ContentLength, resp.StatusCode)
	}
}

// A body shorter than its Content-Length is a 400, not a 500 or a hang.
func TestTruncatedBodyIs400(t *testing.T) {
	conn := syncdtest.JetStream(t)
	srv := newServer(t, conn.JS)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"object":"event"`
	fmt.Fprintf(c, "POST /webhooks/workos HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nWorkOS-Signature: %s\r\n\r\n%s",
		ingest.SignWorkOS("whsec_a", []byte(body), time.Now()), body)
	c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}
