package consumers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// The meetings' set-based apply held to the per-event path: same rows,
// same outcomes, on random batches of booking events.

// mtAt is the Stripe created time of the meeting tests' events.
const mtAt = int64(1767100000)

// mtBooking is one booking of a random batch: its Checkout Session and
// PaymentIntent (none for a free booking), and what every event of it
// agrees on (customer, amount, currency), so that merging its rows in
// either order gives one row.
type mtBooking struct {
	session, pi, customer string
	transfer              bool
}

func mtMeeting(guest, notes string) string {
	b, _ := json.Marshal(map[string]any{
		"id": "5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11", "expert": "user_mt_expert", "guest": guest,
		"guestName": "Guest " + notes, "start": "2026-12-01T10:00:00Z", "dur": 45, "notes": notes,
		"timezone": "Europe/Lisbon", "locale": "pt",
	})
	return string(b)
}

// mtMetadata is a booking event's metadata: maybe the booking, maybe the
// payment transfer.
func mtMetadata(rng *rand.Rand, b mtBooking, guest string) map[string]any {
	meta := map[string]any{}
	if rng.IntN(4) > 0 {
		meta["meeting"] = mtMeeting(guest, fmt.Sprint("n", rng.IntN(5)))
	}
	if b.transfer && rng.IntN(3) > 0 {
		meta["payment"] = `{"amount":"1099","fee":"165","expert":"934"}`
		meta["transfer"] = `{"status":"PENDING","account":"acct_mt_expert","country":"PT","scheduled":"2026-12-02T10:00:00Z"}`
		if rng.IntN(3) == 0 {
			meta["approval"] = "true"
		}
	}
	return meta
}

// randomMeetingBatch is a burst of booking events over a few bookings: the
// same PaymentIntent many times, ties in one second, payments, refunds and
// disputes before the checkout, Sessions and PaymentIntents that each make
// a row before an event links them (the rows then merge), free bookings
// with no PaymentIntent, duplicates.
func randomMeetingBatch(t *testing.T, rng *rand.Rand, ns string, batch, n int) []consumers.Event {
	t.Helper()
	bookings := []mtBooking{
		{session: "cs_" + ns + "0", pi: "pi_" + ns + "0", customer: "cus_" + ns + "0", transfer: true},
		{session: "cs_" + ns + "1", pi: "pi_" + ns + "1", customer: "cus_" + ns + "1"},
		{session: "cs_" + ns + "2", pi: "pi_" + ns + "2", customer: "cus_" + ns + "2", transfer: true},
		{session: "cs_" + ns + "free", customer: "cus_" + ns + "free", transfer: true},
	}
	guest := func() string { return fmt.Sprintf("g%d.%s@mt.test", rng.IntN(2), ns) }
	id := 0
	// Ids sort in no particular order, and are unique across batches.
	next := func() string { id++; return fmt.Sprintf("evt_%s%03d_%d_%d", ns, rng.IntN(1000), batch, id) }
	event := func(typ string, object map[string]any) consumers.Event {
		b, err := json.Marshal(map[string]any{
			"id": next(), "object": "event", "type": typ, "created": mtAt + int64(rng.IntN(3)),
			"api_version": "2023-10-16", "data": map[string]any{"object": object},
		})
		if err != nil {
			t.Fatal(err)
		}
		return decoded(t, "stripe", b)
	}
	var evs []consumers.Event
	for len(evs) < n {
		b := bookings[rng.IntN(len(bookings))]
		if b.pi == "" && rng.IntN(2) == 0 {
			continue // the free booking has only its Session's events
		}
		switch k := rng.IntN(10); {
		case k < 3 || b.pi == "":
			typ := []string{"checkout.session.completed", "checkout.session.completed", "checkout.session.async_payment_succeeded",
				"checkout.session.async_payment_failed", "checkout.session.expired"}[rng.IntN(5)]
			o := map[string]any{
				"id": b.session, "object": "checkout.session", "mode": "payment", "amount_total": 1099, "currency": "eur",
				"customer": b.customer, "customer_details": map[string]any{"email": guest()},
				"payment_status": []string{"paid", "unpaid", "no_payment_required"}[rng.IntN(3)],
				"metadata":       mtMetadata(rng, b, guest()), "payment_intent": nil,
			}
			// A Session that does not name its PaymentIntent makes a row
			// of its own, which merges with the PaymentIntent's later.
			if b.pi != "" && rng.IntN(2) > 0 {
				o["payment_intent"] = b.pi
			}
			evs = append(evs, event(typ, o))
		case k < 6:
			typ := []string{"payment_intent.processing", "payment_intent.succeeded", "payment_intent.succeeded",
				"payment_intent.payment_failed", "payment_intent.canceled"}[rng.IntN(5)]
			meta := mtMetadata(rng, b, guest())
			if rng.IntN(3) == 0 {
				meta["checkout_session_id"] = b.session
			}
			o := map[string]any{
				"id": b.pi, "object": "payment_intent", "amount": 1099, "currency": "eur", "customer": b.customer,
				"application_fee_amount": 165, "latest_charge": "ch_" + b.pi, "metadata": meta,
			}
			if rng.IntN(4) == 0 {
				delete(o, "latest_charge")
			}
			evs = append(evs, event(typ, o))
		case k < 8:
			refunded := int64(100 * (1 + rng.IntN(11)))
			evs = append(evs, event("charge.refunded", map[string]any{
				"id": "ch_" + b.pi, "object": "charge", "amount": 1099, "payment_intent": b.pi,
				"amount_refunded": refunded, "refunded": refunded >= 1099,
			}))
		case k < 9:
			o := map[string]any{"id": "dp_" + next(), "object": "dispute", "charge": "ch_" + b.pi, "payment_intent": b.pi}
			if rng.IntN(2) == 0 {
				o["payment_intent"] = nil // found through the charge, if a PaymentIntent named it
			}
			evs = append(evs, event("charge.dispute.created", o))
		default:
			if len(evs) > 0 {
				evs = append(evs, evs[rng.IntN(len(evs))]) // a duplicate past JetStream's window
			}
		}
	}
	return evs
}

