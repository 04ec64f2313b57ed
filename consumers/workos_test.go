package consumers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
)

var t0 = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func at(sec int) string { return syncdtest.Millis(t0.Add(time.Duration(sec) * time.Second)) }

func userData(id, email string, sec int) map[string]any {
	return map[string]any{
		"object": "user", "id": id, "email": email, "first_name": "F" + fmt.Sprint(sec), "last_name": "L",
		"email_verified": true, "metadata": map[string]any{"tz": "UTC"},
		"created_at": at(0), "updated_at": at(sec),
	}
}

func orgData(id, name string, sec int) map[string]any {
	return map[string]any{
		"object": "organization", "id": id, "name": name,
		"domains":    []any{map[string]any{"domain": "acme.test"}},
		"metadata":   map[string]any{"type": "team", "slug": "acme"},
		"created_at": at(0), "updated_at": at(sec),
	}
}

func membershipData(id, user, org, role, status string, sec int) map[string]any {
	return map[string]any{
		"object": "organization_membership", "id": id, "user_id": user, "organization_id": org,
		"status": status, "role": map[string]any{"slug": role}, "roles": []any{map[string]any{"slug": role}},
		"created_at": at(0), "updated_at": at(sec),
	}
}

func TestFixturesApplyOverHTTP(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	for _, f := range []string{"workos/user.created.json", "workos/organization.updated.json", "workos/organization_membership.created.json"} {
		b := syncdtest.Fixture(t, f)
		h.PostWorkOS(syncdtest.WithID(b, "event_"+f))
	}
	h.WaitSettled()
	q := queries.New()
	ctx := context.Background()
	u, err := q.UserGetByWorkOSID(ctx, h.Pool, "user_01E4ZCR3C56J083X43JQXF3JK5")
	if err != nil {
		t.Fatal(err)
	}
	if *u.Email != "marcelina.davis@example.com" || *u.FirstName != "Marcelina" || !u.EmailVerified || u.IsStub {
		t.Errorf("user row %+v", u)
	}
	o, err := q.OrganizationGetByWorkOSID(ctx, h.Pool, "org_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if err != nil {
		t.Fatal(err)
	}
	if *o.Name != "Acme Inc." || len(o.Domains) != 1 || o.Domains[0] != "foo-corp.com" || *o.StripeCustomerID != "cus_R9qWAGMQ6nGE7V" {
		t.Errorf("organization row %+v", o)
	}
	m, err := q.MembershipGetByWorkOSID(ctx, h.Pool, "om_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if err != nil {
		t.Fatal(err)
	}
	if *m.Role != "admin" || *m.Status != "active" || m.OrgID != o.ID || m.DeletedAt != nil {
		t.Errorf("membership row %+v", m)
	}
	// The membership's user never had its own event: it is a stub.
	stub, err := q.UserGetByWorkOSID(ctx, h.Pool, "user_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if err != nil || !stub.IsStub {
		t.Errorf("stub user: %+v %v", stub, err)
	}
}

