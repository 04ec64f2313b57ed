package stream_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
)

// hostile are the classes of event data that once broke the pipeline.
var hostile = map[string]string{
	"NUL":          "user\x00created",
	"invalid UTF8": "user.\xff\xfe.created",
	"10 KB":        strings.Repeat("a.", 5<<10),
	"10 KB token":  strings.Repeat("x", 10<<10),
	"spaces":       "user created now",
	"wildcards":    "user.*.>",
	"empty tokens": "..user..",
	"only dots":    ".....",
	"empty":        "",
	"CRLF":         "user\r\nNats-Msg-Id: forged",
	"ESC":          "\x1b]0;owned\x07",
	"C1 and DEL":   "a\u0085b\x7f",
}

func TestCheckIdentity(t *testing.T) {
	for name, v := range hostile {
		if err := stream.CheckIdentity(v, "user.created"); !errors.Is(err, stream.ErrInvalidIdentity) && name != "spaces" && name != "wildcards" && name != "empty tokens" && name != "only dots" {
			t.Errorf("id %s: %v, want ErrInvalidIdentity", name, err)
		}
		if err := stream.CheckIdentity("evt_1", v); !errors.Is(err, stream.ErrInvalidIdentity) && name != "spaces" && name != "wildcards" && name != "empty tokens" && name != "only dots" {
			t.Errorf("type %s: %v, want ErrInvalidIdentity", name, err)
		}
	}
	for _, ok := range []string{"evt_01HX", strings.Repeat("é", stream.MaxIdentity/2), strings.Repeat("a", stream.MaxIdentity)} {
		if err := stream.CheckIdentity(ok, ok); err != nil {
			t.Errorf("CheckIdentity(%q): %v", ok, err)
		}
	}
	if err := stream.CheckIdentity(strings.Repeat("a", stream.MaxIdentity+1), "t"); err == nil || !strings.Contains(err.Error(), "256 bytes") {
		t.Errorf("over the bound: %v", err)
	}
	// Backfill and ingest build messages through EventMsg: it refuses too.
	if _, err := stream.EventMsg("workos", events.Envelope{ID: "evt\x00", Type: "user.created"}, []byte("{}"), time.Now(), ""); !errors.Is(err, stream.ErrInvalidIdentity) {
		t.Errorf("EventMsg with a NUL id: %v", err)
	}
}

// validSubject checks NATS's rules for a published subject and syncd's bound.
func validSubject(t *testing.T, what, s string) {
	t.Helper()
	if len(s) > stream.MaxSubject {
		t.Errorf("%s: subject is %d bytes, over %d", what, len(s), stream.MaxSubject)
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			t.Errorf("%s: %q has an empty token", what, s)
			return
		}
		if tok == "*" || tok == ">" || strings.ContainsAny(tok, "*>") {
			t.Errorf("%s: %q has a wildcard", what, s)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f {
				t.Errorf("%s: %q has byte %#x", what, s, c)
				return
			}
		}
	}
}

func TestSubjectsFromHostileData(t *testing.T) {
	seen := map[string]string{}
	for name, v := range hostile {
		for _, s := range []string{stream.Subject("workos", v), stream.DeadLetterSubject("stripe", v), stream.DeadLetterSubject(v, v)} {
			validSubject(t, name, s)
		}
		if prev, dup := seen[stream.SubjectToken(v)]; dup && len(v) > stream.MaxTypeTokens {
			t.Errorf("%s and %s map to one subject", name, prev)
		}
		seen[stream.SubjectToken(v)] = name
	}
	// Long types that differ only at the end stay apart.
	a, b := strings.Repeat("a", 600)+"1", strings.Repeat("a", 600)+"2"
	if stream.SubjectToken(a) == stream.SubjectToken(b) {
		t.Error("two long types share a subject")
	}
	// Real types are unchanged.
	if got := stream.Subject("stripe", "customer.subscription.updated"); got != "webhooks.stripe.customer.subscription.updated" {
		t.Errorf("Subject = %q", got)
	}
	if got := stream.SourceToken("a.b c"); got != "a_b_c" {
		t.Errorf("SourceToken = %q", got)
	}
}

func TestHeaderValueFromHostileData(t *testing.T) {
	for name, v := range hostile {
		for _, max := range []int{stream.MaxHeaderValue, stream.MaxReason, 16} {
			got := stream.HeaderValue(v, max)
			if len(got) > max {
				t.Errorf("%s: %d bytes, over %d", name, len(got), max)
			}
			if !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
				t.Errorf("%s: %q holds a control character or invalid UTF-8", name, got)
			}
		}
	}
	if got := stream.HeaderValue("a\r\nb\x00", 64); got != `a\r\nb\x00` {
		t.Errorf("escapes: %q", got)
	}
	if got := stream.HeaderValue("evt_1 ok é", 64); got != "evt_1 ok é" {
		t.Errorf("clean value changed: %q", got)
	}
}

