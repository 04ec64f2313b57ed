package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
)

// auditRow is an audit_logs row as the tests compare it.
type auditRow struct {
	Event, Type, Action, Resource, ID, Org string
	Old, New                               map[string]any
	Meta                                   map[string]any
}

func auditRows(t *testing.T, pool *pgxpool.Pool) []auditRow {
	t.Helper()
	rows, err := queries.New().AuditLogList(context.Background(), pool, queries.AuditLogListParams{MaxRows: 10000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]auditRow, 0, len(rows))
	// Oldest first, as applied.
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		a := auditRow{Action: r.Action, Resource: r.ResourceType, ID: r.ResourceID}
		if r.Actor != "system:syncd" {
			t.Errorf("actor %q", r.Actor)
		}
		if r.EventID != nil {
			a.Event, a.Type = *r.EventID, *r.EventType
		}
		if r.WorkosOrgID != nil {
			a.Org = *r.WorkosOrgID
		}
		for _, m := range []struct {
			raw json.RawMessage
			to  *map[string]any
		}{{r.OldValues, &a.Old}, {r.NewValues, &a.New}, {r.Metadata, &a.Meta}} {
			if m.raw != nil {
				if err := json.Unmarshal(m.raw, m.to); err != nil {
					t.Fatal(err)
				}
			}
		}
		out = append(out, a)
	}
	return out
}

