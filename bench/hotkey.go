package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// hotKey is the hot-key workload: n Stripe customer.updated events of
// about 1.5 KB over a fixed set of customers, each updated many times,
// many of them in the same second (ties broken by the event id), in the
// order a burst would deliver them.
func (f fixtures) hotKey(customers, n int, seed uint64) []event {
	rng := rand.New(rand.NewPCG(seed, 13))
	pad := strings.Repeat("x", 560) // brings the body to about 1.5 KB
	evs := make([]event, 0, n)
	// Events come roughly in time order, a few hundred a second.
	const perSecond = 400
	for i := range n {
		cus := rng.IntN(customers)
		created := int64(1_767_225_600 + i/perSecond + rng.IntN(2))
		evs = append(evs, f.stripe("stripe/customer.updated.json", "customer.updated", fmt.Sprintf("evt_h%d_%d", seed, i), created, map[string]any{
			"id": fmt.Sprintf("cus_h%d_%d", seed, cus), "email": fmt.Sprintf("hot%d@bench.test", cus),
			"name": fmt.Sprintf("Customer %d v%d", cus, i), "description": pad,
			"metadata": map[string]any{"plan": "pro", "seq": fmt.Sprint(i)},
		}))
	}
	return evs
}
