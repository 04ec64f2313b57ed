package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// quoteRaw is a JSON string literal of s that keeps invalid UTF-8 bytes as
// they are (encoding/json would replace them), so a provider-signed body
// can carry them.
func quoteRaw(s string) []byte {
	var b bytes.Buffer
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.Bytes()
}

// withRawEnvelope swaps the placeholder id and type of a marshalled event
// for raw ones.
func withRawEnvelope(body []byte, id, typ string) []byte {
	body = bytes.Replace(body, []byte(`"ID_PLACEHOLDER"`), quoteRaw(id), 1)
	return bytes.Replace(body, []byte(`"TYPE_PLACEHOLDER"`), quoteRaw(typ), 1)
}

func workosUser(id string, email string, updatedAt any) map[string]any {
	return map[string]any{
		"object": "user", "id": id, "email": email, "first_name": "Hostile", "last_name": "Test",
		"email_verified": true, "created_at": syncdtest.Millis(time.Now().Add(-time.Hour)), "updated_at": updatedAt,
	}
}

func stripeCustomer(id, email string) map[string]any {
	return map[string]any{"object": "customer", "id": id, "email": email, "name": "Hostile", "created": time.Now().Unix(), "metadata": map[string]any{}}
}

// runPoison sends, among the load, signed events that can never be
// applied: they must be dead-lettered, and everything else applied.
func runPoison(ctx context.Context, h *harness, r *result) error {
	db, err := newScenarioDB(ctx, h.adminURL, "reliability_poison")
	if err != nil {
		return err
	}
	defer db.close()
	s, err := h.startSyncd("poison", syncdOpts{dbURL: db.url})
	if err != nil {
		return err
	}
	p := h.prefix("poison")
	g := newGenerator(p, s.url())
	stop := once(g.steady(ctx, h.rate))
	defer stop()
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	for i := range 6 {
		e := &sent{kind: kindPoison, id: fmt.Sprintf("poison_%s_%d", p, i)}
		var body []byte
		switch i % 3 {
		case 0:
			e.source, e.class = stream.SourceWorkOS, "user id is a number"
			body = syncdtest.WorkOSEvent(e.id, "user.created", map[string]any{"object": "user", "id": 42, "email": "poison@x.test"})
		case 1:
			e.source, e.class = stream.SourceStripe, "booking metadata not a JSON object"
			body = syncdtest.StripeEvent(e.id, "checkout.session.completed", time.Now().Unix(), map[string]any{
				"id": "cs_" + e.id, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": "paid",
				"payment_intent": "pi_" + e.id, "amount_total": 1000, "currency": "usd", "metadata": map[string]any{"meeting": "[1,2,3]"},
			})
		case 2:
			e.source, e.class = stream.SourceStripe, "customer id is an object"
			body = syncdtest.StripeEvent(e.id, "customer.updated", time.Now().Unix(), map[string]any{"object": "customer", "id": map[string]any{"no": "id"}})
		}
		g.send(e, body)
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	if err := sleep(ctx, 4*time.Second); err != nil {
		return err
	}
	stop()
	if err := checkWith(ctx, h, s, db, g, time.Time{}, r); err != nil {
		return err
	}
	poisonOutcome(db, g, r)
	return nil
}

// poisonOutcome fails the row unless every 2xx'd poison event is in
// DEADLETTER (check counted the rest).
func poisonOutcome(db *scenarioDB, g *generator, r *result) {
	n, ok := 0, 0
	for _, e := range g.snapshot() {
		if e.kind == kindPoison {
			n++
			if e.ok() {
				ok++
			} else {
				r.note("poison %s (%s) answered %d", short(e.id), e.class, e.status)
			}
		}
	}
	if r.deadLettered < ok {
		r.fail("%d of %d stored poison events dead-lettered", r.deadLettered, ok)
	}
	r.note("%d poison events sent, %d stored, %d dead-lettered", n, ok, r.deadLettered)
}

// hostileCase is one correctly signed event whose envelope or times no
// real provider sends.
type hostileCase struct {
	class  string
	source string
	id     string
	typ    string
	// data builds the event around the (placeholder) id and type.
	body func(id, typ string) []byte
	// follow is the entity a normal later update must still reach (a far
	// time must not pin the row); empty for envelope cases.
	follow string
	// mayApply: applying the event is right if its time is read right
	// (a WorkOS millisecond timestamp sent as a number).
	mayApply bool
}

func hostileCases(p string) []hostileCase {
	workos := func(data map[string]any) func(id, typ string) []byte {
		return func(id, typ string) []byte {
			return withRawEnvelope(syncdtest.WorkOSEvent("ID_PLACEHOLDER", "TYPE_PLACEHOLDER", data), id, typ)
		}
	}
	stripe := func(created int64, obj map[string]any) func(id, typ string) []byte {
		return func(id, typ string) []byte {
			return withRawEnvelope(syncdtest.StripeEvent("ID_PLACEHOLDER", "TYPE_PLACEHOLDER", created, obj), id, typ)
		}
	}
	user := func(n int) map[string]any {
		return workosUser(fmt.Sprintf("user_h%s_%d", p, n), fmt.Sprintf("h%d.%s@hostile.test", n, p), syncdtest.Millis(time.Now()))
	}
	cus := func(n int) map[string]any {
		return stripeCustomer(fmt.Sprintf("cus_h%s_%d", p, n), fmt.Sprintf("h%d.%s@hostile.test", n, p))
	}
	id := func(n int) string { return fmt.Sprintf("event_h%s_%d", p, n) }
	big := strings.Repeat("x", 10<<10)
	cases := []hostileCase{
		{class: "id invalid UTF-8", source: "workos", id: id(1) + "\xff\xfe", typ: "user.created", body: workos(user(1))},
		{class: "type invalid UTF-8", source: "workos", id: id(2), typ: "user.\xffcreated", body: workos(user(2))},
		{class: "id with NUL", source: "workos", id: id(3) + "\x00x", typ: "user.created", body: workos(user(3))},
		{class: "type with NUL", source: "workos", id: id(4), typ: "user.created\x00", body: workos(user(4))},
		{class: "id with control characters", source: "workos", id: id(5) + "\x1b[31m\r\n", typ: "user.created", body: workos(user(5))},
		{class: "id of 10 KB", source: "workos", id: "event_" + big, typ: "user.created", body: workos(user(6))},
		{class: "type of 10 KB", source: "workos", id: id(7), typ: "user.created." + big, body: workos(user(7))},
		{class: "type of 10 KB with many tokens", source: "workos", id: id(8), typ: strings.Repeat("a.", 5<<10) + "b", body: workos(user(8))},
		{class: "Stripe id invalid UTF-8", source: "stripe", id: "evt_h" + p + "_9\xc3\x28", typ: "customer.created", body: stripe(time.Now().Unix(), cus(9))},
		{class: "Stripe type of 10 KB", source: "stripe", id: "evt_h" + p + "_10", typ: "customer." + big, body: stripe(time.Now().Unix(), cus(10))},
		{class: "Stripe id of 10 KB", source: "stripe", id: "evt_" + big, typ: "customer.created", body: stripe(time.Now().Unix(), cus(11))},
	}
	// Times: the entity exists first, then the hostile update, then a
	// normal one that must still apply.
	far := user(20)
	far["updated_at"] = "9999-12-31T23:59:59.000Z"
	ms := user(21)
	ms["updated_at"] = time.Now().UnixMilli()
	cases = append(cases,
		hostileCase{class: "updated_at in year 9999", source: "workos", id: id(20), typ: "user.updated", body: workos(far), follow: far["id"].(string)},
		hostileCase{class: "updated_at in ms as a JSON number", source: "workos", id: id(21), typ: "user.updated", body: workos(ms), follow: ms["id"].(string), mayApply: true},
		hostileCase{class: "Stripe created in year 9999", source: "stripe", id: "evt_h" + p + "_22", typ: "customer.updated", body: stripe(253402300799, cus(22)), follow: cus(22)["id"].(string)},
	)
	return cases
}

// follower is a normal update of the entity a time case targeted, newer
// than anything real sent before it.
func follower(p string, c hostileCase, n int, at time.Time) (*sent, []byte) {
	e := &sent{kind: kindFollower, source: c.source, entity: c.follow, class: "after " + c.class}
	if c.source == stream.SourceWorkOS {
		e.id = fmt.Sprintf("event_f%s_%d", p, n)
		return e, syncdtest.WorkOSEvent(e.id, "user.updated", workosUser(c.follow, c.follow+"@follow.test", syncdtest.Millis(at)))
	}
	e.id = fmt.Sprintf("evt_f%s_%d", p, n)
	return e, syncdtest.StripeEvent(e.id, "customer.updated", at.Unix(), stripeCustomer(c.follow, c.follow+"@follow.test"))
}

// runHostile sends correctly signed events with hostile envelopes and
// times among the load. Each must be refused at ingest (4xx) or
// dead-lettered; the process must stay up and the load keep applying.
func runHostile(ctx context.Context, h *harness, r *result) error {
	db, err := newScenarioDB(ctx, h.adminURL, "reliability_hostile")
	if err != nil {
		return err
	}
	defer db.close()
	s, err := h.startSyncd("hostile", syncdOpts{dbURL: db.url})
	if err != nil {
		return err
	}
	p := h.prefix("h")
	g := newGenerator(p, s.url())
	stop := once(g.steady(ctx, h.rate))
	defer stop()
	mctx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	crashes := make(chan int, 1)
	go func() { crashes <- watchCrashes(mctx, s, r) }()
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	n := 0
	for _, c := range hostileCases(p) {
		if c.follow != "" {
			// The row exists before the hostile update.
			n++
			f, body := follower(p, c, n, time.Now().Add(-time.Minute))
			g.send(f, body)
		}
		e := &sent{kind: kindHostile, class: c.class, source: c.source, id: c.id, entity: c.follow, mayApply: c.mayApply}
		g.send(e, c.body(c.id, c.typ))
		fmt.Printf("  %-40s %d\n", c.class, e.status)
		if c.follow != "" {
			settle(ctx, db, e)
			n++
			f, body := follower(p, c, n, time.Now().Add(time.Second))
			g.send(f, body)
		}
		if err := sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	stop()
	stopMonitor()
	if k := <-crashes; k > 0 {
		r.fail("syncd exited %d times during the hostile events", k)
	}
	if !s.alive() {
		if err := s.restart(); err != nil {
			return err
		}
	}
	if err := checkWith(ctx, h, s, db, g, time.Time{}, r); err != nil {
		return err
	}
	for _, e := range g.snapshot() {
		if e.kind == kindHostile {
			r.note("%s: %d", e.class, e.status)
		}
	}
	// After a restart nothing may be pending: no event retried forever.
	if !s.term(45 * time.Second) {
		r.fail("syncd did not stop within 45 s of SIGTERM")
	}
	if err := s.restart(); err != nil {
		return err
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	conn, err := openJS(ctx, s)
	if err != nil {
		return err
	}
	defer conn.Close()
	if pending, ackPending, err := consumerLag(ctx, conn.JS); err == nil && pending+uint64(ackPending) > 0 {
		r.fail("5 s after a restart the consumer still has %d pending and %d unacknowledged", pending, ackPending)
	}
	if !s.alive() {
		r.fail("syncd exited after the restart: %v", s.err)
	}
	return nil
}

// settle waits, bounded, until an event was refused, applied or
// dead-lettered, so the follower arrives after it.
func settle(ctx context.Context, db *scenarioDB, e *sent) {
	if !e.ok() {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		l, err := db.ledger(ctx, []*sent{e})
		if err == nil && len(l) > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling the ledger
	}
}

// watchCrashes counts exits of s and restarts it, at most three times (a
// crash loop is reported, not chased), until ctx is done.
func watchCrashes(ctx context.Context, s *syncd, r *result) int {
	crashes := 0
	for {
		select {
		case <-ctx.Done():
			return crashes
		case <-s.done:
		}
		if ctx.Err() != nil {
			return crashes
		}
		crashes++
		r.note("syncd exited (%v); log tail: %s", s.err, logTail(s))
		if crashes > 3 {
			r.note("not restarted again after %d exits", crashes)
			<-ctx.Done()
			return crashes
		}
		if err := s.restart(); err != nil {
			r.note("restart after exit failed: %v", err)
		}
	}
}

// logTail is the last line a syncd wrote before it exited, for the
// report: serve's own error.
func logTail(s *syncd) string {
	b, _ := os.ReadFile(filepath.Join(s.h.work, s.name+".log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "====") {
			return short2(l, 200)
		}
	}
	return ""
}

func short2(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
