package consumers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
)

const (
	paymentJSON  = `{"amount":"1099","fee":"165","expert":"934"}`
	transferJSON = `{"status":"PENDING","account":"acct_expert","country":"PT","delay":{"aging":2,"remaining":5,"required":7},"scheduled":"2026-12-02T10:00:00Z"}`
)

// marketMetadata is the metadata the app sets on a paid booking's Session
// and PaymentIntent.
func marketMetadata(payment, transfer string) map[string]any {
	m := map[string]any{"meeting": bookingJSON, "approval": "true"}
	if payment != "" {
		m["payment"] = payment
	}
	if transfer != "" {
		m["transfer"] = transfer
	}
	return m
}

// connectEvent is a Stripe event as the Connect endpoint sends it.
func connectEvent(t *testing.T, id, typ string, created int64, account string, object map[string]any) consumers.Event {
	t.Helper()
	m := map[string]any{
		"id": id, "object": "event", "type": typ, "created": created, "api_version": "2023-10-16",
		"livemode": false, "data": map[string]any{"object": object},
	}
	if account != "" {
		m["account"] = account
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ev := decoded(t, "stripe", b)
	if account != "" {
		ev.Endpoint = "connect"
	}
	return ev
}

func applyAll(t *testing.T, a *consumers.Applier, evs ...consumers.Event) []consumers.Result {
	t.Helper()
	res, err := a.Apply(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s %s: %v", evs[i].Envelope.Type, evs[i].Envelope.ID, r.Err)
		}
	}
	return res
}

func paymentTransferByPI(t *testing.T, pool *pgxpool.Pool, pi string) (queries.PaymentTransfer, bool) {
	t.Helper()
	p, err := queries.New().PaymentTransferGetByPaymentIntent(context.Background(), pool, &pi)
	if err = queries.Check(err); err != nil {
		if err == queries.ErrNotFound {
			return p, false
		}
		t.Fatal(err)
	}
	return p, true
}

func describeTransfer(p queries.PaymentTransfer) string {
	ev := "<nil>"
	if p.EventID != nil {
		ev = p.EventID.String()
	}
	return fmt.Sprintf("session=%s pi=%s event=%s account=%s expert=%s amount=%d fee=%d total=%v currency=%s country=%s start=%s scheduled=%s status=%s approval=%v review=%s transfer=%s",
		str(p.StripeSessionID), str(p.StripePaymentIntentID), ev, str(p.ExpertConnectAccountID), str(p.ExpertWorkosUserID),
		p.Amount, p.PlatformFee, deref64(p.TotalAmount), str(p.Currency), str(p.Country),
		p.SessionStartTime.UTC().Format("2006-01-02T15:04Z"), p.ScheduledTransferTime.UTC().Format("2006-01-02T15:04Z"),
		p.Status, p.RequiresApproval, str(p.ReviewReason), str(p.StripeTransferID))
}