// meetingDump is every row the meeting events write, without what differs
// between databases by construction (row ids, times of writing).
func meetingDump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var out strings.Builder
	for _, q := range []string{
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' ORDER BY stripe_session_id NULLS LAST, stripe_payment_intent_id) FROM meetings t",
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' ORDER BY stripe_payment_intent_id) FROM stripe_payment_intents t",
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' ORDER BY stripe_session_id) FROM stripe_checkout_sessions t",
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' ORDER BY stripe_session_id NULLS LAST, stripe_payment_intent_id) FROM payment_transfers t",
		"SELECT jsonb_agg(to_jsonb(t) - 'applied_at' ORDER BY source, event_id) FROM webhook_events t",
	} {
		var s *string
		if err := pool.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if s != nil {
			out.WriteString(*s)
		}
		out.WriteString("\n")
	}
	return out.String()
}

// mtLogs collects what an applier logs, for tests that look for a
// fallback.
type mtLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *mtLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *mtLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestMeetingSetBasedEqualsEventByEvent: on random batches of booking
// events the set-based path applies every batch whose events all apply
// without falling back to the per-event path, and leaves the rows and
// outcomes that applying the events one by one (the reference) does; a
// batch with an event that fails is redone event by event, with the same
// outcome.
func TestMeetingSetBasedEqualsEventByEvent(t *testing.T) {
	t.Parallel()
	batched, single := syncdtest.DB(t), syncdtest.DB(t)
	var logs mtLogs
	a, err := consumers.NewApplier(consumers.ApplierConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, batched)
	if err != nil {
		t.Fatal(err)
	}
	ref := applier(t, single, nil)
	ctx := context.Background()
	batches, isolated, outcomes := 0, 0, map[consumers.Outcome]int{}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 17))
		ns := fmt.Sprintf("t%d_", seed)
		for b := range 3 {
			evs := randomMeetingBatch(t, rng, ns, b, 2+rng.IntN(40))
			batches++
			want, err := ref.ApplyEventByEvent(ctx, evs)
			if err != nil {
				t.Fatal(err)
			}
			var got []consumers.Result
			if mtFails(want) {
				// An event the per-event path fails too: the batch is
				// redone event by event, the rest committed.
				got, err = a.Apply(ctx, evs)
				isolated++
			} else {
				var failed bool
				got, failed, err = a.ApplyBatchedOnly(ctx, evs)
				if failed {
					t.Fatalf("seed %d batch %d: the set-based apply fell back to the per-event path\nlog: %s", seed, b, logs.String())
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			sameOutcomes(t, fmt.Sprintf("seed %d batch %d", seed, b), evs, got, want)
			for _, r := range got {
				outcomes[r.Outcome]++
			}
			if g, w := meetingDump(t, batched), meetingDump(t, single); g != w {
				t.Fatalf("seed %d batch %d: rows differ (batched, then event by event):\n%s", seed, b, firstDiff(g, w))
			}
		}
	}
	// The reference's audit trail records each merge as the delete of one
	// of the two rows.
	var merged int
	if err := single.QueryRow(ctx, `SELECT count(*) FROM audit_logs WHERE resource_type = 'meetings' AND action = 'deleted'`).Scan(&merged); err != nil {
		t.Fatal(err)
	}
	if merged == 0 {
		t.Fatal("no booking's Session and PaymentIntent met in one meeting: the batches test no merge")
	}
	t.Logf("%d meeting rows merged; %d of %d batches had an event that fails; outcomes %v", merged, isolated, batches, outcomes)
	for _, o := range []consumers.Outcome{consumers.Applied, consumers.Stale, consumers.Ignored, consumers.Skipped} {
		if outcomes[o] == 0 {
			t.Errorf("no event was %s: the batches do not test it", o)
		}
	}
}

