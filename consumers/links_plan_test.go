package consumers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// linkTables are what the link queries read.
var linkTables = []string{"users", "organizations", "user_org_memberships", "stripe_customers", "stripe_subscriptions", "stripe_connect_accounts", "meetings"}

// The links are index probes whatever the planner knows. A database that
// has never been analyzed (a new one, or autovacuum off or behind a burst)
// takes `deleted_at IS NULL` to keep 0.5 % of a table: the meeting and
// customer links were then planned as a scan of a whole table for each
// user they resolve, 50-70 ms a batch in the bench's mix.
func TestLinksProbeWithoutStatistics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One connection, so that the statistics it flushes are the batch's.
	pool := syncdtest.OneConn(t)
	for _, tbl := range linkTables {
		if _, err := pool.Exec(ctx, fmt.Sprintf("ALTER TABLE %s SET (autovacuum_enabled = false)", tbl)); err != nil {
			t.Fatal(err)
		}
	}
	a := applier(t, pool, nil)
	const n = 1500
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Unix()
	var evs []consumers.Event
	for i := range n {
		user, org := fmt.Sprintf("user_%04d", i), fmt.Sprintf("org_%04d", i)
		evs = append(evs,
			decoded(t, "workos", syncdtest.WorkOSEvent(fmt.Sprintf("event_u%04d", i), "user.created", map[string]any{
				"object": "user", "id": user, "email": fmt.Sprintf("u%04d@example.com", i),
				"created_at": "2026-01-15T12:00:00.000Z", "updated_at": "2026-01-15T12:00:00.000Z"})),
			decoded(t, "workos", syncdtest.WorkOSEvent(fmt.Sprintf("event_o%04d", i), "organization.created", map[string]any{
				"object": "organization", "id": org, "name": org,
				"created_at": "2026-01-15T12:00:00.000Z", "updated_at": "2026-01-15T12:00:00.000Z"})),
			decoded(t, "workos", syncdtest.WorkOSEvent(fmt.Sprintf("event_m%04d", i), "organization_membership.created", map[string]any{
				"object": "organization_membership", "id": fmt.Sprintf("om_%04d", i), "user_id": user, "organization_id": org,
				"status": "active", "role": map[string]any{"slug": "admin"},
				"created_at": "2026-01-15T12:00:00.000Z", "updated_at": "2026-01-15T12:00:00.000Z"})),
			// Half the customers name their user; the rest carry no
			// metadata, the rows `workos_org_id IS NULL` finds.
			decoded(t, "stripe", syncdtest.StripeEvent(fmt.Sprintf("evt_c%04d", i), "customer.created", created, customer(i, i%2 == 0))))
	}
	for i := 0; i < len(evs); i += 500 {
		applyAll(t, a, evs[i:min(i+500, len(evs))]...)
	}
	// seq_scan per table, and idx_tup_fetch (rows fetched through an index) as "read:"+table.
	scans := func() map[string]int64 {
		t.Helper()
		if _, err := pool.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		rows, err := pool.Query(ctx, "SELECT relname, seq_scan, coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = ANY($1)", linkTables)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for rows.Next() {
			var name string
			var n, read int64
			if err := rows.Scan(&name, &n, &read); err != nil {
				t.Fatal(err)
			}
			out[name], out["read:"+name] = n, read
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := scans()

	// A batch that sets every user link going: customers updated, with
	// and without metadata, and users changed.
	evs = nil
	for i := range 60 {
		evs = append(evs,
			decoded(t, "stripe", syncdtest.StripeEvent(fmt.Sprintf("evt_c%04d_2", i), "customer.updated", created+60, customer(i, i%3 != 0))),
			decoded(t, "workos", syncdtest.WorkOSEvent(fmt.Sprintf("event_u%04d_2", i), "user.updated", map[string]any{
				"object": "user", "id": fmt.Sprintf("user_%04d", i), "email": fmt.Sprintf("u%04d@example.com", i), "first_name": "Changed",
				"created_at": "2026-01-15T12:00:00.000Z", "updated_at": "2026-01-16T12:00:00.000Z"})))
	}
	applyAll(t, a, evs...)
	after := scans()
	for _, tbl := range linkTables {
		if d := after[tbl] - before[tbl]; d != 0 {
			t.Errorf("%s: %d sequential scans applying one batch of %d events over %d rows", tbl, d, len(evs), n)
		}
	}
	// An index can be read whole too: the customers without metadata, as
	// the index of workos_org_id IS NULL, for every user resolved.
	if d := after["read:stripe_customers"] - before["read:stripe_customers"]; d > int64(10*len(evs)) {
		t.Errorf("stripe_customers: %d rows fetched through an index applying one batch of %d events over %d rows", d, len(evs), n)
	}
}

// customer is a Stripe customer of user i, its metadata naming the user or
// empty.
func customer(i int, named bool) map[string]any {
	meta := map[string]any{}
	if named {
		meta["workos_user_id"] = fmt.Sprintf("user_%04d", i)
	}
	return map[string]any{"object": "customer", "id": fmt.Sprintf("cus_%04d", i), "email": fmt.Sprintf("u%04d@example.com", i),
		"name": "Customer", "metadata": meta, "created": 1767000000 + i}
}