// A dead letter built from a stored message carrying every hostile class
// — in its subject parts, its headers and its reason — with the largest
// body the embedded server admits is stored, and the connection survives.
func TestHostileDeadLetterIsPublishable(t *testing.T) {
	ctx := context.Background()
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	maxBody := conn.NC.MaxPayload() - stream.HeaderRoom
	if err := conn.CheckMaxBody(maxBody); err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	for name, v := range hostile {
		seq++
		orig := nats.Header{}
		for i := range 64 {
			orig.Set(fmt.Sprintf("X-Hostile-%02d", i), strings.Repeat("\r\n\x00"+v, 8))
		}
		orig.Set(stream.HeaderEventType, v)
		orig.Set("Nats-Expected-Stream", "ELSEWHERE")
		dl := stream.DeadLetterMsg(make([]byte, maxBody), orig, stream.DeadLetterInfo{
			Source: v, Type: v, EventID: v, Subject: "webhooks." + v, Sequence: seq, Deliveries: 5,
			Class: v, Reason: "panic: " + v + "\ngoroutine 1 [running]:\n" + strings.Repeat("frame\n", 4<<10), Consumer: v,
		})
		validSubject(t, name, dl.Subject)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := conn.JS.PublishMsg(pctx, dl)
		cancel()
		if err != nil {
			t.Fatalf("%s: publish dead letter: %v", name, err)
		}
		if !conn.NC.IsConnected() {
			t.Fatalf("%s: connection lost", name)
		}
	}
	s, _ := conn.JS.Stream(ctx, stream.DeadLetter)
	if n := s.CachedInfo().State.Msgs; n != uint64(len(hostile)) {
		t.Fatalf("DEADLETTER holds %d, want %d", n, len(hostile))
	}
}

// A 2xx must be on disk: the embedded server is configured to fsync every
// message before its PubAck unless the operator opts out.
func TestEmbeddedServerSyncsBeforeAck(t *testing.T) {
	ctx := context.Background()
	for mode, want := range map[stream.SyncMode]bool{"": true, stream.SyncAlways: true, stream.SyncInterval: false} {
		conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: filepath.Join(t.TempDir(), "data"), Sync: mode})
		if err != nil {
			t.Fatal(err)
		}
		always, interval, ok := conn.EmbeddedSync()
		conn.Close()
		if !ok || always != want {
			t.Errorf("sync %q: server SyncAlways %v (interval %s), want %v", mode, always, interval, want)
		}
		if !want && interval <= 0 {
			t.Errorf("sync %q: no background interval", mode)
		}
	}
	if _, err := stream.Open(ctx, stream.ConnConfig{DataDir: t.TempDir(), Sync: "sometimes"}); err == nil || !strings.Contains(err.Error(), "want always or interval") {
		t.Errorf("bad sync mode: %v", err)
	}
}

// An external server's max payload (1 MiB by default) bounds the body too.
func TestCheckMaxBodyAgainstExternalServer(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer srv.Shutdown()
	conn, err := stream.Open(context.Background(), stream.ConnConfig{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.CheckMaxBody(1 << 20); err == nil || !strings.Contains(err.Error(), "max_payload of 1048576") {
		t.Errorf("1 MiB body on a 1 MiB server: %v", err)
	}
	if err := conn.CheckMaxBody(1<<20 - stream.HeaderRoom); err != nil {
		t.Errorf("body with room for headers: %v", err)
	}
}

func TestEscapeLinesKeepsLineBreaksAndTabsOnly(t *testing.T) {
	for in, want := range map[string]string{
		"line\nnext\ttab":   "line\nnext\ttab",
		"a\x1b[31mb\r\n":    "a\\x1b[31mb\\r\n",
		"bidi\u202eevil\n":  "bidi\\u202eevil\n",
		"bad\xff\nutf8":     "bad\\xff\nutf8",
		"real \uFFFD stays": "real \uFFFD stays",
	} {
		if got := stream.EscapeLines(in); got != want {
			t.Errorf("EscapeLines(%q) = %q, want %q", in, got, want)
		}
	}
	if got := stream.Escape("bidi\u202e\n"); got != `bidi\u202e\n` {
		t.Errorf("Escape = %q", got)
	}
}
