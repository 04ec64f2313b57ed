package consumers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// Membership and directory events whose bodies carry what Postgres cannot
// store, or odd but storable values, among good ones in one batch: each
// hostile event is applied or fails alone and permanently (a dead letter,
// bounded), the good ones are applied, and the batch never fails as a
// whole (a transient error would retry it forever).
func TestHostileBodiesInSetBasedBatches(t *testing.T) {
	t.Parallel()
	a := applier(t, syncdtest.DB(t), nil)
	long := strings.Repeat("x", 10<<10)
	var evs []consumers.Event
	var hostile []bool
	add := func(bad bool, typ, body string) {
		evs = append(evs, decoded(t, "workos", []byte(body)))
		hostile = append(hostile, bad)
	}
	ev := func(id, typ, data string) string {
		return `{"object":"event","id":"` + id + `","event":"` + typ + `","created_at":"2026-01-15T12:00:00.000Z","data":` + data + `}`
	}
	member := func(id, user, org, updated string) string {
		return `{"object":"organization_membership","id":` + id + `,"user_id":` + user + `,"organization_id":` + org +
			`,"status":"active","role":{"slug":"member"},"created_at":"2026-01-15T12:00:00.000Z","updated_at":` + updated + `}`
	}
	dirUser := func(id, dir, updated string) string {
		return `{"object":"directory_user","id":` + id + `,"directory_id":` + dir + `,"organization_id":"org_h","state":"active","emails":[],"created_at":"2026-01-15T12:00:00.000Z","updated_at":` + updated + `}`
	}
	now := `"2026-01-15T12:00:01.000Z"`
	for i, c := range []struct {
		bad       bool
		typ, data string
	}{
		{false, "organization_membership.created", member(`"om_good"`, `"user_good"`, `"org_good"`, now)},
		{true, "organization_membership.created", member(`"om_nul"`, `"user_nul\u0000"`, `"org_good"`, now)},
		{true, "organization_membership.updated", member(`"om_type"`, `5`, `"org_good"`, now)},
		{true, "organization_membership.created", member(`"om_long"`, `"user_long"`, `"org_`+long+`"`, now)},
		{true, "organization_membership.created", member(`"om_orgnul"`, `"user_orgnul"`, `"org_\u0000"`, now)},
		{true, "organization.created", `{"object":"organization","id":"org_nul\u0000","name":"N","created_at":"2026-01-15T12:00:00.000Z","updated_at":` + now + `}`},
		{true, "organization_membership.created", member(`"om_future"`, `"user_future"`, `"org_good"`, `"2999-01-01T00:00:00.000Z"`)},
		{true, "organization_membership.created", member(`null`, `"user_null"`, `"org_good"`, now)},
		{false, "dsync.user.updated", dirUser(`"directory_user_good"`, `"directory_good"`, now)},
		{true, "dsync.user.updated", dirUser(`"directory_user_nul"`, `"directory_\u0000"`, now)},
		{true, "dsync.user.created", dirUser(`"directory_user_type"`, `{"id":1}`, now)},
		{true, "dsync.user.created", dirUser(`"directory_user_`+long+`"`, `"directory_good"`, `"1970-01-02T00:00:00.000Z"`)},
		{false, "organization_membership.updated", member(`"om_good2"`, `"user_good2"`, `"org_good"`, now)},
	} {
		add(c.bad, c.typ, ev("event_h"+string(rune('a'+i)), c.typ, c.data))
	}
	res, err := a.Apply(context.Background(), evs)
	if err != nil {
		t.Fatalf("the batch failed as a whole: %v", err)
	}
	for i, r := range res {
		switch {
		case !hostile[i] && (r.Err != nil || r.Outcome != consumers.Applied):
			t.Errorf("good %s: %q %v", evs[i].Envelope.Type, r.Outcome, r.Err)
		case hostile[i] && r.Err == nil && r.Outcome == "":
			t.Errorf("hostile %d %s: no outcome and no error", i, evs[i].Envelope.Type)
		case hostile[i] && r.Err != nil && consumers.Classify(r.Err) == consumers.Transient:
			t.Errorf("hostile %d %s failed transiently (retried forever): %v", i, evs[i].Envelope.Type, r.Err)
		}
		t.Logf("%d %s: %q %v", i, evs[i].Envelope.Type, r.Outcome, r.Err)
	}
}

// Stripe customers whose metadata (read by metaString, set-based) carries
// what Postgres cannot store or what is not a string, among good ones in
// one batch: each is applied or fails alone and permanently, the good ones
// are applied, and the batch never fails as a whole.
func TestHostileStripeMetadataInSetBasedBatches(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := applier(t, pool, nil)
	long := strings.Repeat("u", 10<<10)
	cases := []struct {
		bad  bool
		meta any
	}{
		{false, map[string]any{"workos_user_id": "user_good"}},
		{true, map[string]any{"workos_user_id": "user_\x00nul"}},
		{true, map[string]any{"workosUserId": "user_" + long}},
		{true, map[string]any{"workos_user_id": 5, "workos_org_id": map[string]any{"id": "org_x"}}},
		{true, []any{"workos_user_id", "user_array"}},
		{true, "workos_user_id"},
		{true, map[string]any{"workos_user_id\x00": "user_keynul", "workos_org_id": "org_\x00"}},
		{true, map[string]any{"workos_user_id": "  \t "}},
		{false, map[string]any{"workosUserId": " user_good2 "}},
	}
	var evs []consumers.Event
	for i, c := range cases {
		obj := map[string]any{"id": fmt.Sprintf("cus_h%d", i), "object": "customer", "email": fmt.Sprintf("h%d@example.com", i), "metadata": c.meta}
		evs = append(evs, decoded(t, "stripe", syncdtest.StripeEvent(fmt.Sprintf("evt_h%d", i), "customer.updated", s0, obj)))
	}
	res, err := a.Apply(context.Background(), evs)
	if err != nil {
		t.Fatalf("the batch failed as a whole: %v", err)
	}
	for i, r := range res {
		switch {
		case !cases[i].bad && (r.Err != nil || r.Outcome != consumers.Applied):
			t.Errorf("good %d: %q %v", i, r.Outcome, r.Err)
		case r.Err == nil && r.Outcome == "":
			t.Errorf("hostile %d: no outcome and no error", i)
		case r.Err != nil && consumers.Classify(r.Err) == consumers.Transient:
			t.Errorf("hostile %d failed transiently (retried forever): %v", i, r.Err)
		}
	}
	rows, _ := pool.Query(context.Background(), "SELECT stripe_customer_id || '=' || COALESCE(workos_user_id, '') FROM stripe_customers ORDER BY 1")
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cus_h0=user_good", "cus_h8=user_good2"} {
		if !slices.Contains(got, want) {
			t.Errorf("want row %s in %q", want, got)
		}
	}
}
