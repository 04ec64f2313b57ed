package consumers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/syncd/syncd/consumers"
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