func mtFails(res []consumers.Result) bool {
	for _, r := range res {
		if r.Err != nil {
			return true
		}
	}
	return false
}

// mtEvent is a Stripe event of the meeting tests.
func mtEvent(t *testing.T, id, typ string, created int64, object map[string]any) consumers.Event {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "created": created, "api_version": "2023-10-16",
		"data": map[string]any{"object": object},
	})
	if err != nil {
		t.Fatal(err)
	}
	return decoded(t, "stripe", b)
}

// mtSession is a paid Checkout Session with its booking; pi "" names no
// PaymentIntent.
func mtSession(cs, pi string, meta map[string]any) map[string]any {
	o := map[string]any{
		"id": cs, "object": "checkout.session", "mode": "payment", "amount_total": 1099, "currency": "eur",
		"customer": "cus_mt", "customer_details": map[string]any{"email": "guest@mt.test"},
		"payment_status": "paid", "payment_intent": nil, "metadata": meta,
	}
	if pi != "" {
		o["payment_intent"] = pi
	}
	return o
}

func mtIntent(pi string, meta map[string]any) map[string]any {
	return map[string]any{
		"id": pi, "object": "payment_intent", "amount": 1099, "currency": "eur", "customer": "cus_mt",
		"application_fee_amount": 165, "latest_charge": "ch_" + pi, "metadata": meta,
	}
}

func mtBookingMeta(notes string) map[string]any {
	return map[string]any{"meeting": mtMeeting("guest@mt.test", notes)}
}

func mtTransferMeta(notes string) map[string]any {
	m := mtBookingMeta(notes)
	m["payment"] = `{"amount":"1099","fee":"165","expert":"934"}`
	m["transfer"] = `{"status":"PENDING","account":"acct_mt_expert","country":"PT","scheduled":"2026-12-02T10:00:00Z"}`
	return m
}

