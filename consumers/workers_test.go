package consumers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
)

// TestConcurrentAppliersOnOverlappingKeysNeverFailAnEvent: two appliers
// (two workers, or a replay beside the consumer) apply batches over the
// same customers, users and memberships at once. They wait on each other's
// row locks and, where the link queries cross, may deadlock: that is
// retried, and no event ever fails permanently.
func TestConcurrentAppliersOnOverlappingKeysNeverFailAnEvent(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	const rounds = 25
	var wg sync.WaitGroup
	var ids sync.Map
	for w := range 2 {
		a := applier(t, pool, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 5))
			for r := range rounds {
				var evs []consumers.Event
				for i := range 60 {
					c, u := rng.IntN(8), rng.IntN(8)
					id := fmt.Sprintf("w%d_r%d_%d", w, r, i)
					ids.Store(id, true)
					switch rng.IntN(3) {
					case 0:
						evs = append(evs, decoded(t, "stripe", stripeEventAt("evt_"+id, "customer.updated", s0+int64(rng.IntN(5)), "2023-10-16", map[string]any{
							"id": fmt.Sprintf("cus_%d", c), "object": "customer", "email": fmt.Sprintf("u%d@x.test", u),
							"metadata": map[string]any{"workos_user_id": fmt.Sprintf("user_%d", u)},
						})))
					case 1:
						evs = append(evs, decoded(t, "workos", dsyncEvent("evt_"+id, "user.updated", rng.IntN(5), userData(fmt.Sprintf("user_%d", u), fmt.Sprintf("u%d@x.test", u), rng.IntN(5)))))
					default:
						evs = append(evs, decoded(t, "workos", dsyncEvent("evt_"+id, "organization_membership.updated", rng.IntN(5),
							membershipData(fmt.Sprintf("om_%d_%d", u, c%3), fmt.Sprintf("user_%d", u), fmt.Sprintf("org_%d", c%3), "member", "active", rng.IntN(5)))))
					}
				}
				for {
					res, err := a.Apply(context.Background(), evs)
					if err != nil {
						if consumers.Classify(err) != consumers.Transient {
							t.Errorf("batch failed permanently: %v", err)
							return
						}
						continue // the consumer would redeliver it; the ledger skips what committed
					}
					for i, r := range res {
						if r.Err != nil {
							t.Errorf("%s failed: %v", evs[i].Envelope.ID, r.Err)
						}
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	var ledger int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM webhook_events").Scan(&ledger); err != nil {
		t.Fatal(err)
	}
	if ledger != 2*rounds*60 {
		t.Fatalf("ledger holds %d events, want %d", ledger, 2*rounds*60)
	}
}

// TestWorkerDoesNotWaitForAnotherWorkersParents: one worker's batch holds
// an organization and a user locked and updated (the set-based upserts'
// version locks), uncommitted; another worker applies a membership of that
// user in that organization. Its stub inserts and foreign-key checks must
// not wait for the first batch to commit: with FOR UPDATE version locks
// and bare ON CONFLICT stubs they did, and two workers ran one after the
// other on any mix with memberships (4× slower).
func TestWorkerDoesNotWaitForAnotherWorkersParents(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	ctx := context.Background()
	a := applier(t, pool, nil)
	applyAll(t, a,
		workosEvent(t, "e_u", "user.created", userData("user_w", "w@x.test", 1)),
		workosEvent(t, "e_o", "organization.created", orgData("org_w", "Org", 1)))

	held, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(ctx)
	q := queries.New()
	if _, err := q.UserLockMany(ctx, held, []string{"user_w"}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.OrganizationLockMany(ctx, held, []string{"org_w"}); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE users SET first_name = 'held' WHERE workos_user_id = 'user_w'`,
		`UPDATE organizations SET name = 'held' WHERE workos_org_id = 'org_w'`,
	} {
		if _, err := held.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	var heldPID int
	if err := held.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&heldPID); err != nil {
		t.Fatal(err)
	}

	type applied struct {
		res []consumers.Result
		err error
	}
	done := make(chan applied, 1)
	m := workosEvent(t, "e_m", "organization_membership.created", membershipData("om_w", "user_w", "org_w", "member", "active", 1))
	go func() {
		res, err := a.Apply(ctx, []consumers.Event{m})
		done <- applied{res, err}
	}()
	// Either the membership applies, or its backend is seen waiting on a
	// lock the held transaction has.
	for {
		select {
		case r := <-done:
			if r.err != nil || r.res[0].Err != nil || r.res[0].Outcome != consumers.Applied {
				t.Fatalf("membership: %v %+v", r.err, r.res)
			}
			return
		default:
		}
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND $1 = ANY(pg_blocking_pids(pid)))`, heldPID).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			t.Fatal("the membership waits for the other worker's open batch")
		}
		runtime.Gosched()
	}
}
