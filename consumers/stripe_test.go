package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// s0 is the Stripe `created` (unix seconds) the tests count from.
const s0 = int64(1767000000)

const bookingJSON = `{"id":"5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11","expert":"user_expert","guest":"Guest.Person@Example.com","guestName":"Guest Person","start":"2026-12-01T10:00:00Z","dur":45,"notes":"first visit","timezone":"Europe/Lisbon","locale":"pt"}`

// stripeFixtureEvent loads a Stripe fixture with a fresh event id.
func stripeFixtureEvent(t *testing.T, name, id string) []byte {
	t.Helper()
	return syncdtest.WithID(syncdtest.Fixture(t, "stripe/"+name+".json"), id)
}

// stripeEventAt builds a Stripe event at another API version.
func stripeEventAt(id, typ string, created int64, apiVersion string, object map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "created": created, "api_version": apiVersion,
		"livemode": false, "pending_webhooks": 1, "data": map[string]any{"object": object},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func sessionObject(cs, pi, paymentStatus string) map[string]any {
	o := map[string]any{
		"id": cs, "object": "checkout.session", "mode": "payment", "status": "complete",
		"amount_total": 1099, "currency": "usd", "customer": "cus_guest",
		"customer_details": map[string]any{"email": "guest.person@example.com"},
		"payment_status":   paymentStatus, "payment_intent": nil,
		"metadata": map[string]any{"meeting": bookingJSON},
	}
	if pi != "" {
		o["payment_intent"] = pi
	}
	return o
}

func paymentIntentObject(pi string) map[string]any {
	return map[string]any{
		"id": pi, "object": "payment_intent", "amount": 1099, "amount_received": 1099,
		"application_fee_amount": 165, "currency": "usd", "customer": "cus_guest",
		"latest_charge": "ch_" + pi, "metadata": map[string]any{"meeting": bookingJSON},
		"transfer_data": map[string]any{"destination": "acct_expert"},
	}
}

func chargeObject(pi string, refunded int64, full bool) map[string]any {
	return map[string]any{
		"id": "ch_" + pi, "object": "charge", "amount": 1099, "amount_refunded": refunded,
		"refunded": full, "currency": "usd", "payment_intent": pi, "metadata": map[string]any{},
	}
}

func ledgerOutcome(t *testing.T, pool *pgxpool.Pool, id string) string {
	t.Helper()
	e, err := queries.New().EventLedgerGet(context.Background(), pool, queries.EventLedgerGetParams{Source: "stripe", EventID: id})
	if err != nil {
		t.Fatalf("ledger row of %s: %v", id, err)
	}
	return e.Outcome
}

func meetingByPI(t *testing.T, pool *pgxpool.Pool, pi string) queries.Meeting {
	t.Helper()
	m, err := queries.New().MeetingGetByPaymentIntentID(context.Background(), pool, &pi)
	if err != nil {
		t.Fatalf("meeting of %s: %v", pi, err)
	}
	return m
}

func user(t *testing.T, pool *pgxpool.Pool, id string) queries.User {
	t.Helper()
	u, err := queries.New().UserGetByWorkOSID(context.Background(), pool, id)
	if err != nil {
		t.Fatalf("user %s: %v", id, err)
	}
	return u
}

func organization(t *testing.T, pool *pgxpool.Pool, id string) queries.Organization {
	t.Helper()
	o, err := queries.New().OrganizationGetByWorkOSID(context.Background(), pool, id)
	if err != nil {
		t.Fatalf("organization %s: %v", id, err)
	}
	return o
}

// describe prints what a meeting says about the booking and its payment,
// leaving out the row's own ids and times, for comparing rows.
func describe(m queries.Meeting) string {
	var b strings.Builder
	field := func(name string, v any) { fmt.Fprintf(&b, "%s=%v ", name, v) }
	deref := func(p any) any {
		switch v := p.(type) {
		case *string:
			return str(v)
		case *int64:
			if v == nil {
				return "<nil>"
			}
			return *v
		case *int32:
			if v == nil {
				return "<nil>"
			}
			return *v
		case *time.Time:
			if v == nil {
				return "<nil>"
			}
			return v.UTC().Format(time.RFC3339)
		}
		return p
	}
	if m.BookableEventID != nil {
		field("event", m.BookableEventID.String())
	}
	field("expert", deref(m.ExpertWorkosUserID))
	field("guest", deref(m.GuestEmail))
	field("guestName", deref(m.GuestName))
	field("guestUser", deref(m.GuestWorkosUserID))
	field("start", deref(m.StartTime))
	field("dur", deref(m.DurationMinutes))
	field("notes", deref(m.Notes))
	field("tz", deref(m.Timezone))
	field("locale", deref(m.Locale))
	field("customer", deref(m.StripeCustomerID))
	field("amount", deref(m.Amount))
	field("fee", deref(m.ApplicationFeeAmount))
	field("refunded", m.AmountRefunded)
	field("currency", deref(m.Currency))
	field("status", m.PaymentStatus)
	field("rank", m.PaymentStatusRank)
	field("statusAt", m.PaymentStatusVersion.UTC().Format(time.RFC3339))
	field("detailsAt", deref(m.DetailsVersion))
	return b.String()
}

func TestStripeFixturesApplyOverHTTP(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	for _, f := range []string{"workos/user.created.json", "workos/organization.updated.json", "workos/organization_membership.created.json"} {
		h.PostWorkOS(syncdtest.WithID(syncdtest.Fixture(t, f), "event_"+f))
	}
	h.WaitSettled()
	for _, f := range []string{"customer.updated", "customer.subscription.updated", "checkout.session.completed", "payment_intent.succeeded"} {
		h.PostStripe(stripeFixtureEvent(t, f, "evt_"+f), false)
	}
	h.PostStripe(stripeFixtureEvent(t, "account.updated", "evt_account.updated"), true)
	h.PostStripe(syncdtest.StripeEvent("evt_unknown", "invoice.finalized", s0, map[string]any{"id": "in_1", "object": "invoice"}), false)
	h.WaitSettled()

	for _, f := range []string{"customer.updated", "customer.subscription.updated", "checkout.session.completed", "payment_intent.succeeded", "account.updated"} {
		if got := ledgerOutcome(t, h.Pool, "evt_"+f); got != "applied" {
			t.Errorf("%s: outcome %s, want applied", f, got)
		}
	}
	if got := ledgerOutcome(t, h.Pool, "evt_unknown"); got != "ignored" {
		t.Errorf("unknown type: outcome %s, want ignored", got)
	}

	// customer.updated: the customer's metadata names the WorkOS user.
	u := user(t, h.Pool, "user_01E4ZCR3C56J083X43JQXF3JK5")
	if str(u.StripeCustomerID) != "cus_PEHTtYpY7elppN" || u.StripeCustomerVersion == nil || u.StripeCustomerVersion.Unix() != 1712700005 {
		t.Errorf("customer link: %s at %v", str(u.StripeCustomerID), u.StripeCustomerVersion)
	}
	c, err := queries.New().StripeCustomerGet(context.Background(), h.Pool, "cus_PEHTtYpY7elppN")
	if err != nil || str(c.Email) != "patient@example.com" || str(c.WorkosUserID) != "user_01E4ZCR3C56J083X43JQXF3JK5" {
		t.Errorf("customer mirror: %+v %v", c, err)
	}

	// customer.subscription.updated: metadata names the organization.
	o := organization(t, h.Pool, "org_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if str(o.StripeSubscriptionID) != "sub_1OPouiJN5vQBdWExOgfg6t5C" || str(o.SubscriptionTier) != "professional" ||
		str(o.SubscriptionStatus) != "active" || o.SubscriptionCancelAtPeriodEnd ||
		o.SubscriptionCurrentPeriodEnd == nil || o.SubscriptionCurrentPeriodEnd.Unix() != 1715292000 ||
		o.SubscriptionVersion == nil || o.SubscriptionVersion.Unix() != 1712700004 {
		t.Errorf("organization subscription: %+v", o)
	}
	// WorkOS's own customer id on the organization is left alone.
	if str(o.StripeCustomerID) != "cus_R9qWAGMQ6nGE7V" {
		t.Errorf("organization customer %s", str(o.StripeCustomerID))
	}

	// account.updated on the Connect endpoint: metadata workosUserId.
	x := user(t, h.Pool, "user_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if str(x.StripeConnectAccountID) != "acct_1OPouMJN5vQBdWEx" || !x.ConnectDetailsSubmitted || !x.ConnectChargesEnabled ||
		!x.ConnectPayoutsEnabled || !x.ConnectOnboardingComplete || x.StripeConnectVersion == nil || x.StripeConnectVersion.Unix() != 1712700006 {
		t.Errorf("connect account link: %+v", x)
	}

	// checkout.session.completed and payment_intent.succeeded: one meeting.
	m := meetingByPI(t, h.Pool, "pi_1OPougJN5vQBdWEx8s2Dj0YR")
	want := "event=5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11 expert=user_01EHWNCE74X7JSDV0X3SZ3KJNY guest=marcelina.davis@example.com " +
		"guestName=Marcelina Davis guestUser=user_01E4ZCR3C56J083X43JQXF3JK5 start=2026-12-01T10:00:00Z dur=45 notes=first visit " +
		"tz=Europe/Lisbon locale=pt customer=cus_PEHTtYpY7elppN amount=1099 fee=165 refunded=0 currency=usd status=succeeded rank=10 " +
		"statusAt=2024-04-09T22:00:02Z detailsAt=2024-04-09T22:00:02Z "
	if got := describe(m); got != want {
		t.Errorf("meeting\n got %s\nwant %s", got, want)
	}
	if str(m.StripeSessionID) != "cs_test_a12et9VnHfV9NETJktvuOmVoyrOB40recOCQWiVNeDlBe4IqxEIRNi1Qdf" {
		t.Errorf("meeting session %s", str(m.StripeSessionID))
	}
}

func TestStripeOtherAPIVersionsAreApplied(t *testing.T) {
	t.Parallel()
	d := newDirect(t)
	d.arrive(
		decoded(t, "workos", syncdtest.WorkOSEvent("event_org", "organization.created", orgData("org_basil", "Basil", 1))),
		// From 2025-03-31.basil the billing period lives on the items.
		decoded(t, "stripe", stripeEventAt("evt_basil", "customer.subscription.updated", s0, "2025-03-31.basil", map[string]any{
			"id": "sub_basil", "object": "subscription", "customer": "cus_basil", "status": "trialing",
			"cancel_at_period_end": true, "metadata": map[string]any{"workosOrgId": "org_basil"},
			"items": map[string]any{"object": "list", "data": []any{map[string]any{
				"id": "si_1", "current_period_start": s0, "current_period_end": s0 + 86400,
				"price": map[string]any{"id": "price_1", "lookup_key": "team_monthly"},
			}}},
			"billing_mode": map[string]any{"type": "flexible"},
		})),
		decoded(t, "stripe", stripeEventAt("evt_old", "customer.created", s0, "2019-02-19", map[string]any{
			"id": "cus_old", "object": "customer", "email": "old@example.com", "account_balance": 0,
			"sources":  map[string]any{"object": "list", "data": []any{}},
			"metadata": map[string]any{"workosOrgId": "org_basil"}, "created": s0 - 10,
		})),
	)
	for _, id := range []string{"evt_basil", "evt_old"} {
		if got := ledgerOutcome(t, d.Pool, id); got != "applied" {
			t.Errorf("%s: outcome %s, want applied", id, got)
		}
	}
	o := organization(t, d.Pool, "org_basil")
	if str(o.SubscriptionStatus) != "trialing" || str(o.SubscriptionTier) != "team_monthly" || !o.SubscriptionCancelAtPeriodEnd ||
		o.SubscriptionCurrentPeriodEnd == nil || o.SubscriptionCurrentPeriodEnd.Unix() != s0+86400 {
		t.Errorf("subscription at API 2025-03-31.basil: %+v", o)
	}
	if str(o.StripeCustomerID) != "cus_old" {
		t.Errorf("customer at API 2019-02-19: organization customer %s", str(o.StripeCustomerID))
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func TestMeetingEventsConvergeInAnyOrder(t *testing.T) {
	t.Parallel()
	perms := permutations(3)
	if len(perms) != 6 {
		t.Fatalf("%d permutations", len(perms))
	}
	bothWays(t, func(t *testing.T, d *direct) {
		for n, perm := range perms {
			cs, pi := fmt.Sprintf("cs_%d", n), fmt.Sprintf("pi_%d", n)
			evs := [][]byte{
				syncdtest.StripeEvent("evt_cs_"+pi, "checkout.session.completed", s0+1, sessionObject(cs, pi, "paid")),
				syncdtest.StripeEvent("evt_pi_"+pi, "payment_intent.succeeded", s0+2, paymentIntentObject(pi)),
				syncdtest.StripeEvent("evt_ch_"+pi, "charge.refunded", s0+3, chargeObject(pi, 1099, true)),
			}
			var ordered, again [][]byte
			for _, i := range perm {
				ordered = append(ordered, evs[i])
			}
			d.stripe(ordered...)
			// Stripe's retries of the same events are settled by the ledger.
			expectOutcomes(t, d.stripe(ordered...), consumers.Skipped)
			// Redelivered under other ids (as a backfill may), in reverse.
			for k := len(perm) - 1; k >= 0; k-- {
				var ev map[string]any
				_ = json.Unmarshal(evs[perm[k]], &ev)
				again = append(again, syncdtest.WithID(evs[perm[k]], ev["id"].(string)+"_again"))
			}
			d.stripe(again...)
		}

		want := "event=5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11 expert=user_expert guest=Guest.Person@Example.com guestName=Guest Person " +
			"guestUser=<nil> start=2026-12-01T10:00:00Z dur=45 notes=first visit tz=Europe/Lisbon locale=pt customer=cus_guest " +
			"amount=1099 fee=165 refunded=1099 currency=usd status=refunded rank=30 " +
			fmt.Sprintf("statusAt=%s detailsAt=%s ", time.Unix(s0+3, 0).UTC().Format(time.RFC3339), time.Unix(s0+2, 0).UTC().Format(time.RFC3339))
		for n, perm := range perms {
			pi := fmt.Sprintf("pi_%d", n)
			m := meetingByPI(t, d.Pool, pi)
			if got := describe(m); got != want {
				t.Errorf("order %v:\n got %s\nwant %s", perm, got, want)
			}
			if str(m.StripeSessionID) != fmt.Sprintf("cs_%d", n) {
				t.Errorf("order %v: session %s", perm, str(m.StripeSessionID))
			}
		}
		var rows int
		if err := d.Pool.QueryRow(context.Background(), "SELECT count(*) FROM meetings").Scan(&rows); err != nil || rows != len(perms) {
			t.Errorf("%d meeting rows (%v), want %d", rows, err, len(perms))
		}
	})
}

func TestMeetingRowsOfSessionAndPaymentIntentMerge(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, d *direct) {
		// The Session completes unpaid before its PaymentIntent is known,
		// the PaymentIntent's own event makes a second row, and the
		// Session's next event, naming the PaymentIntent, makes them one.
		d.stripe(
			syncdtest.StripeEvent("evt_m1", "checkout.session.completed", s0+1, sessionObject("cs_m", "", "unpaid")),
			syncdtest.StripeEvent("evt_m2", "payment_intent.processing", s0+2, paymentIntentObject("pi_m")))
		var rows int
		if err := d.Pool.QueryRow(context.Background(), "SELECT count(*) FROM meetings").Scan(&rows); err != nil || rows != 2 {
			t.Fatalf("%d rows (%v) before the link is known, want 2", rows, err)
		}
		d.stripe(syncdtest.StripeEvent("evt_m3", "checkout.session.async_payment_succeeded", s0+5, sessionObject("cs_m", "pi_m", "paid")))
		if err := d.Pool.QueryRow(context.Background(), "SELECT count(*) FROM meetings").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		m := meetingByPI(t, d.Pool, "pi_m")
		if rows != 1 || str(m.StripeSessionID) != "cs_m" || m.PaymentStatus != "succeeded" || *m.ApplicationFeeAmount != 165 || str(m.GuestName) != "Guest Person" {
			t.Errorf("%d rows; merged meeting %s session=%s", rows, describe(m), str(m.StripeSessionID))
		}
	})
}

func TestMeetingPaymentStatusPrecedence(t *testing.T) {
	t.Parallel()
	type ev struct {
		typ string
		sec int64
	}
	cases := []struct {
		name string
		evs  []ev
		want string
	}{
		// Same second: the documented order decides, not arrival.
		{"processing then failed, same second", []ev{{"payment_intent.processing", 0}, {"payment_intent.payment_failed", 0}}, "failed"},
		{"failed then processing, same second", []ev{{"payment_intent.payment_failed", 0}, {"payment_intent.processing", 0}}, "failed"},
		{"succeeded then refunded, same second", []ev{{"payment_intent.succeeded", 0}, {"charge.refunded", 0}}, "refunded"},
		{"refunded then succeeded, same second", []ev{{"charge.refunded", 0}, {"payment_intent.succeeded", 0}}, "refunded"},
		{"disputed then refunded, same second", []ev{{"charge.dispute.created", 0}, {"charge.refunded", 0}, {"checkout.session.completed", -1}}, "disputed"},
		// A failed payment retried: the newer event wins inside tier 0 and
		// success is final.
		{"failed, retried, succeeded", []ev{{"payment_intent.payment_failed", 0}, {"payment_intent.processing", 3}, {"payment_intent.succeeded", 5}}, "succeeded"},
		{"late old failure after retry", []ev{{"payment_intent.processing", 3}, {"payment_intent.payment_failed", 0}}, "processing"},
		{"failure after success", []ev{{"payment_intent.succeeded", 0}, {"payment_intent.payment_failed", 9}}, "succeeded"},
		{"cancel after success", []ev{{"payment_intent.succeeded", 0}, {"payment_intent.canceled", 9}}, "succeeded"},
	}
	bothWays(t, func(t *testing.T, d *direct) {
		var bodies [][]byte
		for n, c := range cases {
			pi := fmt.Sprintf("pi_p%d", n)
			for k, e := range c.evs {
				var obj map[string]any
				switch e.typ {
				case "charge.refunded":
					obj = chargeObject(pi, 1099, true)
				case "checkout.session.completed":
					obj = sessionObject("cs_"+pi, pi, "paid")
				case "charge.dispute.created":
					obj = map[string]any{"id": "dp_" + pi, "object": "dispute", "charge": "ch_" + pi, "payment_intent": pi, "amount": 1099}
				default:
					obj = paymentIntentObject(pi)
				}
				bodies = append(bodies, syncdtest.StripeEvent(fmt.Sprintf("evt_%s_%d", pi, k), e.typ, s0+e.sec, obj))
			}
		}
		d.stripe(bodies...)
		for n, c := range cases {
			m := meetingByPI(t, d.Pool, fmt.Sprintf("pi_p%d", n))
			if m.PaymentStatus != c.want {
				t.Errorf("%s: status %s, want %s", c.name, m.PaymentStatus, c.want)
			}
		}
	})
}

func TestStripeCustomerLinkedWhenUserArrivesLater(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, d *direct) {
		d.stripe(
			// Metadata names the user; another customer only has the
			// user's email.
			stripeFixtureEvent(t, "customer.updated", "evt_cus_meta"),
			syncdtest.StripeEvent("evt_cus_email", "customer.created", s0, map[string]any{
				"id": "cus_email", "object": "customer", "email": "Late.User@Example.com", "metadata": map[string]any{}, "created": s0,
			}),
			// A subscription without organization metadata reaches its
			// organization through its customer, which names the
			// organization.
			syncdtest.StripeEvent("evt_sub", "customer.subscription.created", s0, map[string]any{
				"id": "sub_via_customer", "object": "subscription", "customer": "cus_team", "status": "active",
				"current_period_end": s0 + 3600, "metadata": map[string]any{"tier": "team"},
			}),
			syncdtest.StripeEvent("evt_cus_team", "customer.created", s0, map[string]any{
				"id": "cus_team", "object": "customer", "email": "billing@team.test", "metadata": map[string]any{"workosOrgId": "org_team"},
			}))
		if _, err := queries.New().UserGetByWorkOSID(context.Background(), d.Pool, "user_01E4ZCR3C56J083X43JQXF3JK5"); err == nil {
			t.Fatal("a Stripe customer created a user")
		}

		d.workos(
			syncdtest.Fixture(t, "workos/user.created.json"),
			syncdtest.WorkOSEvent("event_late", "user.created", userData("user_late", "late.user@example.com", 1)),
			syncdtest.WorkOSEvent("event_team", "organization.created", orgData("org_team", "Team", 1)))
		if got := str(user(t, d.Pool, "user_01E4ZCR3C56J083X43JQXF3JK5").StripeCustomerID); got != "cus_PEHTtYpY7elppN" {
			t.Errorf("user named by customer metadata: customer %s", got)
		}
		if got := str(user(t, d.Pool, "user_late").StripeCustomerID); got != "cus_email" {
			t.Errorf("user with the customer's email: customer %s", got)
		}
		o := organization(t, d.Pool, "org_team")
		if str(o.StripeCustomerID) != "cus_team" || str(o.StripeSubscriptionID) != "sub_via_customer" || str(o.SubscriptionTier) != "team" || str(o.SubscriptionStatus) != "active" {
			t.Errorf("organization: customer %s subscription %s tier %s status %s", str(o.StripeCustomerID), str(o.StripeSubscriptionID), str(o.SubscriptionTier), str(o.SubscriptionStatus))
		}

		// Deleting the customer unlinks it; an older update arriving late
		// cannot bring the link back.
		d.stripe(
			syncdtest.StripeEvent("evt_cus_email_del", "customer.deleted", s0+10, map[string]any{
				"id": "cus_email", "object": "customer", "email": "late.user@example.com", "deleted": true,
			}),
			syncdtest.StripeEvent("evt_cus_email_upd", "customer.updated", s0+5, map[string]any{
				"id": "cus_email", "object": "customer", "email": "late.user@example.com", "metadata": map[string]any{},
			}))
		if got := user(t, d.Pool, "user_late").StripeCustomerID; got != nil {
			t.Errorf("deleted customer still linked: %s", *got)
		}
		if got := ledgerOutcome(t, d.Pool, "evt_cus_email_upd"); got != "stale" {
			t.Errorf("late update: outcome %s, want stale", got)
		}
	})
}

func TestSubscriptionEventsOfOneSecondConverge(t *testing.T) {
	t.Parallel()
	sub := func(id, status string, periodEnd int64) map[string]any {
		return map[string]any{"id": id, "object": "subscription", "customer": "cus_x", "status": status,
			"current_period_end": periodEnd, "metadata": map[string]any{"teamOrgId": "org_" + id}}
	}
	bothWays(t, func(t *testing.T, d *direct) {
		var orgs [][]byte
		for _, id := range []string{"s1", "s2"} {
			orgs = append(orgs, syncdtest.WorkOSEvent("event_"+id, "organization.created", orgData("org_"+id, id, 1)))
		}
		d.workos(orgs...)
		d.stripe(
			// created < updated in one second, whatever the arrival order.
			syncdtest.StripeEvent("evt_s1_c", "customer.subscription.created", s0, sub("s1", "incomplete", s0+1)),
			syncdtest.StripeEvent("evt_s1_u", "customer.subscription.updated", s0, sub("s1", "active", s0+1)),
			syncdtest.StripeEvent("evt_s2_u", "customer.subscription.updated", s0, sub("s2", "active", s0+1)),
			syncdtest.StripeEvent("evt_s2_c", "customer.subscription.created", s0, sub("s2", "incomplete", s0+1)),
			// Two updates in one second: the event id decides, the same
			// way in both orders.
			syncdtest.StripeEvent("evt_s1_a", "customer.subscription.updated", s0+5, sub("s1", "past_due", s0+2)),
			syncdtest.StripeEvent("evt_s1_b", "customer.subscription.updated", s0+5, sub("s1", "active", s0+3)),
			syncdtest.StripeEvent("evt_s2_b", "customer.subscription.updated", s0+5, sub("s2", "active", s0+3)),
			syncdtest.StripeEvent("evt_s2_a", "customer.subscription.updated", s0+5, sub("s2", "past_due", s0+2)))
		for _, id := range []string{"s1", "s2"} {
			o := organization(t, d.Pool, "org_"+id)
			if str(o.SubscriptionStatus) != "active" || o.SubscriptionCurrentPeriodEnd.Unix() != s0+3 {
				t.Errorf("%s: status %s period end %v", id, str(o.SubscriptionStatus), o.SubscriptionCurrentPeriodEnd)
			}
		}
		if got := ledgerOutcome(t, d.Pool, "evt_s2_c"); got != "stale" {
			t.Errorf("created after updated in the same second: outcome %s, want stale", got)
		}
	})
}

func TestConnectAccountLinkAndDeauthorization(t *testing.T) {
	t.Parallel()
	const expert = "user_01EHWNCE74X7JSDV0X3SZ3KJNY"
	bothWays(t, func(t *testing.T, d *direct) {
		// The account arrives before its user.
		d.connect(stripeFixtureEvent(t, "account.updated", "evt_acct_1"))
		d.workos(syncdtest.WorkOSEvent("event_expert", "user.created", userData(expert, "expert@example.com", 1)))
		if u := user(t, d.Pool, expert); str(u.StripeConnectAccountID) != "acct_1OPouMJN5vQBdWEx" || !u.ConnectOnboardingComplete {
			t.Fatalf("account not linked when its user arrived: %s complete=%v", str(u.StripeConnectAccountID), u.ConnectOnboardingComplete)
		}
		deauth, _ := json.Marshal(map[string]any{
			"id": "evt_deauth", "object": "event", "type": "account.application.deauthorized", "created": 1712700100,
			"account": "acct_1OPouMJN5vQBdWEx", "api_version": "2023-10-16",
			"data": map[string]any{"object": map[string]any{"id": "ca_platform", "object": "application", "name": "Platform"}},
		})
		// Updates from before the deauthorization, delivered after it: one
		// newer than the account data stored (the same second, a later
		// id) brings its data, as it would have in order, but the account
		// stays deauthorized; one older than that data is stale.
		d.connect(deauth,
			stripeFixtureEvent(t, "account.updated", "evt_acct_late"),
			stripeFixtureEvent(t, "account.updated", "evt_acct_0"))
		u := user(t, d.Pool, expert)
		if u.StripeConnectAccountID != nil || u.ConnectChargesEnabled || u.ConnectPayoutsEnabled || u.ConnectOnboardingComplete ||
			u.StripeConnectVersion != nil {
			t.Errorf("after deauthorization: %s charges=%v payouts=%v version=%v", str(u.StripeConnectAccountID), u.ConnectChargesEnabled, u.ConnectPayoutsEnabled, u.StripeConnectVersion)
		}
		a, err := queries.New().StripeConnectAccountGet(context.Background(), d.Pool, "acct_1OPouMJN5vQBdWEx")
		if err != nil {
			t.Fatal(err)
		}
		if a.DeauthorizedAt == nil || a.DeauthorizedAt.Unix() != 1712700100 || a.StripeEventID != "evt_deauth" || str(a.DataEventID) != "evt_acct_late" {
			t.Errorf("mirror: deauthorized_at=%v version=%s data version=%s; want deauthorized at the deauthorization, data from evt_acct_late",
				a.DeauthorizedAt, a.StripeEventID, str(a.DataEventID))
		}
		for id, want := range map[string]string{"evt_acct_late": "applied", "evt_acct_0": "stale"} {
			if got := ledgerOutcome(t, d.Pool, id); got != want {
				t.Errorf("late account.updated %s: outcome %s, want %s", id, got, want)
			}
		}
	})
}

func TestMeetingGuestLinkedWhenUserArrivesLater(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, d *direct) {
		// Booked under the guest's email in other letter cases.
		booking := strings.Replace(bookingJSON, "Guest.Person@Example.com", "Marcelina.DAVIS@example.COM", 1)
		s := sessionObject("cs_g", "pi_g", "paid")
		s["metadata"] = map[string]any{"meeting": booking}
		d.stripe(syncdtest.StripeEvent("evt_g1", "checkout.session.completed", s0, s))
		if m := meetingByPI(t, d.Pool, "pi_g"); m.GuestWorkosUserID != nil {
			t.Fatalf("guest linked before any user: %s", *m.GuestWorkosUserID)
		}
		d.workos(syncdtest.Fixture(t, "workos/user.created.json"))
		m := meetingByPI(t, d.Pool, "pi_g")
		if str(m.GuestWorkosUserID) != "user_01E4ZCR3C56J083X43JQXF3JK5" || m.GuestOrgID != nil {
			t.Fatalf("guest after the user arrived: user %s org %v", str(m.GuestWorkosUserID), m.GuestOrgID)
		}
		// The guest's organization follows with the membership.
		d.workos(
			syncdtest.WorkOSEvent("event_gorg", "organization.created", orgData("org_guest", "Guest", 1)),
			syncdtest.WorkOSEvent("event_gmem", "organization_membership.created",
				membershipData("om_guest", "user_01E4ZCR3C56J083X43JQXF3JK5", "org_guest", "member", "active", 1)))
		m = meetingByPI(t, d.Pool, "pi_g")
		if o := organization(t, d.Pool, "org_guest"); m.GuestOrgID == nil || *m.GuestOrgID != o.ID {
			t.Errorf("guest organization %v, want %s", m.GuestOrgID, o.ID)
		}
	})
}