// snapshot is the synced state of the scenario's rows, with the suffix that
// keeps scenarios apart stripped, so runs in different orders compare.
func snapshot(t *testing.T, pool *pgxpool.Pool, suffix string) string {
	t.Helper()
	var out string
	err := pool.QueryRow(context.Background(), `
		SELECT coalesce(json_agg(r ORDER BY r.k), '[]')::text FROM (
			SELECT 'u:' || replace(workos_user_id, $1, '') AS k, replace(coalesce(email,''), $1, '') AS email, first_name, last_name,
			       email_verified, metadata, workos_updated_at, deleted_at IS NOT NULL AS deleted, is_stub
			FROM users WHERE workos_user_id LIKE '%' || $1
			UNION ALL
			SELECT 'o:' || replace(workos_org_id, $1, ''), NULL, name, type, NULL, metadata, workos_updated_at, deleted_at IS NOT NULL, is_stub
			FROM organizations WHERE workos_org_id LIKE '%' || $1
			UNION ALL
			SELECT 'm:' || replace(workos_org_membership_id, $1, ''), replace(workos_user_id || '/' || workos_org_id, $1, ''), role, status,
			       NULL, to_jsonb(roles), workos_updated_at, deleted_at IS NOT NULL, false
			FROM user_org_memberships WHERE workos_org_membership_id LIKE '%' || $1
		) r`, suffix).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type posted struct {
	id, typ string
	data    map[string]any
}

// scenario is a history of one user joining a team organization, a second
// user joining and leaving, and renames — every id suffixed by s.
func scenario(s string) []posted {
	u1, u2, o := "user_1"+s, "user_2"+s, "org_1"+s
	return []posted{
		{"e1" + s, "user.created", userData(u1, "one"+s+"@x.test", 1)},
		{"e2" + s, "user.updated", userData(u1, "one.new"+s+"@x.test", 2)},
		{"e3" + s, "organization.created", orgData(o, "Team", 1)},
		{"e4" + s, "organization.updated", orgData(o, "Team Renamed", 3)},
		{"e5" + s, "organization_membership.created", membershipData("om_1"+s, u1, o, "member", "pending", 1)},
		{"e6" + s, "organization_membership.updated", membershipData("om_1"+s, u1, o, "admin", "active", 4)},
		{"e7" + s, "user.created", userData(u2, "two"+s+"@x.test", 1)},
		{"e8" + s, "organization_membership.created", membershipData("om_2"+s, u2, o, "member", "active", 1)},
		{"e9" + s, "organization_membership.deleted", membershipData("om_2"+s, u2, o, "member", "active", 2)},
	}
}

func TestReorderedAndDuplicatedEventsConverge(t *testing.T) {
	t.Parallel()
	orders := map[string][]int{"inorder": {0, 1, 2, 3, 4, 5, 6, 7, 8}, "reverse": {8, 7, 6, 5, 4, 3, 2, 1, 0}}
	// Children first, updates before creates, deletes before creates.
	orders["childfirst"] = []int{5, 8, 4, 1, 3, 0, 2, 7, 6}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 12 {
		orders[fmt.Sprintf("shuffle%d", i)] = rng.Perm(9)
	}
	bothWays(t, func(t *testing.T, d *direct) {
		for name, order := range orders {
			evs := scenario("_" + name)
			var bodies [][]byte
			for _, i := range order {
				bodies = append(bodies, syncdtest.WorkOSEvent(evs[i].id, evs[i].typ, evs[i].data))
			}
			d.workos(bodies...)
			// Every event again, as providers retry: the ledger settles them.
			expectOutcomes(t, d.workos(bodies...), consumers.Skipped)
		}
		want := snapshot(t, d.Pool, "_inorder")
		if !strings.Contains(want, `"Team Renamed"`) || !strings.Contains(want, `"admin"`) {
			t.Fatalf("in-order state is not the expected one: %s", want)
		}
		for name := range orders {
			if got := snapshot(t, d.Pool, "_"+name); got != want {
				t.Errorf("order %s converged to\n%s\nwant\n%s", name, got, want)
			}
		}
		var ledger int
		if err := d.Pool.QueryRow(context.Background(), "SELECT count(*) FROM webhook_events").Scan(&ledger); err != nil {
			t.Fatal(err)
		}
		if ledger != 9*len(orders) {
			t.Errorf("ledger has %d rows, want %d (one per distinct event)", ledger, 9*len(orders))
		}
	})
}

// A delete is never undone. Late events are decided by version as for a
// live row, so the rows are the same in any arrival order: an update older
// than the delete is stale; one newer than the row's data (a membership
// update from before its user's delete, or an update claiming a time after
// the delete) brings its data, and the row stays deleted.
func TestDeleteIsNotUndoneByLateUpdates(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, d *direct) {
		d.workos(
			syncdtest.WorkOSEvent("e1", "user.created", userData("user_d", "d@x.test", 1)),
			syncdtest.WorkOSEvent("e2", "organization_membership.created", membershipData("om_d", "user_d", "org_d", "member", "active", 1)),
			syncdtest.WorkOSEvent("e3", "user.deleted", userData("user_d", "d@x.test", 5)),
			// Late: an update from before the delete, and one claiming a
			// newer time.
			syncdtest.WorkOSEvent("e4", "user.updated", userData("user_d", "late@x.test", 3)),
			syncdtest.WorkOSEvent("e5", "user.updated", userData("user_d", "later@x.test", 9)),
			syncdtest.WorkOSEvent("e6", "organization_membership.updated", membershipData("om_d", "user_d", "org_d", "admin", "active", 2)),
			// A delete for a user never seen leaves a tombstone a late
			// create honours.
			syncdtest.WorkOSEvent("e7", "user.deleted", userData("user_gone", "g@x.test", 5)),
			syncdtest.WorkOSEvent("e8", "user.created", userData("user_gone", "created@x.test", 1)))
		q := queries.New()
		ctx := context.Background()
		u, err := q.UserGetByWorkOSID(ctx, d.Pool, "user_d")
		if err != nil || u.DeletedAt == nil || str(u.Email) != "later@x.test" {
			t.Errorf("deleted user: deleted_at=%v email=%v (%v); want deleted, with the newest data", u.DeletedAt, str(u.Email), err)
		}
		m, err := q.MembershipGetByWorkOSID(ctx, d.Pool, "om_d")
		if err != nil || m.DeletedAt == nil || str(m.Role) != "admin" {
			t.Errorf("membership of a deleted user: deleted_at=%v role=%v (%v); want deleted, with the newest data", m.DeletedAt, str(m.Role), err)
		}
		g, err := q.UserGetByWorkOSID(ctx, d.Pool, "user_gone")
		if err != nil || g.DeletedAt == nil || str(g.Email) != "g@x.test" {
			t.Errorf("user deleted before its create: deleted_at=%v email=%v (%v); want deleted, with the delete's data", g.DeletedAt, str(g.Email), err)
		}
		for id, want := range map[string]string{"e4": "stale", "e5": "applied", "e6": "applied", "e8": "stale"} {
			if got := outcome(t, d.Pool, id); got != want {
				t.Errorf("late event %s recorded as %q, want %q", id, got, want)
			}
		}
	})
}