func auditApplier(t *testing.T, pool *pgxpool.Pool, cfg consumers.ApplierConfig) *consumers.Applier {
	t.Helper()
	a, err := consumers.NewApplier(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func workosEv(t *testing.T, id, typ string, data map[string]any) consumers.Event {
	return decoded(t, "workos", dsyncEvent(id, typ, 0, data))
}

// TestAuditEveryAppliedChange applies a user's, an organization's and a
// membership's life, a Stripe customer that links to the user and a
// booking, batch by batch, and holds each change to exactly one audit row
// with the values that changed.
func TestAuditEveryAppliedChange(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := auditApplier(t, pool, consumers.ApplierConfig{})

	var want []auditRow
	expect := func(rows ...auditRow) {
		t.Helper()
		want = append(want, rows...)
		got := auditRows(t, pool)
		if len(got) != len(want) {
			t.Fatalf("%d audit rows, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
		}
		for i := range want {
			w, g := want[i], got[i]
			if g.Event != w.Event || g.Type != w.Type || g.Action != w.Action || g.Resource != w.Resource || g.ID != w.ID || g.Org != w.Org {
				t.Errorf("audit row %d:\n got %+v\nwant %+v", i, g, w)
				continue
			}
			for k, v := range w.Old {
				if fmt.Sprint(g.Old[k]) != fmt.Sprint(v) {
					t.Errorf("audit row %d old %s = %v, want %v", i, k, g.Old[k], v)
				}
			}
			for k, v := range w.New {
				if fmt.Sprint(g.New[k]) != fmt.Sprint(v) {
					t.Errorf("audit row %d new %s = %v, want %v", i, k, g.New[k], v)
				}
			}
			if w.Old != nil && len(g.Old) != len(w.Old) {
				t.Errorf("audit row %d old values %v, want only %v", i, g.Old, w.Old)
			}
			if w.New != nil && w.Old != nil && len(g.New) != len(w.New) {
				t.Errorf("audit row %d new values %v, want only %v", i, g.New, w.New)
			}
			if g.Meta["mode"] != "live" && g.Meta["via"] == nil {
				t.Errorf("audit row %d metadata %v", i, g.Meta)
			}
		}
	}

	// One batch, set-based: a user and an organization are created.
	applyAll(t, a,
		workosEv(t, "ev_u1", "user.created", userData("user_au", "a@x.test", 1)),
		workosEv(t, "ev_o1", "organization.created", orgData("org_au", "Acme", 1)))
	expect(
		auditRow{Event: "ev_u1", Type: "user.created", Action: "created", Resource: "users", ID: "user_au",
			New: map[string]any{"email": "a@x.test", "first_name": "F1", "workos_user_id": "user_au"}},
		auditRow{Event: "ev_o1", Type: "organization.created", Action: "created", Resource: "organizations", ID: "org_au", Org: "org_au",
			New: map[string]any{"name": "Acme", "workos_org_id": "org_au"}})

	// A newer user event changes the email and first name only; an older
	// one after it is stale and writes nothing.
	applyAll(t, a, workosEv(t, "ev_u2", "user.updated", userData("user_au", "b@x.test", 5)))
	res := applyAll(t, a, workosEv(t, "ev_u3", "user.updated", userData("user_au", "c@x.test", 3)))
	if res[0].Outcome != consumers.Stale {
		t.Fatalf("older update: %s", res[0].Outcome)
	}
	expect(auditRow{Event: "ev_u2", Type: "user.updated", Action: "updated", Resource: "users", ID: "user_au",
		Old: map[string]any{"email": "a@x.test", "first_name": "F1", "workos_updated_at": "2026-01-15T12:00:01+00:00"},
		New: map[string]any{"email": "b@x.test", "first_name": "F5", "workos_updated_at": "2026-01-15T12:00:05+00:00"}})

	// A membership (pipelined) in the organization.
	applyAll(t, a, workosEv(t, "ev_m1", "organization_membership.created", membershipData("om_au", "user_au", "org_au", "admin", "active", 2)))
	expect(auditRow{Event: "ev_m1", Type: "organization_membership.created", Action: "created", Resource: "user_org_memberships", ID: "om_au", Org: "org_au",
		New: map[string]any{"role": "admin", "status": "active", "workos_user_id": "user_au"}})

	// A Stripe customer whose metadata names the user links to it: the
	// user's row changes through the link, attributed to the customer.
	applyAll(t, a, decoded(t, "stripe", syncdtest.StripeEvent("evt_c1", "customer.created", s0, map[string]any{
		"id": "cus_au", "object": "customer", "email": "b@x.test", "metadata": map[string]any{"workos_user_id": "user_au"},
	})))
	expect(auditRow{Event: "evt_c1", Type: "customer.created", Action: "linked", Resource: "users", ID: "user_au",
		Old: map[string]any{"stripe_customer_id": nil}, New: map[string]any{"stripe_customer_id": "cus_au"}})

	// A booking (run directly) creates its meeting.
	applyAll(t, a, decoded(t, "stripe", stripeEventAt("evt_cs1", "checkout.session.completed", s0, "2023-10-16",
		sessionObject("cs_au", "pi_au", "paid"))))
	got := auditRows(t, pool)
	last := got[len(got)-1]
	if last.Event != "evt_cs1" || last.Resource != "meetings" || last.Action != "created" ||
		last.New["stripe_session_id"] != "cs_au" || last.New["expert_workos_user_id"] != "user_expert" {
		t.Fatalf("meeting audit row %+v", last)
	}
	want = got

	// The membership is deleted: a tombstone is a delete.
	applyAll(t, a, workosEv(t, "ev_m2", "organization_membership.deleted", membershipData("om_au", "user_au", "org_au", "admin", "active", 9)))
	got = auditRows(t, pool)
	last = got[len(got)-1]
	if len(got) != len(want)+1 || last.Event != "ev_m2" || last.Action != "deleted" || last.Resource != "user_org_memberships" || last.Old["deleted_at"] != nil || last.New["deleted_at"] == nil {
		t.Fatalf("after the delete: %d rows (want %d), last %+v\nall %+v", len(got), len(want)+1, last, got)
	}
	want = got

	// A replay of every event applied so far is skipped: no audit row.
	replayed := []consumers.Event{
		workosEv(t, "ev_u1", "user.created", userData("user_au", "a@x.test", 1)),
		workosEv(t, "ev_u2", "user.updated", userData("user_au", "b@x.test", 5)),
		workosEv(t, "ev_m1", "organization_membership.created", membershipData("om_au", "user_au", "org_au", "admin", "active", 2)),
	}
	for i := range replayed {
		replayed[i].Replay = true
	}
	for _, r := range applyAll(t, a, replayed...) {
		if r.Outcome != consumers.Skipped {
			t.Fatalf("replayed event: %s", r.Outcome)
		}
	}
	expect()
}

// TestAuditMetadata: the delivery attempt and the replay mode reach the
// audit row; several events of one user in one batch are one change, the
// newest event's, from the row as it was before the batch.
func TestAuditMetadata(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := auditApplier(t, pool, consumers.ApplierConfig{})
	applyAll(t, a, workosEv(t, "ev_f0", "user.created", userData("user_f", "a@x.test", 1)))

	e1 := workosEv(t, "ev_f1", "user.updated", userData("user_f", "b@x.test", 2))
	e2 := workosEv(t, "ev_f2", "user.updated", userData("user_f", "c@x.test", 4))
	e3 := workosEv(t, "ev_f3", "user.updated", userData("user_f", "d@x.test", 3)) // stale behind e2
	for _, e := range []*consumers.Event{&e1, &e2, &e3} {
		e.Delivery, e.Replay = 3, true
	}
	res := applyAll(t, a, e1, e2, e3)
	if res[2].Outcome != consumers.Stale {
		t.Fatalf("outcomes %+v", res)
	}
	got := auditRows(t, pool)
	if len(got) != 2 {
		t.Fatalf("audit rows %+v, want the create and one update", got)
	}
	u := got[1]
	if u.Event != "ev_f2" || u.Old["email"] != "a@x.test" || u.New["email"] != "c@x.test" {
		t.Errorf("folded update %+v", u)
	}
	if u.Meta["mode"] != "replay" || fmt.Sprint(u.Meta["delivery"]) != "3" {
		t.Errorf("metadata %v", u.Meta)
	}
}

// TestAuditRolledBackBatchLeavesNone: a batch that fails transiently after
// its first events wrote rows leaves neither the rows nor their audit; an
// event that fails alone leaves no audit row of its own while its
// batch-mates keep theirs.
func TestAuditRolledBackBatchLeavesNone(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	routes := consumers.Routes()
	q := queries.New()
	// Writes a user, then fails: transiently or for good.
	failing := func(err error) consumers.Handler {
		return func(ctx context.Context, tx consumers.Tx, ev consumers.Event) (consumers.Outcome, error) {
			id := "user_" + ev.Envelope.ID
			if werr := q.UserEnsureStub(ctx, tx.DB, id); werr != nil {
				return "", werr
			}
			return "", err
		}
	}
	routes = append(routes,
		consumers.Route{Source: "workos", Type: "test.transient", Handle: failing(fmt.Errorf("test: %w", context.DeadlineExceeded)), Reads: true},
		consumers.Route{Source: "workos", Type: "test.permanent", Handle: failing(fmt.Errorf("test: %w", consumers.ErrInvariant)), Reads: true})
	a := auditApplier(t, pool, consumers.ApplierConfig{Routes: routes})

	_, err := a.Apply(context.Background(), []consumers.Event{
		workosEv(t, "ev_r1", "user.created", userData("user_r1", "a@x.test", 1)),
		workosEv(t, "ev_r2", "organization_membership.created", membershipData("om_r", "user_r1", "org_r", "admin", "active", 1)),
		workosEv(t, "ev_r3", "test.transient", map[string]any{"id": "x"}),
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply: %v, want the transient failure", err)
	}
	var users, audit int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM audit_logs)`).Scan(&users, &audit); err != nil {
		t.Fatal(err)
	}
	if users != 0 || audit != 0 {
		t.Fatalf("after a rolled-back batch: %d users, %d audit rows", users, audit)
	}

	res, err := a.Apply(context.Background(), []consumers.Event{
		workosEv(t, "ev_p1", "user.created", userData("user_p1", "a@x.test", 1)),
		workosEv(t, "ev_p2", "test.permanent", map[string]any{"id": "x"}),
	})
	if err != nil || res[1].Err == nil || res[0].Outcome != consumers.Applied {
		t.Fatalf("Apply: %v %+v", err, res)
	}
	got := auditRows(t, pool)
	if len(got) != 1 || got[0].Event != "ev_p1" || got[0].ID != "user_p1" {
		t.Fatalf("audit rows %+v, want only ev_p1's", got)
	}
}

// TestAuditOff: SYNCD_AUDIT=off applies the same changes and writes no
// audit row.
func TestAuditOff(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	a := auditApplier(t, pool, consumers.ApplierConfig{AuditOff: true})
	applyAll(t, a,
		workosEv(t, "ev_x1", "user.created", userData("user_x", "a@x.test", 1)),
		workosEv(t, "ev_x2", "organization.created", orgData("org_x", "Acme", 1)),
		workosEv(t, "ev_x3", "organization_membership.created", membershipData("om_x", "user_x", "org_x", "admin", "active", 1)))
	applyAll(t, a, decoded(t, "stripe", stripeEventAt("evt_x4", "checkout.session.completed", s0, "2023-10-16", sessionObject("cs_x", "pi_x", "paid"))))
	var users, meetings, audit int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM meetings), (SELECT count(*) FROM audit_logs)`).Scan(&users, &meetings, &audit); err != nil {
		t.Fatal(err)
	}
	if users != 1 || meetings != 1 || audit != 0 {
		t.Fatalf("audit off: %d users, %d meetings, %d audit rows", users, meetings, audit)
	}
}