func deref64(p *int64) any {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// TestPaymentTransferEveryOrder: the four events of a paid, transferred
// and then refunded booking, in each of their 24 orders, each delivered
// twice, end in one meeting and one payment transfer: COMPLETED (the
// money went to the expert), marked for review (the guest got it back).
// Odd orders link the transfer by its charge, even ones by its group.
func TestPaymentTransferEveryOrder(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := applier(t, pool, nil)
	perms := permutations(4)
	if len(perms) != 24 {
		t.Fatalf("%d permutations", len(perms))
	}
	for n, perm := range perms {
		cs, pi := fmt.Sprintf("cs_o%d", n), fmt.Sprintf("pi_o%d", n)
		session := sessionObject(cs, pi, "paid")
		session["metadata"] = marketMetadata(paymentJSON, transferJSON)
		intent := paymentIntentObject(pi)
		intent["metadata"] = marketMetadata(paymentJSON, transferJSON)
		transfer := map[string]any{
			"id": "tr_" + pi, "object": "transfer", "amount": 934, "amount_reversed": 0, "currency": "usd",
			"destination": "acct_expert", "reversed": false, "metadata": map[string]any{}, "created": s0 + 5,
			"source_transaction": nil, "transfer_group": nil,
		}
		if n%2 == 1 {
			transfer["source_transaction"] = "ch_" + pi
		} else {
			transfer["transfer_group"] = "group_" + pi
		}
		evs := []consumers.Event{
			decoded(t, "stripe", stripeEventAt("evt_cs_"+pi, "checkout.session.completed", s0+1, "2023-10-16", session)),
			decoded(t, "stripe", stripeEventAt("evt_pi_"+pi, "payment_intent.succeeded", s0+2, "2023-10-16", intent)),
			decoded(t, "stripe", stripeEventAt("evt_tr_"+pi, "transfer.created", s0+5, "2023-10-16", transfer)),
			decoded(t, "stripe", stripeEventAt("evt_ch_"+pi, "charge.refunded", s0+9, "2023-10-16", chargeObject(pi, 1099, true))),
		}
		for _, i := range perm {
			applyAll(t, a, evs[i])
			if res := applyAll(t, a, evs[i]); res[0].Outcome != consumers.Skipped {
				t.Fatalf("order %v: duplicate of %s: %s", perm, evs[i].Envelope.Type, res[0].Outcome)
			}
		}
		want := fmt.Sprintf("session=%s pi=%s event=5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11 account=acct_expert expert=user_expert "+
			"amount=934 fee=165 total=1099 currency=usd country=PT start=2026-12-01T10:00Z scheduled=2026-12-02T10:00Z "+
			"status=COMPLETED approval=true review=refunded transfer=tr_%s", cs, pi, pi)
		p, ok := paymentTransferByPI(t, pool, pi)
		if !ok {
			t.Fatalf("order %v: no payment transfer", perm)
		}
		if got := describeTransfer(p); got != want {
			t.Errorf("order %v:\n got %s\nwant %s", perm, got, want)
		}
		m, err := queries.New().MeetingGetByPaymentIntentID(context.Background(), pool, &pi)
		if err != nil || m.PaymentStatus != "refunded" || str(m.StripeSessionID) != cs {
			t.Errorf("order %v: meeting %s / %s (%v)", perm, m.PaymentStatus, str(m.StripeSessionID), err)
		}
	}
	var meetings, transfers int
	if err := pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM meetings), (SELECT count(*) FROM payment_transfers)").Scan(&meetings, &transfers); err != nil {
		t.Fatal(err)
	}
	if meetings != len(perms) || transfers != len(perms) {
		t.Errorf("%d meetings and %d payment transfers, want %d each", meetings, transfers, len(perms))
	}
}

// TestPaymentTransferStatusOnlyMovesForward: a reversal wins over the
// transfer's older events whatever the order; a refund before any
// transfer says REFUNDED, and a transfer made after all still counts.
func TestPaymentTransferStatusOnlyMovesForward(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := applier(t, pool, nil)
	booking := func(pi string) consumers.Event {
		o := paymentIntentObject(pi)
		o["metadata"] = marketMetadata(paymentJSON, transferJSON)
		return decoded(t, "stripe", stripeEventAt("evt_pi_"+pi, "payment_intent.succeeded", s0, "2023-10-16", o))
	}
	transfer := func(pi, typ string, at int64, reversed bool) consumers.Event {
		o := map[string]any{
			"id": "tr_" + pi, "object": "transfer", "amount": 934, "currency": "usd", "destination": "acct_expert",
			"metadata": map[string]any{"payment_intent_id": pi}, "reversed": reversed, "amount_reversed": 0,
		}
		if reversed {
			o["amount_reversed"] = 934
		}
		return decoded(t, "stripe", stripeEventAt(fmt.Sprintf("evt_%s_%s", typ, pi), typ, at, "2023-10-16", o))
	}
	// Reversed, then the older created and updated.
	applyAll(t, a, booking("pi_r"))
	applyAll(t, a, transfer("pi_r", "transfer.reversed", s0+9, true))
	applyAll(t, a, transfer("pi_r", "transfer.created", s0+5, false), transfer("pi_r", "transfer.updated", s0+6, false))
	if p, _ := paymentTransferByPI(t, pool, "pi_r"); p.Status != "REVERSED" || str(p.StripeTransferID) != "tr_pi_r" {
		t.Errorf("reversed first: %s", describeTransfer(p))
	}
	// Refunded before any transfer; the transfer made before the refund
	// arrives last.
	applyAll(t, a, booking("pi_f"))
	applyAll(t, a, decoded(t, "stripe", stripeEventAt("evt_ch_pi_f", "charge.refunded", s0+9, "2023-10-16", chargeObject("pi_f", 1099, true))))
	if p, _ := paymentTransferByPI(t, pool, "pi_f"); p.Status != "REFUNDED" || str(p.ReviewReason) != "refunded" {
		t.Errorf("refunded: %s", describeTransfer(p))
	}
	applyAll(t, a, transfer("pi_f", "transfer.created", s0+5, false))
	if p, _ := paymentTransferByPI(t, pool, "pi_f"); p.Status != "COMPLETED" || str(p.ReviewReason) != "refunded" {
		t.Errorf("transfer after the refund: %s", describeTransfer(p))
	}
	// A status the app set (approved for a later transfer) is not moved
	// back to PENDING by a late Session event.
	applyAll(t, a, booking("pi_a"))
	if _, err := pool.Exec(context.Background(), "UPDATE payment_transfers SET status = 'APPROVED' WHERE stripe_payment_intent_id = 'pi_a'"); err != nil {
		t.Fatal(err)
	}
	s := sessionObject("cs_a", "pi_a", "paid")
	s["metadata"] = marketMetadata(paymentJSON, transferJSON)
	applyAll(t, a, decoded(t, "stripe", stripeEventAt("evt_cs_a", "checkout.session.completed", s0+1, "2023-10-16", s)))
	if p, _ := paymentTransferByPI(t, pool, "pi_a"); p.Status != "APPROVED" || str(p.StripeSessionID) != "cs_a" {
		t.Errorf("app's status: %s", describeTransfer(p))
	}
}

