package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// event is one provider event of the benchmark mix.
type event struct {
	source, typ, id string
	body            []byte
}

// fixtures are the shared sample events, used as templates so bodies have
// the providers' real shapes and sizes.
type fixtures map[string]map[string]any

func loadFixtures(root string) (fixtures, error) {
	f := fixtures{}
	for _, p := range []string{
		"workos/user.created.json", "workos/organization.updated.json",
		"workos/organization_membership.created.json", "workos/dsync.user.created.json",
		"stripe/customer.updated.json", "stripe/customer.subscription.updated.json",
		"stripe/checkout.session.completed.json", "stripe/payment_intent.succeeded.json",
	} {
		b, err := os.ReadFile(filepath.Join(root, "testdata", "fixtures", p))
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		f[p] = m
	}
	return f, nil
}

// clone deep-copies a template through JSON.
func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

var benchT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func wtime(sec int) string {
	return benchT0.Add(time.Duration(sec) * time.Second).Format("2006-01-02T15:04:05.000Z")
}

// workosEvent fills a WorkOS template: event id, type and data fields.
func (f fixtures) workos(tmpl, typ, id string, set map[string]any) event {
	ev := clone(f[tmpl])
	ev["id"], ev["event"] = id, typ
	data := ev["data"].(map[string]any)
	for k, v := range set {
		data[k] = v
	}
	b, _ := json.Marshal(ev)
	return event{"workos", typ, id, b}
}

// stripe fills a Stripe template: event id, type, created and object fields.
func (f fixtures) stripe(tmpl, typ, id string, created int64, set map[string]any) event {
	ev := clone(f[tmpl])
	ev["id"], ev["type"], ev["created"] = id, typ, created
	obj := ev["data"].(map[string]any)["object"].(map[string]any)
	for k, v := range set {
		obj[k] = v
	}
	b, _ := json.Marshal(ev)
	return event{"stripe", typ, id, b}
}

// mix builds a realistic burst: many entities, several events each, in a
// shuffled order, with a share of duplicates that got past JetStream's
// window (same event id again).
func (f fixtures) mix(entities int, seed uint64) []event {
	return f.mixGen(entities, seed, 0)
}

// mixGen is generation gen of mix: the same entities, new event ids, every
// version newer than generation gen-1's. A load of successive generations
// updates a fixed set of rows, so the tables do not grow with it and the
// rate of one stretch compares with the next.
func (f fixtures) mixGen(entities int, seed uint64, gen int) []event {
	rng := rand.New(rand.NewPCG(seed, 7+uint64(gen)))
	var evs []event
	n := 0
	id := func(p string) string {
		n++
		if gen == 0 {
			return fmt.Sprintf("%s_%d_%d", p, seed, n)
		}
		return fmt.Sprintf("%s_%d_g%d_%d", p, seed, gen, n)
	}
	// Each generation's versions come after the last one's (3 a generation).
	wtime := func(v int) string { return wtime(v + 3*gen) }
	created := func(t int64) int64 { return t + 3*int64(gen) }
	// Each customer's and subscription's metadata names its own user or
	// organization, as the app's do: the fixtures' single owner on every
	// object would give the link lookups one value for the whole column,
	// a distribution no marketplace has, and plans made for it.
	for i := range entities {
		user := fmt.Sprintf("user_b%d_%d", seed, i)
		org := fmt.Sprintf("org_b%d_%d", seed, i%max(1, entities/4))
		email := fmt.Sprintf("guest%d_%d@bench.test", seed, i)
		cus := fmt.Sprintf("cus_b%d_%d", seed, i)
		switch i % 7 {
		case 0, 1: // users with updates
			for v := 1; v <= 3; v++ {
				typ := "user.updated"
				if v == 1 {
					typ = "user.created"
				}
				evs = append(evs, f.workos("workos/user.created.json", typ, id("event"), map[string]any{"id": user, "email": email, "first_name": fmt.Sprint("N", v), "updated_at": wtime(v)}))
			}
		case 2: // organizations and memberships
			evs = append(evs, f.workos("workos/organization.updated.json", "organization.created", id("event"), map[string]any{"id": org, "updated_at": wtime(1)}))
			evs = append(evs, f.workos("workos/organization.updated.json", "organization.updated", id("event"), map[string]any{"id": org, "name": "Renamed", "updated_at": wtime(2)}))
			for v := 1; v <= 2; v++ {
				evs = append(evs, f.workos("workos/organization_membership.created.json", "organization_membership.updated", id("event"), map[string]any{"id": "om_" + user, "user_id": user, "organization_id": org, "updated_at": wtime(v)}))
			}
		case 3: // directory users
			for v := 1; v <= 3; v++ {
				evs = append(evs, f.workos("workos/dsync.user.created.json", "dsync.user.updated", id("event"), map[string]any{"id": "directory_user_" + user, "updated_at": wtime(v)}))
			}
		case 4: // customers
			for v := 1; v <= 3; v++ {
				evs = append(evs, f.stripe("stripe/customer.updated.json", "customer.updated", id("evt"), created(int64(1_767_225_600+v)), map[string]any{"id": cus, "email": email, "metadata": map[string]any{"workos_user_id": user}}))
			}
		case 5: // subscriptions
			for v := 1; v <= 3; v++ {
				evs = append(evs, f.stripe("stripe/customer.subscription.updated.json", "customer.subscription.updated", id("evt"), created(int64(1_767_225_600+v)), map[string]any{"id": "sub_" + cus, "customer": cus, "metadata": map[string]any{"workos_org_id": org, "tier": "professional"}}))
			}
		case 6: // meetings: checkout then payment
			pi := "pi_" + cus
			meta := map[string]any{"meeting": meetingJSON(fmt.Sprintf("guest%d_%d@bench.test", seed, i-6))}
			evs = append(evs, f.stripe("stripe/checkout.session.completed.json", "checkout.session.completed", id("evt"), created(1_767_225_601), map[string]any{"id": "cs_" + cus, "payment_intent": pi, "metadata": meta}))
			evs = append(evs, f.stripe("stripe/payment_intent.succeeded.json", "payment_intent.succeeded", id("evt"), created(1_767_225_602), map[string]any{"id": pi, "metadata": meta}))
		}
	}
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	// 5% duplicates.
	for i := 0; i < len(evs)/20; i++ {
		evs = append(evs, evs[rng.IntN(len(evs))])
	}
	return evs
}

// meetingJSON is the app's booking metadata, a JSON string, for a guest.
func meetingJSON(guest string) string {
	b, _ := json.Marshal(map[string]any{
		"id": "5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11", "expert": "user_01EHWNCE74X7JSDV0X3SZ3KJNY",
		"guest": guest, "guestName": "Guest", "start": "2026-12-01T10:00:00Z", "dur": 45,
		"notes": "", "timezone": "Europe/Lisbon", "locale": "pt",
	})
	return string(b)
}