func mtMeetingStatus(t *testing.T, pool *pgxpool.Pool, pi string) (status string, refunded int64) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT payment_status, amount_refunded FROM meetings WHERE stripe_payment_intent_id = $1`, pi).Scan(&status, &refunded); err != nil {
		t.Fatalf("meeting of %s: %v", pi, err)
	}
	return status, refunded
}

// TestMeetingBatchWithAFailingEventCommitsTheRest: an event that fails for
// good — one the fold rejects (a PaymentIntent claiming another's
// Session), one that does not decode (a booking that is not JSON) — is
// rolled back alone; its batch-mates are applied and recorded.
func TestMeetingBatchWithAFailingEventCommitsTheRest(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := applier(t, pool, nil)
	ctx := context.Background()
	claiming := mtIntent("pi_mt_c", mtBookingMeta("x"))
	claiming["metadata"].(map[string]any)["checkout_session_id"] = "cs_mt_a"
	notJSON := mtIntent("pi_mt_d", map[string]any{"meeting": "{not json"})
	for _, c := range []struct {
		name string
		evs  []consumers.Event
		bad  int
	}{
		{"rejected by the fold", []consumers.Event{
			mtEvent(t, "evt_mt_a1", "checkout.session.completed", mtAt, mtSession("cs_mt_a", "pi_mt_a", mtTransferMeta("a"))),
			mtEvent(t, "evt_mt_c1", "payment_intent.succeeded", mtAt+1, claiming),
			mtEvent(t, "evt_mt_a2", "payment_intent.succeeded", mtAt+1, mtIntent("pi_mt_a", mtTransferMeta("a"))),
			mtEvent(t, "evt_mt_a3", "charge.refunded", mtAt+2, map[string]any{
				"id": "ch_pi_mt_a", "object": "charge", "payment_intent": "pi_mt_a", "amount_refunded": 1099, "refunded": true,
			}),
		}, 1},
		{"undecodable", []consumers.Event{
			mtEvent(t, "evt_mt_b1", "payment_intent.succeeded", mtAt, mtIntent("pi_mt_b", mtBookingMeta("b"))),
			mtEvent(t, "evt_mt_d1", "payment_intent.succeeded", mtAt, notJSON),
			mtEvent(t, "evt_mt_b2", "checkout.session.completed", mtAt, mtSession("cs_mt_b", "pi_mt_b", mtBookingMeta("b"))),
		}, 1},
	} {
		res, err := a.Apply(ctx, c.evs)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, r := range res {
			if (r.Err != nil) != (i == c.bad) || (i != c.bad && r.Outcome != consumers.Applied) {
				t.Fatalf("%s: %s %s: %q %v", c.name, c.evs[i].Envelope.Type, c.evs[i].Envelope.ID, r.Outcome, r.Err)
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE event_id = $1`, c.evs[i].Envelope.ID).Scan(&n); err != nil || n != mtBtoi(i != c.bad) {
				t.Fatalf("%s: %d ledger rows of %s (%v)", c.name, n, c.evs[i].Envelope.ID, err)
			}
		}
	}
	if status, refunded := mtMeetingStatus(t, pool, "pi_mt_a"); status != "refunded" || refunded != 1099 {
		t.Errorf("meeting of pi_mt_a: %s, %d refunded", status, refunded)
	}
	if status, _ := mtMeetingStatus(t, pool, "pi_mt_b"); status != "succeeded" {
		t.Errorf("meeting of pi_mt_b: %s", status)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM stripe_payment_intents WHERE stripe_payment_intent_id IN ('pi_mt_c', 'pi_mt_d'))
		+ (SELECT count(*) FROM meetings WHERE stripe_payment_intent_id IN ('pi_mt_c', 'pi_mt_d'))`).Scan(&left); err != nil || left != 0 {
		t.Errorf("the failed events left %d rows (%v)", left, err)
	}
	if _, ok := paymentTransferByPI(t, pool, "pi_mt_a"); !ok {
		t.Error("the booking's payment transfer is missing")
	}
}

func mtBtoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestMeetingSetBasedAuditNamesTheEvents: the set-based writes of meetings
// and payment transfers are attributed to the events that made them, as
// one change per row: by PaymentIntent the last event of the batch that
// changed the row; a row without a PaymentIntent (a free booking's) its
// own event; a merge's delete and update the event that merged.
func TestMeetingSetBasedAuditNamesTheEvents(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := applier(t, pool, nil)
	ctx := context.Background()
	free := mtSession("cs_mt_free", "", mtTransferMeta("free"))
	free["payment_status"] = "no_payment_required"
	batched := func(evs ...consumers.Event) {
		t.Helper()
		res, failed, err := a.ApplyBatchedOnly(ctx, evs)
		if err != nil || failed {
			t.Fatalf("batch fell back (%v): %v", failed, err)
		}
		for i, r := range res {
			if r.Outcome != consumers.Applied {
				t.Fatalf("%s: %q", evs[i].Envelope.ID, r.Outcome)
			}
		}
	}
	batched(
		mtEvent(t, "evt_au_1", "checkout.session.completed", mtAt, mtSession("cs_mt_p", "pi_mt_p", mtTransferMeta("p"))),
		mtEvent(t, "evt_au_2", "payment_intent.succeeded", mtAt+1, mtIntent("pi_mt_p", mtTransferMeta("p"))),
		mtEvent(t, "evt_au_3", "checkout.session.completed", mtAt, free),
		// A Session and a PaymentIntent that do not name each other yet.
		mtEvent(t, "evt_au_4", "checkout.session.completed", mtAt, mtSession("cs_mt_m", "", mtBookingMeta("m"))),
	)
	// Later, the PaymentIntent's row, then the event that links the two.
	batched(mtEvent(t, "evt_au_5", "payment_intent.processing", mtAt+1, mtIntent("pi_mt_m", mtBookingMeta("m2"))))
	linking := mtIntent("pi_mt_m", mtBookingMeta("m3"))
	linking["metadata"].(map[string]any)["checkout_session_id"] = "cs_mt_m"
	batched(mtEvent(t, "evt_au_6", "payment_intent.succeeded", mtAt+2, linking))

	type row struct{ event, action, resource, session, pi string }
	rs, err := pool.Query(ctx, `SELECT COALESCE(event_id, ''), action, resource_type,
		COALESCE(new_values->>'stripe_session_id', old_values->>'stripe_session_id', ''),
		COALESCE(new_values->>'stripe_payment_intent_id', old_values->>'stripe_payment_intent_id', '')
		FROM audit_logs WHERE resource_type IN ('meetings', 'payment_transfers') ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.event, &r.action, &r.resource, &r.session, &r.pi); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"evt_au_2", "created", "meetings", "cs_mt_p", "pi_mt_p"},
		{"evt_au_3", "created", "meetings", "cs_mt_free", ""},
		{"evt_au_4", "created", "meetings", "cs_mt_m", ""},
		{"evt_au_1", "created", "payment_transfers", "cs_mt_p", "pi_mt_p"},
		{"evt_au_3", "created", "payment_transfers", "cs_mt_free", ""},
		{"evt_au_5", "created", "meetings", "", "pi_mt_m"},
		// The younger row (the PaymentIntent's) merges into the older.
		{"evt_au_6", "deleted", "meetings", "", "pi_mt_m"},
		{"evt_au_6", "updated", "meetings", "", "pi_mt_m"},
	}
	// Rows of one statement come in no particular order.
	key := func(a, b row) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) }
	slices.SortFunc(got, key)
	slices.SortFunc(want, key)
	if !slices.Equal(got, want) {
		t.Fatalf("audit rows:\n got %v\nwant %v", got, want)
	}
}

