package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// bookingEvent is a checkout.session.completed of a booking of expert by
// the guest with email guest.
func bookingEvent(t *testing.T, id, cs, expert, guest string) consumers.Event {
	t.Helper()
	meeting, _ := json.Marshal(map[string]any{
		"id": "5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11", "expert": expert, "guest": guest, "guestName": "G",
		"start": "2026-12-01T10:00:00Z", "dur": 30,
	})
	o := sessionObject(cs, "pi_"+cs, "paid")
	o["metadata"] = map[string]any{"meeting": string(meeting)}
	o["customer_details"] = map[string]any{"email": guest}
	return decoded(t, "stripe", stripeEventAt(id, "checkout.session.completed", s0, "2023-10-16", o))
}

// rlsFixture: users A and B, each in their own organization (A an admin
// of org_A, B a plain member of org_B), A's pending invitation to org_P, and
// meetings: A's as the expert with B as the guest, B's with A as the guest,
// and one between B and a stranger.
func rlsFixture(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	a := auditApplier(t, pool, consumers.ApplierConfig{})
	applyAll(t, a,
		workosEv(t, "ev_ua", "user.created", userData("user_A", "a@rls.test", 1)),
		workosEv(t, "ev_ub", "user.created", userData("user_B", "b@rls.test", 1)),
		workosEv(t, "ev_oa", "organization.created", orgData("org_A", "A's", 1)),
		workosEv(t, "ev_ob", "organization.created", orgData("org_B", "B's", 1)),
		workosEv(t, "ev_op", "organization.created", orgData("org_P", "Pending", 1)))
	applyAll(t, a,
		workosEv(t, "ev_ma", "organization_membership.created", membershipData("om_A", "user_A", "org_A", "admin", "active", 1)),
		workosEv(t, "ev_mb", "organization_membership.created", membershipData("om_B", "user_B", "org_B", "member", "active", 1)),
		workosEv(t, "ev_mp", "organization_membership.created", membershipData("om_P", "user_A", "org_P", "admin", "pending", 1)))
	applyAll(t, a, bookingEvent(t, "evt_b1", "cs_ab", "user_A", "b@rls.test"))
	applyAll(t, a, bookingEvent(t, "evt_b2", "cs_ba", "user_B", "a@rls.test"))
	applyAll(t, a, bookingEvent(t, "evt_b3", "cs_bx", "user_B", "stranger@rls.test"))
}

// asUser runs fn in a transaction as the Data API runs a signed-in user's
// query: role authenticated, the JWT's claims in request.jwt.claims.
func asUser(t *testing.T, pool *pgxpool.Pool, sub string, fn func(tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	claims, _ := json.Marshal(map[string]any{"sub": sub, "role": "authenticated"})
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE authenticated"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('request.jwt.claims', $1, true)", string(claims)); err != nil {
		t.Fatal(err)
	}
	fn(tx)
}

func strs(t *testing.T, tx pgx.Tx, sql string) []string {
	t.Helper()
	rows, err := tx.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	slices.Sort(out)
	return out
}