func TestAppOwnedOrganizationFieldsAreKept(t *testing.T) {
	t.Parallel()
	d := newDirect(t)
	d.workos(syncdtest.WorkOSEvent("e1", "organization.created", orgData("org_p", "Personal", 1)))
	ctx := context.Background()
	if _, err := d.Pool.Exec(ctx, "UPDATE organizations SET type = 'expert_individual', slug = 'jane' WHERE workos_org_id = 'org_p'"); err != nil {
		t.Fatal(err)
	}
	d.workos(syncdtest.WorkOSEvent("e2", "organization.updated", orgData("org_p", "Personal 2", 2)))
	o, err := queries.New().OrganizationGetByWorkOSID(ctx, d.Pool, "org_p")
	if err != nil || str(o.Type) != "expert_individual" || str(o.Slug) != "jane" || str(o.Name) != "Personal 2" {
		t.Errorf("type=%v slug=%v name=%v (%v)", str(o.Type), str(o.Slug), str(o.Name), err)
	}
}

func TestMembershipSupersededInEitherOrder(t *testing.T) {
	t.Parallel()
	for _, order := range [][]int{{0, 1}, {1, 0}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			t.Parallel()
			bothWays(t, func(t *testing.T, d *direct) {
				evs := [][]byte{
					syncdtest.WorkOSEvent("e1", "organization_membership.created", membershipData("om_old", "user_s", "org_s", "member", "active", 1)),
					syncdtest.WorkOSEvent("e2", "organization_membership.created", membershipData("om_new", "user_s", "org_s", "admin", "active", 5)),
				}
				d.workos(evs[order[0]], evs[order[1]])
				q := queries.New()
				old, errOld := q.MembershipGetByWorkOSID(context.Background(), d.Pool, "om_old")
				cur, errCur := q.MembershipGetByWorkOSID(context.Background(), d.Pool, "om_new")
				if errOld != nil || errCur != nil || old.DeletedAt == nil || cur.DeletedAt != nil {
					t.Errorf("old deleted=%v new deleted=%v (%v, %v), want only the old one superseded", old.DeletedAt != nil, cur.DeletedAt != nil, errOld, errCur)
				}
			})
		})
	}
}

func TestUnknownTypeIsIgnoredNotFailed(t *testing.T) {
	t.Parallel()
	d := newDirect(t)
	expectOutcomes(t, d.workos(syncdtest.WorkOSEvent("e1", "authentication.email_verification_succeeded", map[string]any{"type": "x"})), consumers.Ignored)
	if got := outcome(t, d.Pool, "e1"); got != "ignored" {
		t.Fatalf("ledger outcome %s, want ignored", got)
	}
}

func TestConsumerRestartLosesNothingAndAppliesNothingTwice(t *testing.T) {
	h := syncdtest.NewHarness(t)
	const n = 400
	for i := range n {
		h.PostWorkOS(syncdtest.WorkOSEvent(fmt.Sprintf("e%d", i), "user.created", userData(fmt.Sprintf("user_%d", i), fmt.Sprintf("u%d@x.test", i), 1)))
	}
	count := func() int {
		var c int
		_ = h.Pool.QueryRow(context.Background(), "SELECT count(*) FROM webhook_events").Scan(&c)
		return c
	}
	h.ConsumerConfig.BatchSize = 1
	h.StartConsumer()
	syncdtest.Eventually(t, 30*time.Second, "some events applied", func() bool { return count() > 0 })
	h.StopConsumer()
	if c := count(); c >= n {
		t.Fatalf("consumer finished all %d events before the stop; the test proves nothing", c)
	}
	h.ConsumerConfig.BatchSize = 64
	h.StartConsumer()
	h.WaitSettled()
	var users, applied int
	ctx := context.Background()
	_ = h.Pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&users)
	_ = h.Pool.QueryRow(ctx, "SELECT count(*) FROM webhook_events WHERE outcome = 'applied'").Scan(&applied)
	if users != n || applied != n {
		t.Fatalf("users=%d applied=%d, want %d each", users, applied, n)
	}
}

// TestLedgerSkipsEventsJetStreamDidNotDedupe covers a duplicate outside
// JetStream's duplicate window (a provider retry days later): the ledger
// makes it a no-op.
func TestLedgerSkipsEventsJetStreamDidNotDedupe(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	body := syncdtest.WorkOSEvent("e1", "user.created", userData("user_l", "l@x.test", 1))
	h.PostWorkOS(body)
	h.WaitSettled()
	ctx := context.Background()
	// The app edits the row; a re-applied event would overwrite the edit.
	if _, err := h.Pool.Exec(ctx, "UPDATE users SET first_name = 'edited' WHERE workos_user_id = 'user_l'"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := h.NATS.JS.Publish(ctx, "webhooks.workos.user.created", body, jetstream.WithMsgID(fmt.Sprintf("other-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	h.WaitSettled()
	u, _ := queries.New().UserGetByWorkOSID(ctx, h.Pool, "user_l")
	if *u.FirstName != "edited" {
		t.Fatalf("a duplicate event was applied again: first_name=%q", *u.FirstName)
	}
}
