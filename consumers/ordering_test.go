package consumers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

func decoded(t *testing.T, source string, body []byte) consumers.Event {
	t.Helper()
	decode := events.DecodeWorkOS
	if source == "stripe" {
		decode = events.DecodeStripe
	}
	env, err := decode(body)
	if err != nil {
		t.Fatal(err)
	}
	return consumers.Event{Source: source, Envelope: env, Body: body, ReceivedAt: time.Now()}
}

func apply(t *testing.T, c *consumers.Consumer, evs ...consumers.Event) []consumers.Result {
	t.Helper()
	res, err := c.Apply(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A membership that arrives after its user or organization was deleted is
// stored deleted: the parent's delete could only tombstone what existed.
func TestLateMembershipOfDeletedParentIsBornDeleted(t *testing.T) {
	t.Parallel()
	c, pool, _ := tracedConsumer(t)
	apply(t, c,
		decoded(t, "workos", dsyncEvent("d1", "user.deleted", 10, userData("user_z", "z@x.test", 10))),
		decoded(t, "workos", dsyncEvent("d2", "organization.deleted", 10, orgData("org_y", "Y", 10))))
	apply(t, c,
		decoded(t, "workos", dsyncEvent("m1", "organization_membership.created", 5, membershipData("om_z", "user_z", "org_live", "admin", "active", 5))),
		decoded(t, "workos", dsyncEvent("m2", "organization_membership.created", 5, membershipData("om_y", "user_live", "org_y", "admin", "active", 5))))
	q := queries.New()
	for _, id := range []string{"om_z", "om_y"} {
		m, err := q.MembershipGetByWorkOSID(context.Background(), pool, id)
		if err != nil || m.DeletedAt == nil {
			t.Errorf("%s: live membership of a deleted parent (%v)", id, err)
		}
	}
}

// An older deletion that arrives after a newer update sets the tombstone
// and nothing else: the mirror keeps the newer data and version.
func TestOlderStripeDeletionKeepsNewerData(t *testing.T) {
	t.Parallel()
	c, pool, _ := tracedConsumer(t)
	customer := func(email string) map[string]any {
		return map[string]any{"id": "cus_o", "object": "customer", "email": email, "metadata": map[string]any{}}
	}
	apply(t, c, decoded(t, "stripe", stripeEventAt("evt_u", "customer.updated", s0+10, "2023-10-16", customer("new@x.test"))))
	apply(t, c, decoded(t, "stripe", stripeEventAt("evt_d", "customer.deleted", s0+5, "2023-10-16", customer("old@x.test"))))
	var email, eventID string
	var deleted *time.Time
	if err := pool.QueryRow(context.Background(), "SELECT email, stripe_event_id, deleted_at FROM stripe_customers WHERE stripe_customer_id = 'cus_o'").Scan(&email, &eventID, &deleted); err != nil {
		t.Fatal(err)
	}
	if email != "new@x.test" || eventID != "evt_u" || deleted == nil {
		t.Fatalf("email=%s version=%s deleted=%v; want the newer data, tombstoned", email, eventID, deleted)
	}
}

// A WorkOS delete carries the object as it was: newer than the stored row
// it writes that object with the tombstone, so an update older than it
// that arrives later is stale and the row is what it would be in order; an
// older delete sets only the tombstone (as TestOlderStripeDeletionKeepsNewerData).
func TestWorkOSDeleteWritesTheObjectItCarries(t *testing.T) {
	t.Parallel()
	c, pool, _ := tracedConsumer(t)
	org := func(name, domain string, sec int) map[string]any {
		d := orgData("org_del", name, sec)
		d["domains"] = []any{map[string]any{"domain": domain}}
		return d
	}
	user := func(email string, sec int) map[string]any { return userData("user_del", email, sec) }
	membership := func(role string, sec int) map[string]any {
		return membershipData("om_del", "user_m", "org_m", role, "active", sec)
	}
	// Newer deletes first, each followed by the update just before it.
	apply(t, c,
		decoded(t, "workos", dsyncEvent("d1", "organization.deleted", 9, org("Last", "last.test", 8))),
		decoded(t, "workos", dsyncEvent("d2", "user.deleted", 9, user("last@x.test", 8))),
		decoded(t, "workos", dsyncEvent("d3", "organization_membership.deleted", 9, membership("admin", 8))))
	res := apply(t, c,
		decoded(t, "workos", dsyncEvent("u1", "organization.updated", 7, org("Before", "before.test", 7))),
		decoded(t, "workos", dsyncEvent("u2", "user.updated", 7, user("before@x.test", 7))),
		decoded(t, "workos", dsyncEvent("u3", "organization_membership.updated", 7, membership("member", 7))))
	for i, r := range res {
		if r.Err != nil || r.Outcome != consumers.Stale {
			t.Errorf("update %d older than its delete: %s %v, want stale", i, r.Outcome, r.Err)
		}
	}
	// An older delete after a newer update: the tombstone only.
	apply(t, c, decoded(t, "workos", dsyncEvent("o1", "organization.updated", 20, orgData("org_old", "Newer", 20))))
	apply(t, c, decoded(t, "workos", dsyncEvent("o2", "organization.deleted", 21, orgData("org_old", "Older", 10))))

	q, ctx := queries.New(), context.Background()
	o, err := q.OrganizationGetByWorkOSID(ctx, pool, "org_del")
	if err != nil {
		t.Fatal(err)
	}
	if o.DeletedAt == nil || *o.Name != "Last" || len(o.Domains) != 1 || o.Domains[0] != "last.test" || o.Type == nil || *o.Type != "team" ||
		o.WorkosUpdatedAt == nil || o.WorkosUpdatedAt.Unix() != t0.Add(8*time.Second).Unix() {
		t.Errorf("organization: deleted=%v name=%v domains=%v type=%v version=%v; want the delete's object, deleted",
			o.DeletedAt, o.Name, o.Domains, o.Type, o.WorkosUpdatedAt)
	}
	u, err := q.UserGetByWorkOSID(ctx, pool, "user_del")
	if err != nil {
		t.Fatal(err)
	}
	if u.DeletedAt == nil || *u.Email != "last@x.test" || *u.FirstName != "F8" || string(u.Metadata) != `{"tz": "UTC"}` {
		t.Errorf("user: deleted=%v email=%v first=%v metadata=%s; want the delete's object, deleted", u.DeletedAt, *u.Email, *u.FirstName, u.Metadata)
	}
	m, err := q.MembershipGetByWorkOSID(ctx, pool, "om_del")
	if err != nil {
		t.Fatal(err)
	}
	if m.DeletedAt == nil || *m.Role != "admin" || *m.Status != "active" {
		t.Errorf("membership: deleted=%v role=%v; want the delete's, deleted", m.DeletedAt, *m.Role)
	}
	old, err := q.OrganizationGetByWorkOSID(ctx, pool, "org_old")
	if err != nil {
		t.Fatal(err)
	}
	if old.DeletedAt == nil || *old.Name != "Newer" || old.WorkosUpdatedAt.Unix() != t0.Add(20*time.Second).Unix() {
		t.Errorf("older delete: deleted=%v name=%v version=%v; want the newer data, tombstoned", old.DeletedAt, *old.Name, old.WorkosUpdatedAt)
	}
}

// account.application.deauthorized carries no account data: arriving
// before the account.updated events of the same second, it leaves their
// data to apply (the account stays deauthorized), as in order.
func TestDeauthorizationBeforeUpdatesKeepsTheirData(t *testing.T) {
	t.Parallel()
	c, pool, _ := tracedConsumer(t)
	account := func(email string) map[string]any {
		return map[string]any{"id": "acct_early", "object": "account", "email": email, "charges_enabled": true,
			"details_submitted": true, "payouts_enabled": true, "metadata": map[string]any{"workos_user_id": "user_x"}, "created": s0 - 100}
	}
	event := func(id, typ string, created int64, object map[string]any) consumers.Event {
		b := stripeEventAt(id, typ, created, "2023-10-16", object)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["account"] = "acct_early"
		b, _ = json.Marshal(m)
		ev := decoded(t, "stripe", b)
		ev.Endpoint = "connect"
		return ev
	}
	apply(t, c, event("evt_x_deauth", "account.application.deauthorized", s0+5, map[string]any{"id": "ca_platform", "object": "application"}))
	res := apply(t, c, event("evt_x_1", "account.updated", s0+5, account("second@x.test")), event("evt_x_0", "account.updated", s0+4, account("first@x.test")))
	if res[0].Outcome != consumers.Applied || res[1].Outcome != consumers.Stale {
		t.Errorf("outcomes %s, %s; want applied (newest data), stale (older than it)", res[0].Outcome, res[1].Outcome)
	}
	a, err := queries.New().StripeConnectAccountGet(context.Background(), pool, "acct_early")
	if err != nil {
		t.Fatal(err)
	}
	if a.DeauthorizedAt == nil || str(a.Email) != "second@x.test" || !a.ChargesEnabled || str(a.WorkosUserID) != "user_x" || a.StripeEventID != "evt_x_deauth" {
		t.Errorf("account: deauthorized=%v email=%s charges=%v user=%s version=%s; want deauthorized with evt_x_1's data",
			a.DeauthorizedAt, str(a.Email), a.ChargesEnabled, str(a.WorkosUserID), a.StripeEventID)
	}
	// Connected again: a newer account.updated clears the deauthorization.
	apply(t, c, event("evt_x_2", "account.updated", s0+6, account("third@x.test")))
	if a, err = queries.New().StripeConnectAccountGet(context.Background(), pool, "acct_early"); err != nil || a.DeauthorizedAt != nil || str(a.Email) != "third@x.test" {
		t.Errorf("after a newer update: deauthorized=%v email=%s (%v); want connected", a.DeauthorizedAt, str(a.Email), err)
	}
}

// Links run once per batch, but a delete sees the links of the events
// before it, so one batch ends as the same events one by one do.
func TestDeleteInABatchSeesEarlierLinks(t *testing.T) {
	t.Parallel()
	guest := func(events [][]consumers.Event) *string {
		c, pool, _ := tracedConsumer(t)
		apply(t, c, decoded(t, "stripe", stripeEventAt("evt_cs", "checkout.session.completed", s0, "2023-10-16", sessionObject("cs_1", "pi_1", "paid"))))
		for _, batch := range events {
			apply(t, c, batch...)
		}
		var g *string
		if err := pool.QueryRow(context.Background(), "SELECT guest_workos_user_id FROM meetings WHERE stripe_session_id = 'cs_1'").Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	created := decoded(t, "workos", dsyncEvent("u1", "user.created", 1, userData("user_g", "guest.person@example.com", 1)))
	deleted := decoded(t, "workos", dsyncEvent("u2", "user.deleted", 2, userData("user_g", "guest.person@example.com", 2)))
	apart := guest([][]consumers.Event{{created}, {deleted}})
	together := guest([][]consumers.Event{{created, deleted}})
	if apart == nil || together == nil || *apart != *together {
		t.Fatalf("guest apart=%v together=%v; want the same link", apart, together)
	}
}

// A delete is applied (its tombstone is written) even when the object data
// it carries is older than what is stored; the outcome must not depend on
// whether the batch was pipelined or isolated.
func TestDeleteOutcomeIsTheSamePipelinedOrIsolated(t *testing.T) {
	t.Parallel()
	for _, isolated := range []bool{false, true} {
		c, pool, _ := tracedConsumer(t)
		apply(t, c, decoded(t, "workos", dsyncEvent("e1", "dsync.user.updated", 5, dsyncUserData("du1", "dir1", "org1", "A", "active", 5))))
		batch := []consumers.Event{decoded(t, "workos", dsyncEvent("e2", "dsync.user.deleted", 6, dsyncUserData("du1", "dir1", "org1", "A", "inactive", 3)))}
		if isolated {
			// A bad batch-mate sends the batch down the isolated path.
			batch = append(batch, decoded(t, "workos", dsyncEvent("bad", "user.created", 1, map[string]any{"id": 42})))
		}
		res := apply(t, c, batch...)
		row, err := queries.New().EventLedgerGet(context.Background(), pool, queries.EventLedgerGetParams{Source: "workos", EventID: "e2"})
		if err != nil || res[0].Outcome != consumers.Applied || row.Outcome != "applied" {
			t.Fatalf("isolated=%v: result %q, ledger %q (%v); want applied", isolated, res[0].Outcome, row.Outcome, err)
		}
	}
}

// A booking before a user's delete in the same batch is linked to the user
// first, as it would be event by event: meetings run outside the pipeline,
// but never after a delete that follows them.
func TestBookingBeforeDeleteInABatchKeepsItsGuest(t *testing.T) {
	t.Parallel()
	guest := func(batches [][]consumers.Event) *string {
		c, pool, _ := tracedConsumer(t)
		apply(t, c, decoded(t, "workos", dsyncEvent("u1", "user.created", 1, userData("user_g", "guest.person@example.com", 1))))
		for _, b := range batches {
			apply(t, c, b...)
		}
		var g *string
		if err := pool.QueryRow(context.Background(), "SELECT guest_workos_user_id FROM meetings WHERE stripe_session_id = 'cs_1'").Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	booked := decoded(t, "stripe", stripeEventAt("evt_cs", "checkout.session.completed", s0, "2023-10-16", sessionObject("cs_1", "pi_1", "paid")))
	deleted := decoded(t, "workos", dsyncEvent("u2", "user.deleted", 2, userData("user_g", "guest.person@example.com", 2)))
	apart := guest([][]consumers.Event{{booked}, {deleted}})
	together := guest([][]consumers.Event{{booked, deleted}})
	if apart == nil || together == nil || *apart != *together {
		t.Fatalf("guest apart=%v together=%v; want the same (kept) link", apart, together)
	}
}

func meetingRow(t *testing.T, c *consumers.Consumer, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, where string) (status string, org *string) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), "SELECT m.payment_status, o.workos_org_id FROM meetings m LEFT JOIN organizations o ON o.id = m.guest_org_id WHERE "+where).Scan(&status, &org); err != nil {
		t.Fatal(err)
	}
	return status, org
}

// An unpaid checkout that arrives after its payment began does not move the
// meeting back to pending.
func TestUnpaidCheckoutAfterProcessingStaysProcessing(t *testing.T) {
	t.Parallel()
	c, pool, _ := tracedConsumer(t)
	apply(t, c, decoded(t, "stripe", stripeEventAt("evt_p", "payment_intent.processing", s0, "2023-10-16", paymentIntentObject("pi_1"))))
	apply(t, c, decoded(t, "stripe", stripeEventAt("evt_c", "checkout.session.completed", s0+1, "2023-10-16", sessionObject("cs_1", "pi_1", "unpaid"))))
	if status, _ := meetingRow(t, c, pool, "m.stripe_payment_intent_id = 'pi_1'"); status != "processing" {
		t.Fatalf("payment_status %q, want processing", status)
	}
}

// A booking detail the app wrote badly is left out; the payment is still
// recorded and the meeting created.
func TestBadBookingDetailDoesNotLoseThePayment(t *testing.T) {
	t.Parallel()
	c, pool, _ := tracedConsumer(t)
	pi := paymentIntentObject("pi_2")
	pi["metadata"] = map[string]any{"meeting": `{"id":"not-a-uuid","guest":"guest.person@example.com","dur":45.5,"start":"soon"}`}
	res := apply(t, c, decoded(t, "stripe", stripeEventAt("evt_s", "payment_intent.succeeded", s0, "2023-10-16", pi)))
	if res[0].Err != nil {
		t.Fatalf("event failed: %v", res[0].Err)
	}
	if status, _ := meetingRow(t, c, pool, "m.stripe_payment_intent_id = 'pi_2'"); status != "succeeded" {
		t.Fatalf("payment_status %q, want succeeded", status)
	}
}

// The guest's organization is the personal one whichever arrives first:
// the organizations' own events make the members' meetings choose again.
func TestGuestOrganizationDoesNotDependOnArrivalOrder(t *testing.T) {
	t.Parallel()
	orgOf := func(orgsFirst bool) *string {
		c, pool, _ := tracedConsumer(t)
		personal := orgData("org_personal", "Personal", 1)
		personal["metadata"] = map[string]any{"type": "member_personal"}
		team := orgData("org_team", "Team", 1)
		team["metadata"] = map[string]any{"type": "team"}
		orgs := []consumers.Event{
			decoded(t, "workos", dsyncEvent("o1", "organization.created", 1, personal)),
			decoded(t, "workos", dsyncEvent("o2", "organization.created", 1, team)),
		}
		rest := []consumers.Event{
			decoded(t, "workos", dsyncEvent("u1", "user.created", 1, userData("user_g", "guest.person@example.com", 1))),
			decoded(t, "workos", dsyncEvent("m1", "organization_membership.created", 1, membershipData("om_a_team", "user_g", "org_team", "member", "active", 1))),
			decoded(t, "workos", dsyncEvent("m2", "organization_membership.created", 2, membershipData("om_z_personal", "user_g", "org_personal", "admin", "active", 2))),
			decoded(t, "stripe", stripeEventAt("evt_cs", "checkout.session.completed", s0, "2023-10-16", sessionObject("cs_1", "pi_1", "paid"))),
		}
		if orgsFirst {
			apply(t, c, orgs...)
			apply(t, c, rest...)
		} else {
			apply(t, c, rest...)
			apply(t, c, orgs...)
		}
		_, org := meetingRow(t, c, pool, "m.stripe_session_id = 'cs_1'")
		return org
	}
	first, last := orgOf(true), orgOf(false)
	if first == nil || last == nil || *first != "org_personal" || *last != "org_personal" {
		t.Fatalf("guest org with organizations first %v, last %v; want org_personal both", first, last)
	}
}

// Only the PaymentIntent carries the booking: the meeting has the
// Session's id whichever of the two arrives first.
func TestSessionWithoutBookingIsLinkedInEitherOrder(t *testing.T) {
	t.Parallel()
	for _, sessionFirst := range []bool{true, false} {
		c, pool, _ := tracedConsumer(t)
		session := sessionObject("cs_n", "pi_n", "paid")
		session["metadata"] = map[string]any{}
		evs := []consumers.Event{
			decoded(t, "stripe", stripeEventAt("evt_cs", "checkout.session.completed", s0, "2023-10-16", session)),
			decoded(t, "stripe", stripeEventAt("evt_pi", "payment_intent.succeeded", s0+1, "2023-10-16", paymentIntentObject("pi_n"))),
		}
		if !sessionFirst {
			evs[0], evs[1] = evs[1], evs[0]
		}
		apply(t, c, evs[0])
		apply(t, c, evs[1])
		var sid *string
		if err := pool.QueryRow(context.Background(), "SELECT stripe_session_id FROM meetings WHERE stripe_payment_intent_id = 'pi_n'").Scan(&sid); err != nil {
			t.Fatal(err)
		}
		if sid == nil || *sid != "cs_n" {
			t.Fatalf("session first=%v: meeting session id %v, want cs_n", sessionFirst, sid)
		}
	}
}