func execRows(t *testing.T, tx pgx.Tx, sql string) int64 {
	t.Helper()
	tag, err := tx.Exec(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return tag.RowsAffected()
}

func TestRowSecurityPolicies(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	rlsFixture(t, pool)

	asUser(t, pool, "user_A", func(tx pgx.Tx) {
		if got := strs(t, tx, "SELECT workos_org_id FROM organizations"); !slices.Equal(got, []string{"org_A"}) {
			t.Errorf("A sees organizations %v, want [org_A] (not B's, not the pending one)", got)
		}
		if got := strs(t, tx, "SELECT workos_org_membership_id FROM user_org_memberships"); !slices.Equal(got, []string{"om_A", "om_P"}) {
			t.Errorf("A sees memberships %v", got)
		}
		if got := strs(t, tx, "SELECT workos_user_id FROM users"); !slices.Equal(got, []string{"user_A"}) {
			t.Errorf("A sees users %v", got)
		}
		if got := strs(t, tx, "SELECT stripe_session_id FROM meetings"); !slices.Equal(got, []string{"cs_ab", "cs_ba"}) {
			t.Errorf("A sees meetings %v, want the one as expert and the one as guest", got)
		}
		// Audit rows of A's organization (A is its admin), nothing else.
		if got := strs(t, tx, "SELECT DISTINCT coalesce(workos_org_id, '') FROM audit_logs"); !slices.Equal(got, []string{"org_A"}) {
			t.Errorf("A sees audit rows of %v", got)
		}
		if n := execRows(t, tx, "UPDATE organizations SET type = 'team' WHERE workos_org_id = 'org_B'"); n != 0 {
			t.Errorf("A updated B's organization (%d rows)", n)
		}
		if n := execRows(t, tx, "UPDATE organizations SET type = 'team' WHERE workos_org_id = 'org_A'"); n != 1 {
			t.Errorf("A, its admin, could not update its organization (%d rows)", n)
		}
		if n := execRows(t, tx, "UPDATE meetings SET notes = 'mine' WHERE stripe_session_id IN ('cs_ab', 'cs_ba', 'cs_bx')"); n != 1 {
			t.Errorf("A updated %d meetings, want only the one A is the expert of", n)
		}
		if n := execRows(t, tx, "DELETE FROM meetings WHERE stripe_session_id = 'cs_ba'"); n != 0 {
			t.Errorf("A, the guest, deleted B's meeting")
		}
	})
	asUser(t, pool, "user_B", func(tx pgx.Tx) {
		if got := strs(t, tx, "SELECT workos_org_id FROM organizations"); !slices.Equal(got, []string{"org_B"}) {
			t.Errorf("B sees organizations %v", got)
		}
		if got := strs(t, tx, "SELECT stripe_session_id FROM meetings"); !slices.Equal(got, []string{"cs_ab", "cs_ba", "cs_bx"}) {
			t.Errorf("B sees meetings %v", got)
		}
		if n := execRows(t, tx, "UPDATE organizations SET type = 'team' WHERE workos_org_id = 'org_B'"); n != 0 {
			t.Errorf("B, a plain member, updated its organization")
		}
		if got := strs(t, tx, "SELECT id::text FROM audit_logs"); len(got) != 0 {
			t.Errorf("B, not an admin, sees %d audit rows", len(got))
		}
	})
	// No claims (an anonymous request): nothing.
	asUser(t, pool, "", func(tx pgx.Tx) {
		if got := strs(t, tx, "SELECT workos_org_id FROM organizations UNION ALL SELECT workos_user_id FROM users UNION ALL SELECT id::text FROM meetings"); len(got) != 0 {
			t.Errorf("no user sees %v", got)
		}
	})
	// The tables syncd keeps for itself are not the Data API's.
	asUser(t, pool, "user_A", func(tx pgx.Tx) {
		if _, err := tx.Exec(context.Background(), "SELECT 1 FROM webhook_events"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("authenticated reads the ledger: %v", err)
		}
	})
}

// dbRole creates a login role for the test, with the privileges syncd needs
// on the test database, and drops it afterwards. Roles are the cluster's:
// the name is unique per test.
func dbRole(t *testing.T, pool *pgxpool.Pool, attrs string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("syncd_t_role_%d", time.Now().UnixNano())
	for _, sql := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN %s", name, attrs),
		fmt.Sprintf("GRANT ALL ON ALL TABLES IN SCHEMA public TO %s", name),
		fmt.Sprintf("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %s", name),
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	u, err := url.Parse(pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(name)
	rp, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rp.Close()
		_, _ = pool.Exec(context.Background(), "DROP OWNED BY "+name)
		_, _ = pool.Exec(context.Background(), "DROP ROLE "+name)
	})
	return rp
}

// TestCheckWriterRefusesFilteredRole: a role that is neither the tables'
// owner nor BYPASSRLS is refused with the tables named; a BYPASSRLS role
// passes.
func TestCheckWriterRefusesFilteredRole(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	ctx := context.Background()
	if err := consumers.CheckWriter(ctx, pool); err != nil {
		t.Fatalf("owner: %v", err)
	}
	filtered := dbRole(t, pool, "NOBYPASSRLS")
	err := consumers.CheckWriter(ctx, filtered)
	if !errors.Is(err, consumers.ErrRowSecurity) || !strings.Contains(err.Error(), "organizations") || !strings.Contains(err.Error(), "BYPASSRLS") {
		t.Fatalf("filtered role: %v", err)
	}
	if err := consumers.CheckWriter(ctx, dbRole(t, pool, "BYPASSRLS")); err != nil {
		t.Fatalf("BYPASSRLS role: %v", err)
	}
	// The owner passes, unless the tables are FORCEd: then it is filtered
	// too.
	owner := dbRole(t, pool, "NOBYPASSRLS")
	rows, err := pool.Query(ctx, "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relrowsecurity")
	if err != nil {
		t.Fatal(err)
	}
	protected, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(protected) < 5 {
		t.Fatalf("tables under row-level security: %v %v", protected, err)
	}
	for _, tbl := range protected {
		if _, err := pool.Exec(ctx, fmt.Sprintf("ALTER TABLE %s OWNER TO %s", tbl, owner.Config().ConnConfig.User)); err != nil {
			t.Fatal(err)
		}
	}
	if err := consumers.CheckWriter(ctx, owner); err != nil {
		t.Fatalf("owner: %v", err)
	}
	if _, err := pool.Exec(ctx, "ALTER TABLE meetings FORCE ROW LEVEL SECURITY"); err != nil {
		t.Fatal(err)
	}
	if err := consumers.CheckWriter(ctx, owner); !errors.Is(err, consumers.ErrRowSecurity) || !strings.Contains(err.Error(), "filter meetings:") {
		t.Fatalf("owner of FORCEd tables: %v", err)
	}
}

