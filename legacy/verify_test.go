package legacy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/syncd/syncd/legacy"
	"github.com/syncd/syncd/syncdtest"
	"github.com/syncd/syncd/workosapi/workosfake"
)

// The import writes only to WorkOS; its webhooks, delivered through ingest
// and the consumer, bring every imported user into Postgres, and Verify
// says so — and, before they arrive, names what is missing.
func TestImportWebhooksReachPostgresAndVerify(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	ctx := context.Background()
	fake := workosfake.New(t, workosfake.Options{RateLimitEvery: 11})
	ps := people(40)
	s, err := newImporter(t, legacy.Config{Links: legacyTable(t, h.Pool, ps)}, h.Pool, newAPI(t, fake)).Run(ctx, read(t, csvOf(ps), ""))
	if err != nil || s.Created != 40 {
		t.Fatalf("%v %+v", err, s)
	}

	v, err := legacy.Verify(ctx, h.Pool, "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Rows != 40 || len(v.Problems) != 40 {
		t.Fatalf("before the webhooks: %d rows, %d problems", v.Rows, len(v.Problems))
	}
	for _, want := range []string{"not in users", "not in organizations", "no active owner membership"} {
		if !strings.Contains(v.Problems[0].String(), want) {
			t.Errorf("problem %q does not say %q", v.Problems[0], want)
		}
	}

	// Only the users' events first: organizations and memberships are
	// still missing, and Verify names them.
	h.StartConsumer()
	var userEvents []workosfake.Event
	for _, e := range fake.Events() {
		if e.Type == "user.created" {
			userEvents = append(userEvents, e)
		}
	}
	for _, e := range userEvents[:10] {
		h.PostWorkOS(e.Body)
	}
	h.WaitSettled()
	v, err = legacy.Verify(ctx, h.Pool, "")
	if err != nil || len(v.Problems) != 40 {
		t.Fatalf("%v, %d problems", err, len(v.Problems))
	}
	userOnly := 0
	for _, p := range v.Problems {
		if !strings.Contains(p.String(), "not in users") {
			userOnly++
			if !strings.Contains(p.String(), "not in organizations") {
				t.Errorf("problem %q", p)
			}
		}
	}
	if userOnly != 10 {
		t.Errorf("%d problems without a missing user, want 10", userOnly)
	}

	if _, err := fake.DeliverWebhooks(ctx, h.URL+"/webhooks/workos", syncdtest.WorkOSSecret); err != nil {
		t.Fatal(err)
	}
	h.WaitSettled()
	v, err = legacy.Verify(ctx, h.Pool, "")
	if err != nil || v.Rows != 40 || len(v.Problems) != 0 {
		t.Fatalf("after the webhooks: %v, %d rows, problems %v", err, v.Rows, v.Problems)
	}
	var users, orgs, owners, experts, mapped int
	if err := h.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM users WHERE external_id LIKE 'user_%' AND NOT is_stub),
		(SELECT count(*) FROM organizations WHERE external_id LIKE 'personal:%' AND NOT is_stub),
		(SELECT count(*) FROM user_org_memberships WHERE role = 'owner' AND status = 'active'),
		(SELECT count(*) FROM organizations WHERE type = 'expert_individual'),
		(SELECT count(*) FROM legacy_user_map m JOIN organizations o ON o.id = m.org_id AND o.workos_org_id = m.workos_org_id)`).
		Scan(&users, &orgs, &owners, &experts, &mapped); err != nil {
		t.Fatal(err)
	}
	if users != 40 || orgs != 40 || owners != 40 || experts != 4 || mapped != 40 {
		t.Fatalf("Postgres: %d users, %d personal organizations, %d owner memberships, %d experts, %d map rows with org_id", users, orgs, owners, experts, mapped)
	}
}