// syncBuffer is a log sink the test reads while the applier writes.
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

// TestBadPaymentTransferMetadataKeepsTheMeeting: a payment or transfer
// value the app wrote badly leaves the payment transfer out, with the
// reason logged; the meeting and its payment are applied.
func TestBadPaymentTransferMetadataKeepsTheMeeting(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	var logs syncBuffer
	a, err := consumers.NewApplier(consumers.ApplierConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, pool)
	if err != nil {
		t.Fatal(err)
	}
	for n, c := range []struct{ payment, transfer, reason string }{
		{`not json`, transferJSON, "metadata payment is not a JSON object"},
		{`{"amount":"1099","fee":"165","expert":"nine"}`, transferJSON, "metadata payment.expert: want minor units"},
		{`{"amount":"1099","fee":"-5","expert":"934"}`, transferJSON, "metadata payment.fee is negative"},
		{`{"amount":"1099","expert":"934"}`, transferJSON, "metadata payment.fee is missing"},
		{paymentJSON, `{"status":"PENDING","scheduled":"2026-12-02T10:00:00Z"}`, "metadata transfer.account: want a Connect account id"},
		{paymentJSON, `{"account":"acct_expert","scheduled":"next week"}`, "metadata transfer.scheduled: want an RFC 3339 time"},
		{paymentJSON, `[1,2]`, "metadata transfer is not a JSON object"},
		{"", transferJSON, "metadata payment is missing"},
	} {
		pi, cs := fmt.Sprintf("pi_bad%d", n), fmt.Sprintf("cs_bad%d", n)
		s := sessionObject(cs, pi, "paid")
		s["metadata"] = marketMetadata(c.payment, c.transfer)
		o := paymentIntentObject(pi)
		o["metadata"] = marketMetadata(c.payment, c.transfer)
		applyAll(t, a,
			decoded(t, "stripe", stripeEventAt("evt_cs_"+pi, "checkout.session.completed", s0, "2023-10-16", s)),
			decoded(t, "stripe", stripeEventAt("evt_pi_"+pi, "payment_intent.succeeded", s0+1, "2023-10-16", o)))
		m, err := queries.New().MeetingGetByPaymentIntentID(context.Background(), pool, &pi)
		if err != nil || m.PaymentStatus != "succeeded" || str(m.StripeSessionID) != cs || m.BookableEventID == nil {
			t.Errorf("%s: meeting %+v (%v)", c.reason, m, err)
		}
		if p, ok := paymentTransferByPI(t, pool, pi); ok {
			t.Errorf("%s: payment transfer stored: %s", c.reason, describeTransfer(p))
		}
		for _, id := range []string{"evt_cs_" + pi, "evt_pi_" + pi} {
			want := "event_id=" + id
			found := false
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, want) && strings.Contains(line, c.reason) && strings.Contains(line, "payment transfer left out") {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no log line for %s with the reason; log:\n%s", c.reason, id, logs.String())
			}
		}
	}
}