// TestApplyUnderRowSecurity: syncd, as a BYPASSRLS role that does not own
// the tables, applies a stream of events while signed-in users read
// through the policies, and every event lands, with its audit rows.
func TestApplyUnderRowSecurity(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	rlsFixture(t, pool)
	writer := dbRole(t, pool, "BYPASSRLS")
	if err := consumers.CheckWriter(context.Background(), writer); err != nil {
		t.Fatal(err)
	}
	a := auditApplier(t, writer, consumers.ApplierConfig{})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var reads int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			// As asUser, without t.Fatal off the test goroutine.
			err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(context.Background(), "SET LOCAL ROLE authenticated"); err != nil {
					return err
				}
				if _, err := tx.Exec(context.Background(), `SELECT set_config('request.jwt.claims', '{"sub":"user_A"}', true)`); err != nil {
					return err
				}
				var n int
				if err := tx.QueryRow(context.Background(), "SELECT count(*) FROM organizations").Scan(&n); err != nil {
					return err
				}
				if n != 1 {
					return fmt.Errorf("A sees %d organizations", n)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			reads++
		}
	}()
	const batches, perBatch = 10, 40
	for b := range batches {
		var evs []consumers.Event
		for i := range perBatch / 2 {
			u, o := fmt.Sprintf("user_load_%d_%d", b, i), fmt.Sprintf("org_load_%d_%d", b, i)
			evs = append(evs,
				workosEv(t, "ev_lu_"+u, "user.created", userData(u, u+"@x.test", 1)),
				workosEv(t, "ev_lm_"+u, "organization_membership.created", membershipData("om_"+u, u, o, "admin", "active", 1)))
		}
		for _, r := range applyAll(t, a, evs...) {
			if r.Outcome != consumers.Applied {
				t.Fatalf("outcome %s", r.Outcome)
			}
		}
	}
	cancel()
	wg.Wait()
	var users, memberships, audit int
	if err := pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM users WHERE workos_user_id LIKE 'user_load_%'),
		(SELECT count(*) FROM user_org_memberships WHERE workos_user_id LIKE 'user_load_%'),
		(SELECT count(*) FROM audit_logs WHERE event_id LIKE 'ev_l%')`).Scan(&users, &memberships, &audit); err != nil {
		t.Fatal(err)
	}
	// Per user: its row, its organization's stub and its membership.
	if n := batches * perBatch / 2; users != n || memberships != n || audit != 3*n {
		t.Fatalf("%d users, %d memberships, %d audit rows; want %d, %d, %d", users, memberships, audit, n, n, 3*n)
	}
	if reads == 0 {
		t.Fatal("no read ran beside the applier")
	}
}

// TestRowSecurityPaymentTransfers: an expert reads its own transfers only.
func TestRowSecurityPaymentTransfers(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	if _, err := pool.Exec(context.Background(), `INSERT INTO payment_transfers (stripe_session_id, expert_workos_user_id, amount, platform_fee)
		VALUES ('cs_ta', 'user_A', 100, 10), ('cs_tb', 'user_B', 200, 20)`); err != nil {
		t.Fatal(err)
	}
	asUser(t, pool, "user_A", func(tx pgx.Tx) {
		if got := strs(t, tx, "SELECT stripe_session_id FROM payment_transfers"); !slices.Equal(got, []string{"cs_ta"}) {
			t.Errorf("A sees transfers %v", got)
		}
		if _, err := tx.Exec(context.Background(), "UPDATE payment_transfers SET amount = 0"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("A updates transfers: %v", err)
		}
	})
}
