package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
)

func applier(t *testing.T, pool *pgxpool.Pool, routes []consumers.Route) *consumers.Applier {
	t.Helper()
	a, err := consumers.NewApplier(consumers.ApplierConfig{Routes: routes}, pool)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// randomBatch is a burst of events over a few entities of every
// set-based table, plus the events that order them (deletes, memberships,
// deauthorizations, directory deletes): the same key many times, versions
// that tie in one second, deletes before creates, children before parents
// (a membership's user and group stubs before their own events, users of
// a directory deleted before they arrive), duplicates.
//
// cases, when not nil, are the kinds of event drawn (the cases of the
// switch below); nil draws all.
func randomBatch(t *testing.T, rng *rand.Rand, ns string, n int, cases []int) []consumers.Event {
	t.Helper()
	users := []string{ns + "u0", ns + "u1", ns + "u2"}
	orgs := []string{ns + "o0", ns + "o1"}
	// The third directory is new in each batch: its stub is made there.
	dirs := []string{ns + "d0", ns + "d1", fmt.Sprintf("%sd%d", ns, 2+rng.IntN(1<<20))}
	dirUsers := []string{ns + "du0", ns + "du1", ns + "du2"}
	dirGroups := []string{ns + "dg0", ns + "dg1", ns + "dg2"}
	// A directory child names its directory's organization, or none, or
	// another: a directory stub keeps the first one named. A child now
	// and then names another directory (it moved).
	dirOf := func(k int) string {
		if rng.IntN(4) == 0 {
			return dirs[rng.IntN(len(dirs))]
		}
		return dirs[k%len(dirs)]
	}
	dirChild := func(d map[string]any, dir string) map[string]any {
		switch rng.IntN(4) {
		case 0:
			d["organization_id"] = nil
		case 1:
			d["organization_id"] = orgs[rng.IntN(len(orgs))]
		default:
			d["organization_id"] = orgs[slices.Index(dirs, dir)%len(orgs)]
		}
		return d
	}
	dirUser := func() map[string]any {
		k := rng.IntN(len(dirUsers))
		dir := dirOf(k)
		return dirChild(dsyncUserData(dirUsers[k], dir, "", fmt.Sprintf("F%d", rng.IntN(50)), []string{"active", "inactive"}[rng.IntN(2)], rng.IntN(4)), dir)
	}
	dirGroup := func() map[string]any {
		k := rng.IntN(len(dirGroups))
		dir := dirOf(k)
		d := dirChild(dsyncGroupData(dirGroups[k], dir, "", fmt.Sprintf("G%d", rng.IntN(50)), rng.IntN(4)), dir)
		if rng.IntN(4) == 0 {
			d["raw_attributes"] = nil
		}
		return d
	}
	email := func() string { return fmt.Sprintf("%s%d@x.test", ns, rng.IntN(3)) }
	maybe := func(v any) any {
		if rng.IntN(3) == 0 {
			return nil
		}
		return v
	}
	// Imported users carry their legacy Stripe links in their metadata
	// (legacy.Importer): u0 a customer and an account the batch's Stripe
	// events also write, u1 ones Stripe never mentions.
	legacyMeta := map[string]map[string]any{
		users[0]: {"importedFrom": "clerk", "stripe_customer_id": "cus_" + ns + "0", "stripe_connect_account_id": "acct_" + ns + "1"},
		users[1]: {"importedFrom": "clerk", "stripe_customer_id": "cus_legacy_" + ns, "stripe_connect_account_id": "acct_legacy_" + ns},
	}
	var evs []consumers.Event
	id := 0
	next := func() string { id++; return fmt.Sprintf("evt_%s%03d", ns, rng.IntN(1000)*1000+id) }
	stripe := func(typ string, object map[string]any, account string) consumers.Event {
		m := map[string]any{
			"id": next(), "object": "event", "type": typ, "created": s0 + int64(rng.IntN(3)),
			"api_version": "2023-10-16", "data": map[string]any{"object": object},
		}
		if account != "" {
			m["account"] = account
		}
		b, _ := json.Marshal(m)
		return decoded(t, "stripe", b)
	}
	workos := func(typ string, data map[string]any) consumers.Event {
		return decoded(t, "workos", dsyncEvent(next(), typ, rng.IntN(4), data))
	}
	for len(evs) < n {
		c := rng.IntN(13)
		if cases != nil {
			c = cases[rng.IntN(len(cases))]
		}
		switch c {
		case 0, 1:
			typ := []string{"customer.created", "customer.updated", "customer.updated", "customer.deleted"}[rng.IntN(4)]
			meta := map[string]any{}
			if rng.IntN(2) == 0 {
				meta["workos_user_id"] = users[rng.IntN(len(users))]
			}
			evs = append(evs, stripe(typ, map[string]any{
				"id": fmt.Sprintf("cus_%s%d", ns, rng.IntN(3)), "object": "customer", "email": email(),
				"name": maybe("N" + next()), "metadata": meta, "created": maybe(s0 - int64(rng.IntN(9))),
			}, ""))
		case 2:
			typ := []string{"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted", "customer.subscription.paused"}[rng.IntN(4)]
			evs = append(evs, stripe(typ, map[string]any{
				"id": fmt.Sprintf("sub_%s%d", ns, rng.IntN(2)), "object": "subscription",
				"customer": fmt.Sprintf("cus_%s%d", ns, rng.IntN(3)), "status": []string{"active", "past_due"}[rng.IntN(2)],
				"metadata": map[string]any{"workos_org_id": orgs[rng.IntN(len(orgs))], "tier": "pro"},
				"created":  maybe(s0 - int64(rng.IntN(9))), "items": map[string]any{"data": []any{}},
			}, ""))
		case 3:
			acct := fmt.Sprintf("acct_%s%d", ns, rng.IntN(2))
			if rng.IntN(4) == 0 {
				evs = append(evs, stripe("account.application.deauthorized", map[string]any{"id": "ca_app", "object": "application"}, acct))
				continue
			}
			evs = append(evs, stripe("account.updated", map[string]any{
				"id": acct, "object": "account", "email": email(), "charges_enabled": rng.IntN(2) == 0,
				"details_submitted": true, "payouts_enabled": rng.IntN(2) == 0,
				"metadata": map[string]any{"workos_user_id": users[rng.IntN(len(users))]}, "created": maybe(s0 - 50),
			}, acct))
		case 4, 5:
			typ := []string{"user.created", "user.updated", "user.updated", "user.deleted"}[rng.IntN(4)]
			u := users[rng.IntN(len(users))]
			d := userData(u, email(), rng.IntN(4))
			if m, ok := legacyMeta[u]; ok {
				d["metadata"] = m
			}
			evs = append(evs, workos(typ, d))
		case 6:
			typ := []string{"organization.created", "organization.updated", "organization.deleted"}[rng.IntN(3)]
			d := orgData(orgs[rng.IntN(len(orgs))], "Org "+next(), rng.IntN(4))
			d["metadata"] = maybe(map[string]any{"type": []string{"team", "member_personal"}[rng.IntN(2)], "slug": "s" + next()})
			d["stripe_customer_id"] = maybe(fmt.Sprintf("cus_%s%d", ns, rng.IntN(3)))
			evs = append(evs, workos(typ, d))
		case 7:
			u, o := users[rng.IntN(len(users))], orgs[rng.IntN(len(orgs))]
			typ := []string{"organization_membership.created", "organization_membership.updated", "organization_membership.deleted"}[rng.IntN(3)]
			// Two memberships a pair: a newer one supersedes the other.
			id := fmt.Sprintf("om_%s%s_%d", u, o, rng.IntN(2))
			evs = append(evs, workos(typ, membershipData(id, u, o, []string{"admin", "member"}[rng.IntN(2)], "active", rng.IntN(4))))
		case 9, 10:
			typ := []string{"dsync.user.created", "dsync.user.updated", "dsync.user.updated", "dsync.user.deleted"}[rng.IntN(4)]
			evs = append(evs, workos(typ, dirUser()))
		case 11:
			typ := []string{"dsync.group.created", "dsync.group.updated", "dsync.group.updated", "dsync.group.deleted"}[rng.IntN(4)]
			evs = append(evs, workos(typ, dirGroup()))
		case 12:
			switch k := rng.IntN(len(dirs)); rng.IntN(5) {
			case 0:
				evs = append(evs, workos("dsync.activated", dsyncDirectoryData(dirs[k], orgs[k%len(orgs)], "active", rng.IntN(4))))
			case 1:
				evs = append(evs, workos("dsync.deleted", dsyncDirectoryData(dirs[k], orgs[k%len(orgs)], "deleting", rng.IntN(4))))
			default:
				typ := []string{"dsync.group.user_added", "dsync.group.user_added", "dsync.group.user_removed"}[rng.IntN(3)]
				g := dirGroup()
				evs = append(evs, workos(typ, dsyncMemberData(g["directory_id"].(string), dirUser(), g)))
			}
		case 8:
			if len(evs) > 0 {
				evs = append(evs, evs[rng.IntN(len(evs))]) // a duplicate past JetStream's window
			}
		}
	}
	return evs
}

// directoryCases are randomBatch's directory events and duplicates.
var directoryCases = []int{8, 9, 10, 11, 12}

// relink runs every link query over all of a namespace's rows. Links run
// once per batch over the union of the rows the batch touched, not after
// every event: a parent stub that a membership created in the batch is
// linked at the end of the batch, where event by event it waits for its
// own event. What the links converge to is the same.
func relink(t *testing.T, pool *pgxpool.Pool, ns string) {
	t.Helper()
	ctx := context.Background()
	var users, orgs []string
	for i := range 3 {
		users = append(users, fmt.Sprintf("%su%d", ns, i))
		orgs = append(orgs, fmt.Sprintf("%so%d", ns, i))
	}
	q, none := queries.New(), []string{}
	for _, err := range []error{
		q.StripeCustomerLinkUsers(ctx, pool, queries.StripeCustomerLinkUsersParams{WorkosUserIds: users, Emails: none, StripeCustomerIds: none}),
		q.StripeCustomerLinkOrganizations(ctx, pool, queries.StripeCustomerLinkOrganizationsParams{WorkosOrgIds: orgs, StripeCustomerIds: none}),
		q.StripeSubscriptionLinkOrganizations(ctx, pool, queries.StripeSubscriptionLinkOrganizationsParams{WorkosOrgIds: orgs, StripeCustomerIds: none, StripeSubscriptionIds: none}),
		q.StripeConnectAccountLinkUsers(ctx, pool, queries.StripeConnectAccountLinkUsersParams{WorkosUserIds: users, StripeAccountIds: none}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// dump is every synced row of the tables the batches write, without the
// columns that differ between databases by construction, and without the
// versions the link queries keep of what they copied (see relink: inside a
// batch that changes a customer several times, the version a link
// remembers can be a later one), nor the links of deleted rows, which keep
// what they had when the delete came: a stub made earlier in the batch may
// have been linked by then, where event by event it is not yet).
func dump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var out string
	for _, q := range []string{
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' - 'stripe_customer_version' - 'stripe_connect_version'" +
			" - CASE WHEN deleted_at IS NULL THEN '{}'::text[] ELSE ARRAY['stripe_customer_id', 'stripe_connect_account_id', 'connect_details_submitted', 'connect_charges_enabled', 'connect_payouts_enabled', 'connect_onboarding_complete'] END" +
			" ORDER BY workos_user_id) FROM users t",
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' - 'stripe_customer_version' - 'subscription_version'" +
			" - CASE WHEN deleted_at IS NULL THEN '{}'::text[] ELSE ARRAY['stripe_customer_id', 'stripe_subscription_id', 'subscription_tier', 'subscription_status', 'subscription_current_period_end', 'subscription_cancel_at_period_end'] END" +
			" ORDER BY workos_org_id) FROM organizations t",
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' - 'org_id' ORDER BY workos_org_membership_id) FROM user_org_memberships t",
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' ORDER BY stripe_customer_id) FROM stripe_customers t",
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' ORDER BY stripe_subscription_id) FROM stripe_subscriptions t",
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' ORDER BY stripe_account_id) FROM stripe_connect_accounts t",
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' ORDER BY workos_directory_id) FROM directories t",
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' ORDER BY workos_directory_user_id) FROM directory_users t",
		"SELECT jsonb_agg(to_jsonb(t) - 'id' - 'created_at' - 'updated_at' ORDER BY workos_directory_group_id) FROM directory_groups t",
		"SELECT jsonb_agg(to_jsonb(t) - 'created_at' - 'updated_at' ORDER BY workos_directory_group_id, workos_directory_user_id) FROM directory_group_members t",
		"SELECT jsonb_agg(to_jsonb(t) - 'applied_at' ORDER BY source, event_id) FROM webhook_events t",
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

// TestSetBasedEqualsEventByEvent: on random batches the batched path
// (set-based folds, queued statements, stages) leaves the same rows and
// gives every event the same outcome as applying the events one by one.
// No batch falls back to the per-event path: a link-flushing delete whose
// links read (the holders of Connect accounts) sends the queue and reads
// instead of failing the batch over.
func TestSetBasedEqualsEventByEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cases []int
	}{{"every table", nil}, {"directories", directoryCases}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			batched, single := syncdtest.DB(t), syncdtest.DB(t)
			a, ref := applier(t, batched, nil), applier(t, single, nil)
			for seed := range uint64(30) {
				rng := rand.New(rand.NewPCG(seed, 11))
				ns := fmt.Sprintf("s%d_", seed)
				for b := range 3 {
					evs := randomBatch(t, rng, ns, 5+rng.IntN(60), tc.cases)
					applyBoth(t, a, ref, evs, fmt.Sprintf("seed %d batch %d", seed, b))
					relink(t, batched, ns)
					relink(t, single, ns)
					if g, w := dump(t, batched), dump(t, single); g != w {
						t.Fatalf("seed %d batch %d: rows differ (batched, then event by event):\n%s", seed, b, firstDiff(g, w))
					}
				}
			}
		})
	}
}

// applyBoth applies evs the batched way alone on a (the test fails if the
// batch falls back to the per-event path) and event by event on ref, and
// fails the test where their outcomes differ.
func applyBoth(t *testing.T, a, ref *consumers.Applier, evs []consumers.Event, label string) {
	t.Helper()
	ctx := context.Background()
	got, failed, err := a.ApplyBatchedOnly(ctx, evs)
	switch {
	case err != nil:
		t.Fatal(err)
	case failed:
		t.Fatalf("%s: the batched path fell back to the per-event path", label)
	}
	want, err := ref.ApplyEventByEvent(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	sameOutcomes(t, label, evs, got, want)
}

// sameOutcomes fails the test where a batched and an event-by-event
// outcome differ.
func sameOutcomes(t *testing.T, label string, evs []consumers.Event, got, want []consumers.Result) {
	t.Helper()
	for i := range evs {
		if got[i].Outcome != want[i].Outcome || (got[i].Err == nil) != (want[i].Err == nil) {
			t.Fatalf("%s: %s %s: batched %q %v, event by event %q %v",
				label, evs[i].Envelope.Type, evs[i].Envelope.ID, got[i].Outcome, got[i].Err, want[i].Outcome, want[i].Err)
		}
	}
}

// firstDiff shows the first row two dumps disagree on.
func firstDiff(a, b string) string {
	var ra, rb []json.RawMessage
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] == lb[i] {
			continue
		}
		_ = json.Unmarshal([]byte(la[i]), &ra)
		_ = json.Unmarshal([]byte(lb[i]), &rb)
		for j := range min(len(ra), len(rb)) {
			if string(ra[j]) != string(rb[j]) {
				return string(ra[j]) + "\n" + string(rb[j])
			}
		}
		return fmt.Sprintf("%d rows against %d", len(ra), len(rb))
	}
	return "different tables"
}
