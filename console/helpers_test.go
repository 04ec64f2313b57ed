package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

const testToken = "test-admin-token-0123456789"

// logBuffer collects the console's log, to check the token never shows.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// bundle is a console over a fresh database and JetStream, served by
// httptest, with the harness that posts webhooks and runs the consumer.
type bundle struct {
	t   *testing.T
	h   *syncdtest.Harness
	c   *console.Console
	srv *httptest.Server
	log *logBuffer
}

func setup(t *testing.T, opts ...func(*console.Config)) *bundle {
	t.Helper()
	h := syncdtest.NewHarness(t)
	lb := &logBuffer{}
	cfg := console.Config{Token: testToken, PageSize: 2, Logger: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := console.New(cfg, h.Pool, h.NATS)
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Shutdown(ctx)
	})
	return &bundle{t: t, h: h, c: c, srv: srv, log: lb}
}

// deadLetter stores a dead letter of body as the consumer would.
func (b *bundle) deadLetter(source, typ, eventID, reason string, body []byte) uint64 {
	b.t.Helper()
	m := nats.NewMsg(stream.DeadLetterSubject(source, typ))
	m.Data = body
	m.Header.Set(stream.HeaderSource, source)
	m.Header.Set(stream.HeaderEventType, typ)
	m.Header.Set(stream.HeaderEventID, eventID)
	m.Header.Set(stream.HeaderReceivedAt, time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set(stream.HeaderDLSubject, stream.Subject(source, typ))
	m.Header.Set(stream.HeaderDLSequence, "7")
	m.Header.Set(stream.HeaderDLDeliveries, "5")
	m.Header.Set(stream.HeaderDLClass, "permanent")
	m.Header.Set(stream.HeaderDLError, reason)
	m.Header.Set(stream.HeaderDLFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set(stream.HeaderDLConsumer, stream.Consumer)
	ack, err := b.h.NATS.JS.PublishMsg(context.Background(), m)
	if err != nil {
		b.t.Fatal(err)
	}
	return ack.Sequence
}

func userCreated(eventID, userID, email string) []byte {
	return syncdtest.WorkOSEvent(eventID, "user.created", map[string]any{
		"object": "user", "id": userID, "email": email, "first_name": "Ada", "last_name": "L",
		"email_verified": true, "created_at": syncdtest.Millis(time.Now().Add(-time.Hour)), "updated_at": syncdtest.Millis(time.Now().Add(-time.Minute)),
	})
}

// client is a browser-like HTTP client: cookie jar, no redirects
// followed, so tests see the 303s.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (b *bundle) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: b.t, base: b.srv.URL, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type resp struct {
	code   int
	header http.Header
	body   string
}

func (c *client) do(method, path string, body io.Reader, hdr map[string]string) resp {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	r, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, string(b)}
}

func (c *client) get(path string) resp { return c.do(http.MethodGet, path, nil, nil) }

func (c *client) post(path string, form url.Values) resp {
	return c.do(http.MethodPost, path, strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func (c *client) bearer(method, path string, body any) resp {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	return c.do(method, path, r, map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"})
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", body)
	}
	return m[1]
}

// login logs the client in through the form and keeps the session's
// CSRF token.
func (c *client) login() {
	c.t.Helper()
	page := c.get("/admin/login")
	r := c.post("/admin/login", url.Values{"csrf": {csrfOf(c.t, page.body)}, "token": {testToken}, "next": {"/admin/"}})
	if r.code != http.StatusSeeOther {
		c.t.Fatalf("login: %d %s", r.code, r.body)
	}
	over := c.get("/admin/")
	if over.code != http.StatusOK {
		c.t.Fatalf("overview after login: %d", over.code)
	}
	c.csrf = csrfOf(c.t, over.body)
}

func decode[T any](t *testing.T, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return v
}

func mustCode(t *testing.T, r resp, want int, what string) {
	t.Helper()
	if r.code != want {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, r.code, want, r.body)
	}
}
