package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// storeRaw puts a WorkOS event into WEBHOOKS as an older syncd or a
// backfill might have stored it, past any check ingest makes today:
// subject, headers and body as given.
func storeRaw(t *testing.T, js jetstream.JetStream, subject, id, typ string, body []byte) uint64 {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, stream.MsgID("workos", id))
	m.Header.Set(stream.HeaderSource, "workos")
	m.Header.Set(stream.HeaderEventType, typ)
	m.Header.Set(stream.HeaderEventID, id)
	m.Header.Set(stream.HeaderReceivedAt, time.Now().UTC().Format(time.RFC3339Nano))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatalf("store %q: %v", subject, err)
	}
	return ack.Sequence
}

// rawWorkOS is a WorkOS event body built by hand, so that id and type can
// hold bytes encoding/json would not write (invalid UTF-8).
func rawWorkOS(id, typ, createdAt string, data map[string]any) []byte {
	d, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return []byte(`{"object":"event","id":"` + id + `","event":"` + typ + `","data":` + string(d) + `,"created_at":` + createdAt + `}`)
}

// Events that are in the stream already with an identity Postgres or
// Prometheus cannot take, or times outside any real range, end
// dead-lettered (or applied) after bounded attempts; the events around
// them apply, the consumer keeps running, and nothing is left pending,
// also after a restart.
func TestHostileEventsInTheStreamAreSetAsideAndTheRestApplies(t *testing.T) {
	h := syncdtest.NewHarness(t)
	reg := prometheus.NewRegistry()
	h.ConsumerConfig.MaxAttempts = 2
	h.ConsumerConfig.Registerer = reg
	js := h.NATS.JS
	now := `"` + syncdtest.Millis(time.Now().Add(-time.Hour)) + `"`
	long := strings.Repeat("x", 10<<10)

	type hostile struct {
		name, subject, id, typ, createdAt string
		data                              map[string]any
		mayApply                          bool // valid text, only long or odd
	}
	cases := []hostile{
		{name: "NUL in id", id: `event_nul\u0000`},
		{name: "invalid UTF-8 in id", id: "event_bad\xff\xfe"},
		{name: "10 KB id", id: "event_" + long, mayApply: true},
		{name: "CRLF in id", id: `event_crlf\r\nSyncd-Source: stripe`, mayApply: true},
		{name: "NUL in type", typ: `user.created\u0000`},
		{name: "invalid UTF-8 in type", typ: "user.\xffcreated", subject: "webhooks.workos.user._created"},
		{name: "10 KB type", typ: "user." + long, subject: "webhooks.workos.user.long", mayApply: true},
		// Dead-lettered under a subject of the original's tokens: one
		// built from the type would exceed the server's control line.
		{name: "10 KB type, event time in 2999", typ: "user." + long, subject: "webhooks.workos.user.long", createdAt: `"2999-01-01T00:00:00.000Z"`},
		{name: "event time in the year 55000", createdAt: "1700000000000000"},
		{name: "updated_at in 2999", data: map[string]any{"updated_at": "2999-01-01T00:00:00.000Z"}},
		{name: "updated_at before 2000", data: map[string]any{"updated_at": "1970-01-02T00:00:00.000Z"}},
	}
	var good []string
	seqs := map[uint64]hostile{}
	postGood := func() {
		id := fmt.Sprintf("event_good_%d", len(good))
		good = append(good, id)
		user := fmt.Sprintf("user_good_%d", len(good))
		h.PostWorkOS(syncdtest.WorkOSEvent(id, "user.created", userData(user, user+"@example.com", 1)))
	}
	postGood()
	for i, c := range cases {
		if c.id == "" {
			c.id = fmt.Sprintf("event_hostile_%d", i)
		}
		if c.typ == "" {
			c.typ = "user.created"
		}
		if c.createdAt == "" {
			c.createdAt = now
		}
		if c.subject == "" {
			c.subject = "webhooks.workos.user.created"
		}
		user := fmt.Sprintf("user_hostile_%d", i)
		data := userData(user, user+"@example.com", 1)
		for k, v := range c.data {
			data[k] = v
		}
		seq := storeRaw(t, js, c.subject, c.id, c.typ, rawWorkOS(c.id, c.typ, c.createdAt, data))
		seqs[seq] = c
		postGood()
	}
	h.StartConsumer()
	h.WaitSettled()

	ctx := context.Background()
	letters := deadLetters(t, js)
	dead := map[uint64]deadletter.Letter{}
	for _, l := range letters {
		dead[l.OriginalSeq] = l
	}
	for seq, c := range seqs {
		l, ok := dead[seq]
		var ledger int
		if err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE stream_seq = $1`, int64(seq)).Scan(&ledger); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: dead-lettered %v (%.80s), ledger rows %d", c.name, ok, l.Error, ledger)
		switch {
		case ok && ledger == 0:
			if l.Deliveries > 2 || l.Error == "" {
				t.Errorf("%s: dead letter after %d deliveries, reason %q; want at most 2 and a reason", c.name, l.Deliveries, l.Error)
			}
		case !ok && ledger == 1 && c.mayApply:
		default:
			t.Errorf("%s: dead-lettered %v, ledger rows %d; want dead-lettered (or applied)", c.name, ok, ledger)
		}
	}
	var applied int
	if err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE event_id LIKE 'event_good_%' AND outcome = 'applied'`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != len(good) {
		t.Errorf("events around the hostile ones applied: %d, want %d", applied, len(good))
	}
	// Labels stayed within what Prometheus takes: the registry gathers,
	// and types syncd does not route are "other".
	if _, err := reg.Gather(); err != nil {
		t.Errorf("metrics do not gather: %v", err)
	}
	if got := metric(t, reg, "syncd_dead_lettered_total", map[string]string{"type": "other"}); got < 2 {
		t.Errorf("syncd_dead_lettered_total{type=other} = %v, want the hostile types", got)
	}

	// Alive, and after a restart nothing comes back.
	postGood()
	syncdtest.Eventually(t, 30*time.Second, "a later event applies", func() bool {
		var n int
		err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE event_id = $1`, good[len(good)-1]).Scan(&n)
		return err == nil && n == 1
	})
	h.StopConsumer()
	h.ConsumerConfig.Registerer = prometheus.NewRegistry()
	h.StartConsumer()
	h.WaitSettled()
	if d := dlDepth(t, js); d != uint64(len(letters)) {
		t.Errorf("dead letters after restart: %d, want %d", d, len(letters))
	}
}

// Bodies that are not UTF-8, stored before ingest refused them: two
// organizations whose ids differ only in an invalid byte are each
// dead-lettered with the reason, and neither becomes the row of the other
// (encoding/json reads both ids as "org_\uFFFD").
func TestBodiesThatAreNotUTF8AreDeadLettered(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.ConsumerConfig.MaxAttempts = 1
	created := `"` + syncdtest.Millis(time.Now().Add(-time.Hour)) + `"`
	var seqs []uint64
	for i, org := range []string{"org_\xff", "org_\xfe"} {
		id := fmt.Sprintf("event_org_%d", i)
		body := []byte(`{"object":"event","id":"` + id + `","event":"organization.created","created_at":` + created +
			`,"data":{"object":"organization","id":"` + org + `","name":"Org ` + id + `","created_at":` + created + `,"updated_at":` + created + `}}`)
		seqs = append(seqs, storeRaw(t, h.NATS.JS, "webhooks.workos.organization.created", id, "organization.created", body))
	}
	h.PostWorkOS(syncdtest.WorkOSEvent("event_good", "user.created", userData("user_good", "good@example.com", 1)))
	h.StartConsumer()
	h.WaitSettled()

	ctx := context.Background()
	letters := deadLetters(t, h.NATS.JS)
	dead := map[uint64]string{}
	for _, l := range letters {
		dead[l.OriginalSeq] = l.Error
	}
	for _, seq := range seqs {
		if reason, ok := dead[seq]; !ok || !strings.Contains(reason, "not valid UTF-8") {
			t.Errorf("event at %d: dead-lettered %v (%q), want dead-lettered as not valid UTF-8", seq, ok, reason)
		}
	}
	var orgs, good int
	if err := h.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM webhook_events WHERE event_id = 'event_good')`).Scan(&orgs, &good); err != nil {
		t.Fatal(err)
	}
	if orgs != 0 || good != 1 {
		t.Errorf("%d organizations, good event applied %d times; want none and once", orgs, good)
	}
}