func payoutObject(id, status string) map[string]any {
	o := map[string]any{
		"id": id, "object": "payout", "amount": 934, "currency": "eur", "arrival_date": s0 + 86400,
		"status": status, "method": "standard", "destination": "ba_expert", "failure_code": nil, "failure_message": nil,
		"created": s0 - 100,
	}
	if status == "failed" {
		o["failure_code"], o["failure_message"] = "account_closed", "The bank account has been closed."
	}
	return o
}

// TestPayoutFailedAfterPaid: a payout paid and then returned by the bank
// ends failed, in the same second as the paid event or later, in either
// order of arrival and in one batch or two; a late payout.updated older
// than what is stored changes nothing.
func TestPayoutFailedAfterPaid(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := applier(t, pool, nil)
	q := queries.New()
	for n, c := range []struct {
		failedAt    int64
		failedFirst bool
		oneBatch    bool
	}{
		{s0, false, false}, {s0, true, false}, {s0, false, true}, {s0, true, true},
		{s0 + 3600, false, false}, {s0 + 3600, true, false}, {s0 + 3600, true, true},
	} {
		id := fmt.Sprintf("po_%d", n)
		paid := connectEvent(t, "evt_paid_"+id, "payout.paid", s0, "acct_expert", payoutObject(id, "paid"))
		failed := connectEvent(t, "evt_failed_"+id, "payout.failed", c.failedAt, "acct_expert", payoutObject(id, "failed"))
		evs := []consumers.Event{paid, failed}
		if c.failedFirst {
			evs[0], evs[1] = evs[1], evs[0]
		}
		if c.oneBatch {
			applyAll(t, a, evs...)
		} else {
			applyAll(t, a, evs[0])
			applyAll(t, a, evs[1])
		}
		p, err := q.StripePayoutGet(context.Background(), pool, id)
		if err != nil || p.Status != "failed" || str(p.FailureCode) != "account_closed" || str(p.StripeAccountID) != "acct_expert" {
			t.Errorf("case %+v: payout %s %s (%v), want failed", c, p.Status, str(p.FailureCode), err)
		}
		late := connectEvent(t, "evt_late_"+id, "payout.updated", s0-60, "acct_expert", payoutObject(id, "in_transit"))
		if res := applyAll(t, a, late); res[0].Outcome != consumers.Stale {
			t.Errorf("case %+v: late payout.updated %s, want stale", c, res[0].Outcome)
		}
		if p2, _ := q.StripePayoutGet(context.Background(), pool, id); p2.Status != "failed" || p2.StripeEventID != p.StripeEventID {
			t.Errorf("case %+v: late payout.updated changed the payout to %s (%s)", c, p2.Status, p2.StripeEventID)
		}
	}
}

func identityObject(id, status, clientRef string, metadata map[string]any) map[string]any {
	o := map[string]any{
		"id": id, "object": "identity.verification_session", "status": status, "type": "document",
		"client_reference_id": clientRef, "metadata": metadata, "last_error": nil, "created": s0 - 600,
	}
	if clientRef == "" {
		o["client_reference_id"] = nil
	}
	return o
}

func accountObject(id, user string) map[string]any {
	return map[string]any{
		"id": id, "object": "account", "charges_enabled": true, "payouts_enabled": true, "details_submitted": true,
		"metadata": map[string]any{"workosUserId": user}, "created": s0 - 9000,
	}
}