func TestStripeDecodingIsLenientButBadBookingsAreSetAside(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	// An expanded payment_intent and minutes as a string are accepted.
	s := sessionObject("cs_x", "", "paid")
	s["payment_intent"] = map[string]any{"id": "pi_x", "object": "payment_intent", "status": "succeeded"}
	s["metadata"] = map[string]any{"meeting": strings.Replace(bookingJSON, `"dur":45`, `"dur":"30"`, 1)}
	h.PostStripe(syncdtest.StripeEvent("evt_x", "checkout.session.completed", s0, s), false)
	// A booking whose metadata is not JSON cannot be applied by retrying.
	pi := paymentIntentObject("pi_bad")
	pi["metadata"] = map[string]any{"meeting": "{not json"}
	h.PostStripe(syncdtest.StripeEvent("evt_bad", "payment_intent.succeeded", s0, pi), false)
	h.WaitSettled()
	if m := meetingByPI(t, h.Pool, "pi_x"); m.DurationMinutes == nil || *m.DurationMinutes != 30 || str(m.StripeSessionID) != "cs_x" {
		t.Errorf("lenient session: %s", describe(m))
	}
	ctx := context.Background()
	dl, err := h.NATS.JS.Stream(ctx, stream.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dl.GetLastMsgForSubject(ctx, stream.DeadLetterSubject("stripe", "payment_intent.succeeded"))
	if err != nil {
		t.Fatalf("bad booking not dead-lettered: %v", err)
	}
	if class, reason := msg.Header.Get(stream.HeaderDLClass), msg.Header.Get(stream.HeaderDLError); class != "undecodable" || !strings.Contains(reason, "metadata.meeting") {
		t.Errorf("dead letter class %q reason %q", class, reason)
	}
	if _, err := queries.New().EventLedgerGet(ctx, h.Pool, queries.EventLedgerGetParams{Source: "stripe", EventID: "evt_bad"}); err == nil {
		t.Error("dead-lettered event has a ledger row")
	}
}
