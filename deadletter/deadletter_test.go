package deadletter_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// put stores a dead letter the way the consumer does.
func put(t *testing.T, js jetstream.JetStream, source, typ, eventID, class, reason string) uint64 {
	t.Helper()
	m := nats.NewMsg(stream.DeadLetterSubject(source, typ))
	m.Data = []byte(`{"id":"` + eventID + `","event":"` + typ + `","data":{}}`)
	m.Header.Set(stream.HeaderSource, source)
	m.Header.Set(stream.HeaderEventType, typ)
	m.Header.Set(stream.HeaderEventID, eventID)
	m.Header.Set(stream.HeaderReceivedAt, time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set(stream.HeaderDLSubject, stream.Subject(source, typ))
	m.Header.Set(stream.HeaderDLSequence, "7")
	m.Header.Set(stream.HeaderDLDeliveries, "5")
	m.Header.Set(stream.HeaderDLClass, class)
	m.Header.Set(stream.HeaderDLError, reason)
	m.Header.Set(stream.HeaderDLFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set(stream.HeaderDLConsumer, stream.Consumer)
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func seqs(ls []deadletter.Letter) []uint64 {
	out := []uint64{}
	for _, l := range ls {
		out = append(out, l.Seq)
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestListFiltersAndGet(t *testing.T) {
	conn := syncdtest.JetStream(t)
	ctx := context.Background()
	store, err := deadletter.Open(ctx, conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := store.List(ctx, deadletter.Filter{}); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %v %v", got, err)
	}
	a := put(t, conn.JS, "workos", "user.created", "event_a", "permanent", `ERROR: new row violates check constraint "users_no_poison" (SQLSTATE 23514)`)
	b := put(t, conn.JS, "workos", "organization_membership.created", "event_b", "undecodable", "undecodable payload: data")
	cut := time.Now()
	c := put(t, conn.JS, "stripe", "customer.subscription.updated", "evt_c", "permanent", "violated invariant: no customer")
	d := put(t, conn.JS, "workos", "user.created", "event_d", "undecodable", "undecodable payload: user.created without id")

	for _, tc := range []struct {
		name string
		f    deadletter.Filter
		want []uint64
	}{
		{"all", deadletter.Filter{}, []uint64{a, b, c, d}},
		{"source", deadletter.Filter{Source: "workos"}, []uint64{a, b, d}},
		{"type", deadletter.Filter{Type: "user.created"}, []uint64{a, d}},
		{"type with dots", deadletter.Filter{Type: "customer.subscription.updated"}, []uint64{c}},
		{"type is not a prefix", deadletter.Filter{Type: "user"}, []uint64{}},
		{"source and type", deadletter.Filter{Source: "stripe", Type: "user.created"}, []uint64{}},
		{"error substring ignores case", deadletter.Filter{Error: "CHECK CONSTRAINT"}, []uint64{a}},
		{"error and source", deadletter.Filter{Source: "workos", Error: "undecodable"}, []uint64{b, d}},
		{"since", deadletter.Filter{Since: cut}, []uint64{c, d}},
		{"until", deadletter.Filter{Until: cut}, []uint64{a, b}},
		{"since and until", deadletter.Filter{Since: cut, Until: time.Now()}, []uint64{c, d}},
		{"future", deadletter.Filter{Since: time.Now().Add(time.Hour)}, []uint64{}},
	} {
		got, err := store.List(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !equal(seqs(got), tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, seqs(got), tc.want)
		}
	}

	l, err := store.Get(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "stripe" || l.Type != "customer.subscription.updated" || l.EventID != "evt_c" || l.Deliveries != 5 ||
		l.OriginalSeq != 7 || l.OriginalSubject != "webhooks.stripe.customer.subscription.updated" || l.Class != "permanent" ||
		l.Consumer != stream.Consumer || !strings.Contains(string(l.Data), "evt_c") || l.Time.IsZero() {
		t.Errorf("letter %+v", l)
	}
	if _, err := store.Get(ctx, 999); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("unknown sequence: %v, want ErrNotFound", err)
	}
	if n, err := store.Depth(ctx); err != nil || n != 4 {
		t.Errorf("depth %d %v, want 4", n, err)
	}

	// Purge removes exactly what it is given; a second purge of the same
	// letter is not an error.
	sum := store.PurgeAll(ctx, []deadletter.Letter{l}, deadletter.Options{DryRun: true})
	if sum.Succeeded != 1 || len(sum.Failed) != 0 {
		t.Errorf("dry-run purge summary %+v", sum)
	}
	if n, _ := store.Depth(ctx); n != 4 {
		t.Fatalf("dry-run purge removed something: depth %d", n)
	}
	sum = store.PurgeAll(ctx, []deadletter.Letter{l, l}, deadletter.Options{})
	if sum.Succeeded != 2 || len(sum.Failed) != 0 {
		t.Errorf("purge summary %+v", sum)
	}
	got, err := store.List(ctx, deadletter.Filter{})
	if err != nil || !equal(seqs(got), []uint64{a, b, d}) {
		t.Errorf("after purge: %v %v", seqs(got), err)
	}
}

func TestFilterValidate(t *testing.T) {
	now := time.Now()
	for _, f := range []deadletter.Filter{
		{Since: now, Until: now.Add(-time.Hour)},
		{Source: "work*"},
		{Source: "workos.x"},
		{Type: "user.>"},
		{Type: "user created"},
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", f)
		}
	}
	if err := (deadletter.Filter{Source: "workos", Type: "user.created", Since: now.Add(-time.Hour), Until: now}).Validate(); err != nil {
		t.Errorf("valid filter: %v", err)
	}
}

// A letter whose original subject is not in WEBHOOKS is refused and kept.
func TestRetryRefusesForeignSubject(t *testing.T) {
	conn := syncdtest.JetStream(t)
	ctx := context.Background()
	store, err := deadletter.Open(ctx, conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	seq := put(t, conn.JS, "workos", "user.created", "event_x", "permanent", "boom")
	l, err := store.Get(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	l.OriginalSubject = "elsewhere.workos.user.created"
	if _, err := store.Retry(ctx, l); err == nil {
		t.Fatal("retry to a foreign subject succeeded")
	}
	sum := store.RetryAll(ctx, []deadletter.Letter{l}, deadletter.Options{DryRun: true})
	if len(sum.Failed) != 1 {
		t.Errorf("dry run did not report the bad subject: %+v", sum)
	}
	if _, err := store.Get(ctx, seq); err != nil {
		t.Errorf("dead letter gone after a failed retry: %v", err)
	}
}

// The full round: an event fails permanently and is dead-lettered; a dry
// run changes nothing; a retry before the cause is fixed sets it aside
// again (nothing lost); once the cause is fixed a retry applies it exactly
// once and it leaves DEADLETTER; retrying the same letter again stores
// nothing twice.
func TestRetryAfterCauseFixedAppliesOnceAndLeavesDeadLetter(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.ConsumerConfig.MaxAttempts = 1
	ctx := context.Background()
	if _, err := h.Pool.Exec(ctx, `ALTER TABLE users ADD CONSTRAINT users_no_poison CHECK (email NOT LIKE 'poison%')`); err != nil {
		t.Fatal(err)
	}
	body := syncdtest.WorkOSEvent("event_fixme", "user.created", map[string]any{
		"object": "user", "id": "user_fixme", "email": "poison@example.com", "email_verified": true,
		"created_at": "2026-01-15T12:00:00.000Z", "updated_at": "2026-01-15T12:00:00.000Z",
	})
	h.PostWorkOS(body)
	h.StartConsumer()
	h.WaitSettled()

	store, err := deadletter.Open(ctx, h.NATS.JS)
	if err != nil {
		t.Fatal(err)
	}
	letters, err := store.List(ctx, deadletter.Filter{Source: "workos", Type: "user.created"})
	if err != nil || len(letters) != 1 {
		t.Fatalf("dead letters: %+v %v", letters, err)
	}
	first := letters[0]
	webhooksLast := func() uint64 {
		s, err := h.NATS.JS.Stream(ctx, stream.Webhooks)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.LastSeq
	}
	before := webhooksLast()

	// Dry run: nothing published, nothing removed.
	sum := store.RetryAll(ctx, letters, deadletter.Options{DryRun: true})
	if !sum.DryRun || sum.Succeeded != 1 || len(sum.Failed) != 0 {
		t.Errorf("dry-run summary %+v", sum)
	}
	if got := webhooksLast(); got != before {
		t.Errorf("dry run published: WEBHOOKS last sequence %d, was %d", got, before)
	}
	if _, err := store.Get(ctx, first.Seq); err != nil {
		t.Errorf("dry run removed the dead letter: %v", err)
	}

	// Cause not fixed yet: the retry fails the same way and comes back as
	// a new dead letter that says where it came from.
	if _, err := store.Retry(ctx, first); err != nil {
		t.Fatal(err)
	}
	h.WaitSettled()
	if _, err := store.Get(ctx, first.Seq); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("retried dead letter still there: %v", err)
	}
	letters, err = store.List(ctx, deadletter.Filter{})
	if err != nil || len(letters) != 1 {
		t.Fatalf("dead letters after a failed retry: %+v %v", letters, err)
	}
	second := letters[0]
	if second.Seq == first.Seq || second.EventID != "event_fixme" || second.Header.Get(deadletter.HeaderRetryOf) != strconv.FormatUint(first.Seq, 10) ||
		string(second.Data) != string(body) {
		t.Errorf("second dead letter %+v headers %v", second, second.Header)
	}

	// Fix the cause, retry: applied once, gone from DEADLETTER.
	if _, err := h.Pool.Exec(ctx, `ALTER TABLE users DROP CONSTRAINT users_no_poison`); err != nil {
		t.Fatal(err)
	}
	sum = store.RetryAll(ctx, letters, deadletter.Options{})
	if sum.Succeeded != 1 || len(sum.Failed) != 0 {
		t.Fatalf("retry summary %+v", sum)
	}
	h.WaitSettled()
	if n, err := store.Depth(ctx); err != nil || n != 0 {
		t.Errorf("dead-letter depth %d %v, want 0", n, err)
	}
	var ledger, users int
	var outcome string
	if err := h.Pool.QueryRow(ctx, `SELECT count(*), min(outcome) FROM webhook_events WHERE source = 'workos' AND event_id = 'event_fixme'`).Scan(&ledger, &outcome); err != nil {
		t.Fatal(err)
	}
	if err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE workos_user_id = 'user_fixme' AND email = 'poison@example.com'`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if ledger != 1 || outcome != "applied" || users != 1 {
		t.Errorf("ledger rows %d (%s), users %d; want 1 applied, 1", ledger, outcome, users)
	}

	// The republished copy carries the event's own headers and a fresh id.
	ws, err := h.NATS.JS.Stream(ctx, stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	last := ws.CachedInfo().State.LastSeq
	m, err := ws.GetMsg(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "webhooks.workos.user.created" || m.Header.Get(jetstream.MsgIDHeader) != "workos:event_fixme:retry:"+strconv.FormatUint(second.Seq, 10) ||
		m.Header.Get(stream.HeaderEventID) != "event_fixme" || m.Header.Get(stream.HeaderDLError) != "" || string(m.Data) != string(body) {
		t.Errorf("republished message %s %v", m.Subject, m.Header)
	}

	// Retrying the same letter again (say, after a delete that failed)
	// stores nothing twice: same id, dropped as a duplicate.
	if _, err := store.Retry(ctx, second); err != nil {
		t.Fatal(err)
	}
	if got := webhooksLast(); got != last {
		t.Errorf("second retry of the same letter stored again: last %d, was %d", got, last)
	}
}