// TestIdentityVerifiedBeforeAndAfterTheUser: the user ends verified
// whether the verification arrives before the user and their Connect
// account or after, found by the Connect account in client_reference_id,
// by a user id there, or by the metadata.
func TestIdentityVerifiedBeforeAndAfterTheUser(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := applier(t, pool, nil)
	for n, c := range []struct {
		name      string
		clientRef func(user, acct string) string
		metadata  func(user string) map[string]any
	}{
		{"client_reference_id is the Connect account", func(_, acct string) string { return acct }, func(string) map[string]any { return map[string]any{} }},
		{"client_reference_id is the user", func(user, _ string) string { return user }, func(string) map[string]any { return map[string]any{} }},
		{"metadata user_id", func(string, string) string { return "" }, func(u string) map[string]any { return map[string]any{"user_id": u} }},
		{"metadata workos_user_id", func(string, string) string { return "" }, func(u string) map[string]any { return map[string]any{"workos_user_id": u} }},
	} {
		for _, before := range []bool{true, false} {
			user, acct, vs := fmt.Sprintf("user_id%d%v", n, before), fmt.Sprintf("acct_id%d%v", n, before), fmt.Sprintf("vs_%d%v", n, before)
			identity := []consumers.Event{
				connectEvent(t, "evt_vc_"+vs, "identity.verification_session.created", s0, acct, identityObject(vs, "requires_input", c.clientRef(user, acct), c.metadata(user))),
				connectEvent(t, "evt_vp_"+vs, "identity.verification_session.processing", s0+30, acct, identityObject(vs, "processing", c.clientRef(user, acct), c.metadata(user))),
				// The same second as processing: verified still wins.
				connectEvent(t, "evt_vv_"+vs, "identity.verification_session.verified", s0+30, acct, identityObject(vs, "verified", c.clientRef(user, acct), c.metadata(user))),
			}
			userEvs := []consumers.Event{
				decoded(t, "workos", dsyncEvent("ev_u_"+vs, "user.created", 1, userData(user, user+"@x.test", 1))),
				connectEvent(t, "evt_acct_"+vs, "account.updated", s0-100, acct, accountObject(acct, user)),
			}
			if before {
				applyAll(t, a, identity[2], identity[0])
				applyAll(t, a, identity[1])
				applyAll(t, a, userEvs...)
			} else {
				applyAll(t, a, userEvs...)
				applyAll(t, a, identity[2])
				applyAll(t, a, identity[1], identity[0])
			}
			u, err := queries.New().UserGetByWorkOSID(context.Background(), pool, user)
			if err != nil || !u.StripeIdentityVerified || str(u.StripeIdentityVerificationStatus) != "verified" || str(u.StripeIdentityVerificationID) != vs {
				t.Errorf("%s, verification first=%v: user verified=%v status=%s session=%s (%v)", c.name, before,
					u.StripeIdentityVerified, str(u.StripeIdentityVerificationStatus), str(u.StripeIdentityVerificationID), err)
			}
		}
	}
}

func bankObject(id, acct string, deleted bool) map[string]any {
	o := map[string]any{
		"id": id, "object": "bank_account", "account": acct, "bank_name": "STRIPE TEST BANK", "last4": "3000",
		"country": "PT", "currency": "eur", "default_for_currency": true, "status": "new", "metadata": map[string]any{},
	}
	if deleted {
		o["deleted"] = true
	}
	return o
}

// TestPayoutDestinationOnTheUser: the user shows a payout destination
// while their account has a live bank account, whichever of the user, the
// account and the bank account arrives first, and none once it is
// deleted; a late update does not bring it back.
func TestPayoutDestinationOnTheUser(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := applier(t, pool, nil)
	for _, perm := range permutations(3) {
		ns := fmt.Sprintf("%d%d%d", perm[0], perm[1], perm[2])
		user, acct, ba := "user_pd"+ns, "acct_pd"+ns, "ba_pd"+ns
		evs := []consumers.Event{
			decoded(t, "workos", dsyncEvent("ev_u_"+ns, "user.created", 1, userData(user, user+"@x.test", 1))),
			connectEvent(t, "evt_acct_"+ns, "account.updated", s0, acct, accountObject(acct, user)),
			connectEvent(t, "evt_bac_"+ns, "account.external_account.created", s0, acct, bankObject(ba, acct, false)),
		}
		for _, i := range perm {
			applyAll(t, a, evs[i])
		}
		u, err := queries.New().UserGetByWorkOSID(context.Background(), pool, user)
		if err != nil || !u.ConnectPayoutDestination || str(u.StripeBankAccountLast4) != "3000" || str(u.StripeBankName) != "STRIPE TEST BANK" {
			t.Errorf("order %v: destination=%v last4=%s bank=%s (%v)", perm, u.ConnectPayoutDestination, str(u.StripeBankAccountLast4), str(u.StripeBankName), err)
		}
		applyAll(t, a, connectEvent(t, "evt_bad_"+ns, "account.external_account.deleted", s0+10, acct, bankObject(ba, acct, true)))
		applyAll(t, a, connectEvent(t, "evt_bau_"+ns, "account.external_account.updated", s0+20, acct, bankObject(ba, acct, false)))
		u, _ = queries.New().UserGetByWorkOSID(context.Background(), pool, user)
		e, _ := queries.New().StripeExternalAccountGet(context.Background(), pool, ba)
		if u.ConnectPayoutDestination || u.StripeBankAccountLast4 != nil || e.DeletedAt == nil {
			t.Errorf("order %v: after the delete destination=%v last4=%s tombstone=%v", perm, u.ConnectPayoutDestination, str(u.StripeBankAccountLast4), e.DeletedAt)
		}
	}
}