// TestMeetingWriteThatDisagreesFallsBack: when the rows written are not
// the rows the fold changed (here a trigger of the app's that keeps a
// meeting from being updated), the batch is redone event by event.
func TestMeetingWriteThatDisagreesFallsBack(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION mt_freeze() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.notes = 'frozen' THEN RETURN NULL; END IF; RETURN NEW; END $$;
		CREATE TRIGGER mt_freeze BEFORE UPDATE ON meetings FOR EACH ROW EXECUTE FUNCTION mt_freeze();`); err != nil {
		t.Fatal(err)
	}
	var logs mtLogs
	a, err := consumers.NewApplier(consumers.ApplierConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, pool)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, a, mtEvent(t, "evt_fr_1", "checkout.session.completed", mtAt, mtSession("cs_mt_fr", "pi_mt_fr", mtBookingMeta("a"))))
	if strings.Contains(logs.String(), "disagreed") {
		t.Fatalf("a plain batch fell back: %s", logs.String())
	}
	evs := []consumers.Event{
		mtEvent(t, "evt_fr_2", "payment_intent.succeeded", mtAt+1, mtIntent("pi_mt_fr", mtBookingMeta("frozen"))),
		mtEvent(t, "evt_fr_3", "checkout.session.completed", mtAt, mtSession("cs_mt_other", "pi_mt_other", mtBookingMeta("b"))),
	}
	if _, failed, err := a.ApplyBatchedOnly(ctx, evs); err != nil || !failed {
		t.Fatalf("set-based apply of a write the database refused: failed %v, %v", failed, err)
	}
	if !strings.Contains(logs.String(), "set-based apply disagreed with the database") {
		t.Fatalf("no fallback logged: %s", logs.String())
	}
	for i, r := range applyAll(t, a, evs...) {
		if r.Outcome != consumers.Applied {
			t.Fatalf("%s: %q", evs[i].Envelope.ID, r.Outcome)
		}
	}
	var notes string
	if err := pool.QueryRow(ctx, `SELECT notes FROM meetings WHERE stripe_session_id = 'cs_mt_fr'`).Scan(&notes); err != nil || notes != "a" {
		t.Fatalf("frozen meeting's notes %q (%v)", notes, err)
	}
	if status, _ := mtMeetingStatus(t, pool, "pi_mt_other"); status != "succeeded" {
		t.Fatalf("batch-mate's meeting: %s", status)
	}
}

// TestConcurrentMeetingAppliersMissNoPaymentFact: two appliers (two
// workers, or a replay beside the consumer) apply the events of the same
// PaymentIntents at once: one the bookings, the other the refunds and
// disputes, then each the whole stream again. They serialize
// on the PaymentIntents' advisory locks and the rows' locks, may deadlock
// (retried), and never fail an event; and no refund recorded by one is
// missed by a meeting the other wrote: every meeting holds its
// PaymentIntent's refund.
func TestConcurrentMeetingAppliersMissNoPaymentFact(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	const bookings = 80
	var parts [2][]consumers.Event
	for k := range bookings {
		cs, pi := fmt.Sprintf("cs_cc%d", k), fmt.Sprintf("pi_cc%d", k)
		id := func(s string) string { return fmt.Sprintf("evt_cc_%d_%s", k, s) }
		parts[0] = append(parts[0], mtEvent(t, id("cs"), "checkout.session.completed", mtAt, mtSession(cs, pi, mtTransferMeta("a"))))
		parts[1] = append(parts[1],
			mtEvent(t, id("re"), "charge.refunded", mtAt, map[string]any{
				"id": "ch_" + pi, "object": "charge", "payment_intent": pi, "amount_refunded": 100 + k, "refunded": false,
			}),
			mtEvent(t, id("dp"), "charge.dispute.created", mtAt, map[string]any{
				"id": "dp_" + id("dp"), "object": "dispute", "charge": "ch_" + pi, "payment_intent": pi,
			}))
	}
	all := slices.Concat(parts[0], parts[1])
	var wg sync.WaitGroup
	for w := range 2 {
		a := applier(t, pool, nil)
		batches := rand.New(rand.NewPCG(uint64(w), 23))
		mine := slices.Concat(parts[w], all)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := 0; start < len(mine); {
				batch := mine[start:min(len(mine), start+1+batches.IntN(4))]
				start += len(batch)
				for {
					res, err := a.Apply(context.Background(), batch)
					if err != nil {
						if consumers.Classify(err) != consumers.Transient {
							t.Errorf("batch failed permanently: %v", err)
							return
						}
						continue // redelivered; the ledger skips what committed
					}
					for i, r := range res {
						if r.Err != nil {
							t.Errorf("%s failed: %v", batch[i].Envelope.ID, r.Err)
						}
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	ctx := context.Background()
	var ledger int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM webhook_events").Scan(&ledger); err != nil || ledger != len(all) {
		t.Fatalf("ledger holds %d events (%v), want %d", ledger, err, len(all))
	}
	rows, err := pool.Query(ctx, `SELECT p.stripe_payment_intent_id, p.amount_refunded, m.amount_refunded, m.payment_status
		FROM stripe_payment_intents p LEFT JOIN meetings m USING (stripe_payment_intent_id)
		WHERE m.amount_refunded IS DISTINCT FROM p.amount_refunded OR m.payment_status IS DISTINCT FROM 'disputed'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var pi string
		var paid int64
		var refunded *int64
		var status *string
		if err := rows.Scan(&pi, &paid, &refunded, &status); err != nil {
			t.Fatal(err)
		}
		t.Errorf("%s: refunded %d, its meeting %v (%v), want the refund and disputed", pi, paid, mtDeref(refunded), mtDeref(status))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func mtDeref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestPaymentFindsTheNotedSessionsOwnMeeting: a Session noted with its
// PaymentIntent but no booking, then a booking for that Session that names
// no PaymentIntent (its own meeting row), then the PaymentIntent's event
// with the booking: the PaymentIntent's event finds the Session's row
// through the note and merges into it. It used to insert a second row,
// conflict on the Session's key every time, and fail for good.
func TestPaymentFindsTheNotedSessionsOwnMeeting(t *testing.T) {
	t.Parallel()
	evs := func(ns string) []consumers.Event {
		cs, pi := "cs_"+ns, "pi_"+ns
		return []consumers.Event{
			mtEvent(t, "evt_"+ns+"1", "checkout.session.completed", s0, mtSession(cs, pi, map[string]any{})),
			mtEvent(t, "evt_"+ns+"2", "checkout.session.completed", s0+1, mtSession(cs, "", mtBookingMeta("n"))),
			mtEvent(t, "evt_"+ns+"3", "payment_intent.succeeded", s0+2, mtIntent(pi, mtBookingMeta("n"))),
		}
	}
	for name, apply := range map[string]func(a *consumers.Applier, evs []consumers.Event) ([]consumers.Result, error){
		"event by event": func(a *consumers.Applier, evs []consumers.Event) ([]consumers.Result, error) {
			return a.ApplyEventByEvent(context.Background(), evs)
		},
		"one batch": func(a *consumers.Applier, evs []consumers.Event) ([]consumers.Result, error) {
			res, failed, err := a.ApplyBatchedOnly(context.Background(), evs)
			if failed {
				t.Error("the set-based apply fell back")
			}
			return res, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := syncdtest.DB(t)
			a := applier(t, pool, nil)
			res, err := apply(a, evs("noted"))
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil || r.Outcome != consumers.Applied {
					t.Fatalf("event %d: %q %v", i+1, r.Outcome, r.Err)
				}
			}
			var n int
			var session, pi *string
			if err := pool.QueryRow(context.Background(), `SELECT count(*) OVER (), stripe_session_id, stripe_payment_intent_id FROM meetings`).Scan(&n, &session, &pi); err != nil {
				t.Fatal(err)
			}
			if n != 1 || session == nil || *session != "cs_noted" || pi == nil || *pi != "pi_noted" {
				t.Fatalf("%d meetings, session %v, payment intent %v: want one with both", n, session, pi)
			}
		})
	}
}
