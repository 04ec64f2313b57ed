package legacy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/syncd/syncd/legacy"
	"github.com/syncd/syncd/syncdtest"
	"github.com/syncd/syncd/workosapi/workosfake"
)

// The legacy database's Stripe links, carried in the imported users'
// WorkOS metadata, reach users.stripe_customer_id and
// users.stripe_connect_account_id when the webhooks come back through
// ingest; what Stripe's own events resolve later takes over, and a later
// user.updated carrying the same metadata does not displace it.
func TestImportedStripeLinksReachUsers(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	ctx := context.Background()
	fake := workosfake.New(t, workosfake.Options{})
	ps := people(20) // experts: 0 and 10
	s, err := newImporter(t, legacy.Config{Links: legacyTable(t, h.Pool, ps)}, h.Pool, newAPI(t, fake)).Run(ctx, read(t, csvOf(ps), ""))
	if err != nil || s.Created != 20 {
		t.Fatalf("%v %+v", err, s)
	}
	h.StartConsumer()
	if _, err := fake.DeliverWebhooks(ctx, h.URL+"/webhooks/workos", syncdtest.WorkOSSecret); err != nil {
		t.Fatal(err)
	}
	h.WaitSettled()

	type links struct {
		userID, customer, account  string
		customerVersioned, charges bool
	}
	read := func(p person) links {
		t.Helper()
		var l links
		var cus, acct *string
		if err := h.Pool.QueryRow(ctx, `SELECT workos_user_id, stripe_customer_id, stripe_connect_account_id,
				stripe_customer_version IS NOT NULL, connect_charges_enabled
			FROM users WHERE external_id = $1 AND NOT is_stub`, p.id).Scan(&l.userID, &cus, &acct, &l.customerVersioned, &l.charges); err != nil {
			t.Fatalf("users row of %s: %v", p.id, err)
		}
		l.customer, l.account = deref(cus), deref(acct)
		return l
	}
	ids := map[int]string{}
	for i, p := range ps {
		l := read(p)
		ids[i] = l.userID
		wantAcct := ""
		if p.expert {
			wantAcct = fmt.Sprintf("acct_%d", i)
		}
		if l.customer != fmt.Sprintf("cus_%d", i) || l.account != wantAcct || l.customerVersioned {
			t.Fatalf("person %d after the import's webhooks: %+v; want customer cus_%d, account %q, no Stripe version", i, l, i, wantAcct)
		}
	}

	// Stripe's events: person 1 gets a new customer that names them, expert
	// 0 a new account that names them; the legacy customer of person 2 and
	// the legacy account of expert 10 become known, naming nobody in
	// WorkOS (Clerk-era metadata) under another email.
	now := time.Now().Unix()
	h.PostStripe(syncdtest.StripeEvent("evt_cus_new_1", "customer.created", now, map[string]any{
		"id": "cus_new_1", "object": "customer", "email": "person1@example.com", "created": now,
		"metadata": map[string]any{"workos_user_id": ids[1]},
	}), false)
	h.PostStripe(syncdtest.StripeEvent("evt_cus_2", "customer.updated", now, map[string]any{
		"id": "cus_2", "object": "customer", "email": "old-address@example.com", "created": now - 86400*400,
		"metadata": map[string]any{"clerk_user_id": ps[2].id},
	}), false)
	h.PostStripe(syncdtest.StripeEvent("evt_acct_new_0", "account.updated", now, map[string]any{
		"id": "acct_new_0", "object": "account", "charges_enabled": true, "payouts_enabled": true, "details_submitted": true,
		"created": now, "metadata": map[string]any{"workos_user_id": ids[0]},
	}), false)
	h.PostStripe(syncdtest.StripeEvent("evt_acct_10", "account.updated", now, map[string]any{
		"id": "acct_10", "object": "account", "charges_enabled": true, "payouts_enabled": true, "details_submitted": true,
		"created": now - 86400*400, "metadata": map[string]any{"clerk_user_id": ps[10].id},
	}), false)
	h.WaitSettled()

	// Then user.updated for each of them, still carrying the legacy ids.
	later := time.Now().Add(time.Minute)
	for _, i := range []int{0, 1, 2, 10} {
		var u workosfake.User
		for _, fu := range fake.Users() {
			if fu.ID == ids[i] {
				u = fu
			}
		}
		b, _ := json.Marshal(u)
		var data map[string]any
		_ = json.Unmarshal(b, &data)
		data["updated_at"] = syncdtest.Millis(later)
		h.PostWorkOS(syncdtest.WorkOSEvent(fmt.Sprintf("event_updated_%d", i), "user.updated", data))
	}
	h.WaitSettled()

	for _, c := range []struct {
		i    int
		want links
	}{
		{0, links{customer: "cus_0", account: "acct_new_0", charges: true}},
		{1, links{customer: "cus_new_1", customerVersioned: true}},
		{2, links{customer: "cus_2", customerVersioned: true}},
		{10, links{customer: "cus_10", account: "acct_10", charges: true}},
		{3, links{customer: "cus_3"}},
	} {
		got := read(ps[c.i])
		c.want.userID = ids[c.i]
		if got != c.want {
			t.Errorf("person %d after Stripe's events and user.updated: %+v; want %+v", c.i, got, c.want)
		}
	}
}