// marketDump is every row of the marketplace tables and the users'
// marketplace columns, for comparing databases.
func marketDump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var out string
	for _, q := range []string{
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' ORDER BY stripe_payout_id) FROM stripe_payouts t",
		// The tombstone keeps the time of the first deletion applied, as
		// the other mirrors' do: whether it is set is what converges.
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' || jsonb_build_object('deleted_at', deleted_at IS NOT NULL) ORDER BY stripe_external_account_id) FROM stripe_external_accounts t",
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' ORDER BY stripe_verification_session_id) FROM stripe_identity_verification_sessions t",
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' ORDER BY stripe_transfer_id) FROM stripe_transfers t",
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' ORDER BY stripe_payment_intent_id) FROM payment_transfers t",
		"SELECT jsonb_agg(jsonb_build_array(workos_user_id, stripe_connect_account_id, connect_payout_destination, stripe_bank_account_last4," +
			" stripe_identity_verification_id, stripe_identity_verification_status, stripe_identity_verified) ORDER BY workos_user_id) FROM users",
		"SELECT jsonb_agg(jsonb_build_array(event_id, outcome) ORDER BY event_id) FROM webhook_events",
	} {
		var s *string
		if err := pool.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if s != nil {
			out += *s + "\n"
		}
	}
	return out
}

// randomMarketBatch is a burst of marketplace events over a few objects:
// the same object many times, ties in one second, deletes before creates,
// duplicates, and the users and accounts they link to.
func randomMarketBatch(t *testing.T, rng *rand.Rand, ns string, batch, n int) []consumers.Event {
	t.Helper()
	var evs []consumers.Event
	id := 0
	// Ids sort in no particular order, and are unique across batches.
	next := func() string { id++; return fmt.Sprintf("evt_%s%03d_%d_%d", ns, rng.IntN(1000), batch, id) }
	at := func() int64 { return s0 + int64(rng.IntN(3)) }
	acct := func() string { return fmt.Sprintf("acct_%s%d", ns, rng.IntN(2)) }
	user := func() string { return fmt.Sprintf("%su%d", ns, rng.IntN(2)) }
	for len(evs) < n {
		switch rng.IntN(8) {
		case 0:
			st := []string{"pending", "in_transit", "paid", "failed", "canceled"}[rng.IntN(5)]
			typ := map[string]string{"pending": "payout.created", "in_transit": "payout.updated", "paid": "payout.paid", "failed": "payout.failed", "canceled": "payout.canceled"}[st]
			evs = append(evs, connectEvent(t, next(), typ, at(), acct(), payoutObject(fmt.Sprintf("po_%s%d", ns, rng.IntN(2)), st)))
		case 1:
			typ := []string{"account.external_account.created", "account.external_account.updated", "account.external_account.deleted"}[rng.IntN(3)]
			a := acct()
			o := bankObject(fmt.Sprintf("ba_%s%s", ns, a[len(a)-1:]), a, typ == "account.external_account.deleted")
			o["last4"] = fmt.Sprintf("%04d", rng.IntN(3))
			evs = append(evs, connectEvent(t, next(), typ, at(), a, o))
		case 2:
			st := []string{"requires_input", "processing", "verified", "canceled"}[rng.IntN(4)]
			typ := map[string]string{"requires_input": "identity.verification_session.requires_input", "processing": "identity.verification_session.processing",
				"verified": "identity.verification_session.verified", "canceled": "identity.verification_session.canceled"}[st]
			// A session's client reference is set when it is created.
			k := rng.IntN(3)
			ref := []string{ns + "u0", "acct_" + ns + "1", ns + "u1"}[k]
			evs = append(evs, connectEvent(t, next(), typ, at(), acct(), identityObject(fmt.Sprintf("vs_%s%d", ns, k), st, ref, map[string]any{})))
		case 3:
			typ := []string{"transfer.created", "transfer.updated", "transfer.reversed"}[rng.IntN(3)]
			// A transfer pays for one booking: its group does not change.
			k := rng.IntN(2)
			pi := fmt.Sprintf("pi_%s%d", ns, k)
			o := map[string]any{
				"id": fmt.Sprintf("tr_%s%d", ns, k), "object": "transfer", "amount": 934, "currency": "eur",
				"destination": acct(), "transfer_group": "group_" + pi, "metadata": map[string]any{},
				"reversed": typ == "transfer.reversed", "amount_reversed": 0,
			}
			evs = append(evs, decoded(t, "stripe", stripeEventAt(next(), typ, at(), "2023-10-16", o)))
		case 4:
			pi := fmt.Sprintf("pi_%s%d", ns, rng.IntN(2))
			o := paymentIntentObject(pi)
			o["metadata"] = marketMetadata(paymentJSON, transferJSON)
			evs = append(evs, decoded(t, "stripe", stripeEventAt(next(), "payment_intent.succeeded", at(), "2023-10-16", o)))
		case 5:
			u := user()
			evs = append(evs, decoded(t, "workos", dsyncEvent(next(), "user.updated", rng.IntN(4), userData(u, u+"@x.test", rng.IntN(4)))))
		case 6:
			a := acct()
			evs = append(evs, connectEvent(t, next(), "account.updated", at(), a, accountObject(a, user())))
		case 7:
			if len(evs) > 0 {
				evs = append(evs, evs[rng.IntN(len(evs))])
			}
		}
	}
	return evs
}

