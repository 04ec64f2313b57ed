package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// heap is the live heap after a collection.
func heap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// slowConn sends a request declaring a large body, then only part of it,
// and keeps the connection open; status receives the answer, if any.
type slowConn struct {
	c      net.Conn
	status chan string
}

func dialSlow(t *testing.T, srv *httptest.Server, declared, send int) *slowConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /webhooks/workos HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nWorkOS-Signature: t=1, v1=00\r\n\r\n", declared)
	if _, err := c.Write(bytes.Repeat([]byte(" "), send)); err != nil {
		t.Fatal(err)
	}
	s := &slowConn{c: c, status: make(chan string, 1)}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return
		}
		resp.Body.Close()
		s.status <- fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Retry-After"))
	}()
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Unauthenticated clients that declare large bodies and trickle them
// cannot make ingest allocate what they declare: the heap stays near the
// budget, requests past it get 503 with Retry-After, and a signed webhook
// sent meanwhile is stored.
func TestMemoryBudgetHoldsUnderSlowRequests(t *testing.T) {
	conn := syncdtest.JetStream(t)
	const (
		maxBody = 256 << 10
		budget  = 2 << 20
		slow    = 300
	)
	h, err := ingest.New(ingest.Config{
		WorkOSSecrets: "whsec_a", MaxBody: maxBody, MemoryBudget: budget, MemoryWait: 200 * time.Millisecond,
	}, conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	// Registered before the clients' cleanups, so it runs after them: it
	// waits for every request to end.
	t.Cleanup(srv.Close)

	before := heap()
	// Each declares the largest body and sends 100 bytes: what a copy of
	// Content-Length would make 300 × 256 KiB = 75 MiB.
	for range slow {
		dialSlow(t, srv, maxBody, 100)
	}
	waitFor(t, "the slow requests to be read", func() bool { return h.MemoryInUse() >= slow*1024 })
	if grew := heap() - before; grew > budget+16<<20 {
		t.Fatalf("heap grew %d MiB for %d slow requests, want near the %d MiB budget", grew>>20, slow, budget>>20)
	}
	if h.MemoryInUse() > budget {
		t.Fatalf("%d bytes held, over the budget %d", h.MemoryInUse(), budget)
	}
	body := workosBody("event_meanwhile")
	r := post(t, srv, "POST", "/webhooks/workos", map[string]string{"WorkOS-Signature": ingest.SignWorkOS("whsec_a", body, time.Now())}, body)
	if r.status != 200 {
		t.Fatalf("signed webhook among slow requests: %d %s, want 200", r.status, r.Error)
	}

	// Clients that send more than the budget holds: those that find no
	// room are refused, and what is held never passes the budget.
	var mu sync.Mutex
	refused := 0
	for range 100 {
		s := dialSlow(t, srv, maxBody, 64<<10)
		go func() {
			st := <-s.status // only the refused are answered
			mu.Lock()
			defer mu.Unlock()
			if st != "503 5" {
				t.Errorf("over the budget: answered %q, want 503 with Retry-After 5", st)
			}
			refused++
		}()
	}
	// At most budget/64 KiB of them fit.
	waitFor(t, "requests over the budget to be refused", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused >= 100-budget/(64<<10)
	})
	mu.Lock()
	defer mu.Unlock()
	if held := h.MemoryInUse(); held > budget {
		t.Fatalf("%d bytes held, over the budget %d", held, budget)
	}
	if grew := heap() - before; grew > budget+16<<20 {
		t.Fatalf("heap grew %d MiB, want near the %d MiB budget", grew>>20, budget>>20)
	}
	s, _ := conn.JS.Stream(context.Background(), stream.Webhooks)
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d, want the one signed webhook", n)
	}
}

// Bodies around every buffer size, with and without Content-Length, are
// stored byte for byte; one byte over the limit is a 413.
func TestBodiesOfEverySizeStoredExactly(t *testing.T) {
	conn := syncdtest.JetStream(t)
	srv := newServer(t, conn.JS) // MaxBody 4096
	base := workosBody("event_size")
	n := 0
	for _, size := range []int{len(base), 1023, 1024, 1025, 2048, 2049, 4095, 4096, 4097} {
		for _, chunked := range []bool{false, true} {
			n++
			body := append(workosBody(fmt.Sprintf("event_%d", n)), bytes.Repeat([]byte(" "), max(0, size-len(base)-1))...)
			var rd io.Reader = bytes.NewReader(body)
			if chunked {
				rd = io.MultiReader(rd)
			}
			req, _ := http.NewRequest("POST", srv.URL+"/webhooks/workos", rd)
			req.Header.Set("WorkOS-Signature", ingest.SignWorkOS("whsec_a", body, time.Now()))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := 200
			if len(body) > 4096 {
				want = 413
			}
			if resp.StatusCode != want {
				t.Fatalf("%d bytes (chunked %v): %d, want %d", len(body), chunked, resp.StatusCode, want)
			}
			if want != 200 {
				continue
			}
			s, _ := conn.JS.Stream(context.Background(), stream.Webhooks)
			m, err := s.GetLastMsgForSubject(context.Background(), "webhooks.workos.user.created")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Data, body) {
				t.Fatalf("%d bytes (chunked %v): stored body differs", len(body), chunked)
			}
		}
	}
}

// An event whose id or type cannot be stored safely, or whose body is not
// UTF-8 (encoding/json would read a stray byte as U+FFFD, and two ids
// differing in such bytes as one), is a 400 naming the reason; nothing is
// stored.
func TestHostileIdentityIs400(t *testing.T) {
	conn := syncdtest.JetStream(t)
	srv := newServer(t, conn.JS)
	const identity, notUTF8 = "invalid event identity", "body is not valid UTF-8"
	for name, c := range map[string]struct{ body, want string }{
		"NUL in id":             {`{"object":"event","id":"evt\u0000x","event":"user.created","data":{}}`, identity},
		"ESC in id":             {`{"object":"event","id":"evt\u001b]0;x\u0007","event":"user.created","data":{}}`, identity},
		"invalid UTF-8 type":    {"{\"object\":\"event\",\"id\":\"evt_1\",\"event\":\"user.\xff\xfe\",\"data\":{}}", notUTF8},
		"invalid UTF-8 in data": {"{\"object\":\"event\",\"id\":\"evt_1\",\"event\":\"organization.created\",\"data\":{\"id\":\"org_\xff\"}}", notUTF8},
		"CRLF in type":          {`{"object":"event","id":"evt_1","event":"user\r\nX: y","data":{}}`, identity},
		"long type":             {`{"object":"event","id":"evt_1","event":"user.` + strings.Repeat("x", 300) + `","data":{}}`, identity},
		"long id":               {`{"object":"event","id":"evt_` + strings.Repeat("x", 300) + `","event":"user.created","data":{}}`, identity},
	} {
		b := []byte(c.body)
		req, _ := http.NewRequest("POST", srv.URL+"/webhooks/workos", bytes.NewReader(b))
		req.Header.Set("WorkOS-Signature", ingest.SignWorkOS("whsec_a", b, time.Now()))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(msg), c.want) {
			t.Errorf("%s: %d %s, want 400 %s", name, resp.StatusCode, msg, c.want)
		}
	}
	s, _ := conn.JS.Stream(context.Background(), stream.Webhooks)
	if n := s.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("stream holds %d messages, want none", n)
	}
}
