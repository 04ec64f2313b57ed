package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/syncd/syncd/syncdtest"
)

// proxy forwards TCP to target until stopped: Postgres that goes away
// under a running serve.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// stop closes the port and every connection through it.
func (p *proxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// With Postgres gone, the public /readyz says "not ready" and nothing
// more: not the user, database, host or port the driver's error names.
// The reason goes to the log and to `syncd status`.
func TestReadyzWithPostgresDownShowsNothing(t *testing.T) {
	dbURL := syncdtest.DatabaseURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db, user, pgHost := strings.TrimPrefix(u.Path, "/"), u.User.Username(), u.Host
	p := startProxy(t, pgHost)
	u.Host = p.ln.Addr().String()
	u.User = url.UserPassword(user, "pw-S3@CRET")
	proxied := u.String()
	_, proxyPort, _ := net.SplitHostPort(u.Host)

	addr := freePort(t)
	t.Setenv("DATABASE_URL", proxied)
	t.Setenv("SYNCD_DATA_DIR", t.TempDir())
	t.Setenv("NATS_URL", "")
	t.Setenv("HTTP_ADDR", addr)
	t.Setenv("WORKOS_WEBHOOK_SECRET", "whsec_ready")
	t.Setenv("STRIPE_WEBHOOK_SECRET", "")
	t.Setenv("STRIPE_CONNECT_WEBHOOK_SECRET", "")
	ctx, cancel := context.WithCancel(context.Background())
	var serveLog syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve"}, io.Discard, &serveLog) }()
	defer func() {
		cancel()
		<-done
	}()
	probe := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	syncdtest.Eventually(t, 30*time.Second, "serve ready", func() bool { code, _ := probe("/readyz"); return code == 200 })
	if code, body := probe("/readyz"); body != "ready\n" {
		t.Fatalf("ready: %d %q, want exactly \"ready\"", code, body)
	}

	p.stop()
	syncdtest.Eventually(t, 30*time.Second, "not ready", func() bool { code, _ := probe("/readyz"); return code == 503 })
	code, body := probe("/readyz")
	if code != 503 || body != "not ready\n" {
		t.Fatalf("Postgres down: %d %q, want 503 \"not ready\"", code, body)
	}
	for _, leak := range []string{user, db, "127.0.0.1", proxyPort, "CRET"} {
		if strings.Contains(body, leak) {
			t.Errorf("/readyz body %q names %q", body, leak)
		}
	}
	if code, body := probe("/healthz"); code != 200 || body != "ready\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// The reason is in the log, its password hidden.
	syncdtest.Eventually(t, 10*time.Second, "reason logged", func() bool { return strings.Contains(serveLog.String(), "not ready") })
	if l := serveLog.String(); !strings.Contains(l, "reason=") || strings.Contains(l, "CRET") {
		t.Errorf("serve log: %s", l)
	}
	// And in syncd status, which reaches serve's embedded server.
	code, out, stderr := runCmd(t, "status")
	if code == 0 || !strings.Contains(out, "not ready") || !strings.Contains(out, "postgres:") || strings.Contains(out+stderr, "CRET") {
		t.Errorf("status with Postgres down: exit %d\n%s%s", code, out, stderr)
	}
}

// A password with '@' in it is not shown in part when the connection
// string does not parse.
func TestDatabaseURLParseErrorHidesPassword(t *testing.T) {
	for _, dsn := range []string{"postgres://u:S3@CRET@host:5432/x?sslmode=bogus", "postgres://u:p@ss:w/rd#1@host/x?connect_timeout=abc"} {
		code, out, stderr := runCmd(t, "migrate", "status", "--database-url", dsn)
		if code == 0 {
			t.Fatalf("%s: accepted", dsn)
		}
		for _, part := range []string{"S3", "CRET", "ss:w", "rd#1"} {
			if strings.Contains(out+stderr, part) {
				t.Errorf("%s: output shows %q: %s", dsn, part, stderr)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the serve goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --max-body is checked against the server's max payload at start, with
// room for the dead-letter copy's headers: an explicit value that does not
// fit is a usage error; the default is lowered to fit.
func TestServeMaxBodyFitsServerMaxPayload(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(srv.Shutdown)
	t.Setenv("DATABASE_URL", "")
	t.Setenv("SYNCD_MAX_BODY", "")
	base := []string{"serve", "--role", "ingest", "--workos-secret", "s", "--nats-url", srv.ClientURL(), "--data-dir", t.TempDir()}
	code, _, stderr := runCmd(t, append(base, "--max-body", "1048576", "--http-addr", freePort(t))...)
	if code != 2 || !strings.Contains(stderr, "--max-body: max body 1048576 bytes plus") || !strings.Contains(stderr, "max_payload of 1048576") {
		t.Fatalf("explicit --max-body over max_payload: exit %d %q", code, stderr)
	}

	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var serveLog syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append(base, "--http-addr", addr), io.Discard, &serveLog) }()
	syncdtest.Eventually(t, 30*time.Second, "serve ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cancel()
	if code := <-done; code != 0 || !strings.Contains(serveLog.String(), "max body lowered") || !strings.Contains(serveLog.String(), "max_body=1032192") {
		t.Fatalf("default max body on a 1 MiB server: exit %d\n%s", code, serveLog.String())
	}
}