// TestMarketplaceSetBasedEqualsEventByEvent: on random batches of the
// marketplace's events, the batched path leaves the rows and outcomes
// that applying the events one by one does, and any arrival order of the
// same events ends in the same rows.
func TestMarketplaceSetBasedEqualsEventByEvent(t *testing.T) {
	t.Parallel()
	batched, single, shuffled := syncdtest.DB(t), syncdtest.DB(t), syncdtest.DB(t)
	a, ref, sh := applier(t, batched, nil), applier(t, single, nil), applier(t, shuffled, nil)
	ctx := context.Background()
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 14))
		ns := fmt.Sprintf("m%d_", seed)
		var all []consumers.Event
		for b := range 3 {
			evs := randomMarketBatch(t, rng, ns, b, 5+rng.IntN(40))
			all = append(all, evs...)
			got, err := a.Apply(ctx, evs)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.ApplyEventByEvent(ctx, evs)
			if err != nil {
				t.Fatal(err)
			}
			sameOutcomes(t, fmt.Sprintf("seed %d batch %d", seed, b), evs, got, want)
			if g, w := marketDump(t, batched), marketDump(t, single); g != w {
				t.Fatalf("seed %d batch %d: rows differ (batched, then event by event):\n%s", seed, b, firstDiff(g, w))
			}
		}
		// The same events in another order, in other batches.
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for len(all) > 0 {
			k := min(len(all), 1+rng.IntN(30))
			if _, err := sh.Apply(ctx, all[:k]); err != nil {
				t.Fatal(err)
			}
			all = all[k:]
		}
		if g, w := marketDump(t, shuffled), marketDump(t, single); stripOutcomes(g) != stripOutcomes(w) {
			t.Fatalf("seed %d: rows differ (shuffled, then in order):\n%s", seed, firstDiff(g, w))
		}
	}
}

// stripOutcomes drops the ledger from a dump: which event of a tie was
// stale depends on the order it came in.
func stripOutcomes(dump string) string {
	lines := strings.Split(strings.TrimSpace(dump), "\n")
	return strings.Join(lines[:len(lines)-1], "\n")
}

