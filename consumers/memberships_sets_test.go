package consumers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// membershipBatch is a burst over two users and two organizations with
// three memberships a pair: supersedes both ways (a newer membership, an
// older one born superseded), version ties, deletes of memberships, users
// and organizations, parents after their children.
func membershipBatch(t *testing.T, rng *rand.Rand, ns string, n int) []consumers.Event {
	t.Helper()
	users, orgs := []string{ns + "u0", ns + "u1"}, []string{ns + "o0", ns + "o1"}
	var evs []consumers.Event
	id := 0
	workos := func(typ string, data map[string]any) consumers.Event {
		id++
		return decoded(t, "workos", dsyncEvent(fmt.Sprintf("event_%s%03d", ns, rng.IntN(1000)*1000+id), typ, rng.IntN(4), data))
	}
	for len(evs) < n {
		u, o := users[rng.IntN(2)], orgs[rng.IntN(2)]
		switch rng.IntN(12) {
		case 0:
			evs = append(evs, workos([]string{"user.created", "user.updated", "user.deleted"}[rng.IntN(3)], userData(u, u+"@x.test", rng.IntN(4))))
		case 1:
			evs = append(evs, workos([]string{"organization.created", "organization.deleted"}[rng.IntN(2)], orgData(o, "Org", rng.IntN(4))))
		case 2:
			evs = append(evs, workos("organization_membership.deleted", membershipData(fmt.Sprintf("om_%s%s_%d", u, o, rng.IntN(3)), u, o, "member", "active", rng.IntN(4))))
		case 3:
			if len(evs) > 0 {
				evs = append(evs, evs[rng.IntN(len(evs))])
			}
		default:
			typ := []string{"organization_membership.created", "organization_membership.updated", "organization_membership.added"}[rng.IntN(3)]
			evs = append(evs, workos(typ, membershipData(fmt.Sprintf("om_%s%s_%d", u, o, rng.IntN(3)), u, o,
				[]string{"admin", "member"}[rng.IntN(2)], []string{"active", "pending"}[rng.IntN(2)], rng.IntN(4))))
		}
	}
	return evs
}

// TestMembershipsApplySetBasedPerPair: membership events are applied
// set-based (the batched path, without falling back to event by event),
// and leave the rows and outcomes applying them one by one leaves,
// supersedes included.
func TestMembershipsApplySetBasedPerPair(t *testing.T) {
	t.Parallel()
	batched, single := syncdtest.DB(t), syncdtest.DB(t)
	a, ref := applier(t, batched, nil), applier(t, single, nil)
	ctx := context.Background()
	superseded := 0
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 23))
		ns := fmt.Sprintf("m%d_", seed)
		for b := range 3 {
			evs := membershipBatch(t, rng, ns, 5+rng.IntN(40))
			applyBoth(t, a, ref, evs, fmt.Sprintf("seed %d batch %d", seed, b))
			relink(t, batched, ns)
			relink(t, single, ns)
			if g, w := dump(t, batched), dump(t, single); g != w {
				t.Fatalf("seed %d batch %d: rows differ (batched, then event by event):\n%s", seed, b, firstDiff(g, w))
			}
		}
	}
	// The batches did exercise the pair rule: memberships superseded by
	// another of their pair, not deleted by their own event.
	if err := batched.QueryRow(ctx, `
		SELECT count(*) FROM user_org_memberships m
		WHERE m.deleted_at IS NOT NULL AND EXISTS (
		    SELECT 1 FROM user_org_memberships o
		    WHERE o.workos_user_id = m.workos_user_id AND o.workos_org_id = m.workos_org_id
		      AND o.id <> m.id AND o.deleted_at IS NULL)`).Scan(&superseded); err != nil {
		t.Fatal(err)
	}
	if superseded == 0 {
		t.Fatal("no membership was superseded: the batches do not test the pair rule")
	}
}