// TestMarketplaceFixturesApplyOverHTTP: every marketplace fixture, at API
// version 2023-10-16 and at a recent one, is applied through the webhook
// endpoints: the Connect objects on both.
func TestMarketplaceFixturesApplyOverHTTP(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	for _, f := range []string{"workos/user.created.json", "workos/organization.updated.json", "workos/organization_membership.created.json"} {
		h.PostWorkOS(syncdtest.WithID(syncdtest.Fixture(t, f), "event_"+f))
	}
	h.PostStripe(stripeFixtureEvent(t, "account.updated", "evt_account"), true)
	h.PostStripe(stripeFixtureEvent(t, "payment_intent.succeeded", "evt_pi"), false)
	var names []string
	for _, typ := range []string{
		"payout.created", "payout.updated", "payout.paid", "payout.failed", "payout.canceled", "payout.paid.2025-09-30.clover",
		"account.external_account.created", "account.external_account.updated", "account.external_account.created.2025-09-30.clover",
		"identity.verification_session.created", "identity.verification_session.processing", "identity.verification_session.requires_input",
		"identity.verification_session.verified", "identity.verification_session.verified.2025-09-30.clover", "identity.verification_session.canceled",
		"identity.verification_session.redacted",
		"transfer.created", "transfer.updated", "transfer.created.2025-09-30.clover", "transfer.reversed",
	} {
		names = append(names, typ)
		h.PostStripe(stripeFixtureEvent(t, typ, "evt_"+typ), true)
		h.PostStripe(stripeFixtureEvent(t, typ, "evt_platform_"+typ), false)
	}
	h.WaitSettled()
	for _, n := range names {
		for _, id := range []string{"evt_" + n, "evt_platform_" + n} {
			if got := ledgerOutcome(t, h.Pool, id); got != "applied" && got != "stale" {
				t.Errorf("%s: outcome %s", id, got)
			}
		}
	}
	ctx, q := context.Background(), queries.New()
	p, err := q.StripePayoutGet(ctx, h.Pool, "po_1OPq1aJN5vQBdWExPay0ut1")
	if err != nil || p.Status != "failed" || str(p.FailureCode) != "account_closed" || str(p.StripeAccountID) != "acct_1OPouMJN5vQBdWEx" ||
		str(p.Method) != "standard" || str(p.Destination) != "ba_1OPq0xJN5vQBdWExBank001" || p.ArrivalDate == nil || p.ArrivalDate.Unix() != 1712880000 {
		t.Errorf("payout: %+v (%v)", p, err)
	}
	c, err := q.StripePayoutGet(ctx, h.Pool, "po_1OPq2bJN5vQBdWExCancel1")
	if err != nil || c.Status != "canceled" {
		t.Errorf("canceled payout: %+v (%v)", c, err)
	}
	e, err := q.StripeExternalAccountGet(ctx, h.Pool, "ba_1OPq0xJN5vQBdWExBank001")
	if err != nil || e.Object != "bank_account" || str(e.Last4) != "3000" || str(e.Status) != "verified" || !e.DefaultForCurrency || e.DeletedAt != nil {
		t.Errorf("bank account: %+v (%v)", e, err)
	}
	u := user(t, h.Pool, "user_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if !u.ConnectPayoutDestination || str(u.StripeBankAccountLast4) != "3000" || str(u.StripeBankName) != "STRIPE TEST BANK" {
		t.Errorf("user's payout destination: %v %s %s", u.ConnectPayoutDestination, str(u.StripeBankAccountLast4), str(u.StripeBankName))
	}
	// Redacted a month later: the session's newest state; verified it was.
	if !u.StripeIdentityVerified || str(u.StripeIdentityVerificationID) != "vs_1OPq3cJN5vQBdWExIdent01" || str(u.StripeIdentityVerificationStatus) != "verified" {
		t.Errorf("user's identity: %v %s %s", u.StripeIdentityVerified, str(u.StripeIdentityVerificationID), str(u.StripeIdentityVerificationStatus))
	}
	tr, err := q.StripeTransferGet(ctx, h.Pool, "tr_1OPq5eJN5vQBdWExTrans01")
	if err != nil || !tr.Reversed || tr.AmountReversed != 934 || str(tr.StripePaymentIntentID) != "pi_1OPougJN5vQBdWEx8s2Dj0YR" ||
		str(tr.SourceTransaction) != "ch_1OPoueJN5vQBdWEx5AWizjSY" || str(tr.DestinationAccountID) != "acct_1OPouMJN5vQBdWEx" {
		t.Errorf("transfer: %+v (%v)", tr, err)
	}
	// The external account's deletion, last: the user has no destination.
	h.PostStripe(stripeFixtureEvent(t, "account.external_account.deleted", "evt_ext_deleted"), true)
	h.WaitSettled()
	if u := user(t, h.Pool, "user_01EHWNCE74X7JSDV0X3SZ3KJNY"); u.ConnectPayoutDestination {
		t.Errorf("payout destination after the bank account's deletion")
	}
}
