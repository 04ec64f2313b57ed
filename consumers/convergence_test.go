package consumers_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// The convergence property: a random history of one entity (creates,
// updates, deletes, with the parents it needs), applied through the real
// consumer in any order, in any batching, with duplicates, ends in the same
// rows as the same history applied in order. Histories of every kind run
// side by side in one database under ids of their own.
//
// SYNCD_CONVERGENCE_HISTORIES sets how many histories (spread over the
// kinds; `make test` runs a few dozen, `make reliability` 10,000) and
// SYNCD_CONVERGENCE_SEED the seed (fixed by default, so `make test` is
// repeatable; a failure prints the seed and the history).

// hEvent is one provider event of a history.
type hEvent struct {
	source string // "workos" or "stripe"
	id     string
	typ    string
	at     int64 // WorkOS: ms after t0 (event time); Stripe: created, s after s0
	data   map[string]any
	// account is the connected account of a Stripe Connect event.
	account string
}

// historyKind builds one history under namespace ns; called twice with
// equally seeded generators it builds the same history under two names.
type historyKind struct {
	name  string
	build func(ns string, rng *rand.Rand) []hEvent
}

// msAt is a WorkOS timestamp ms milliseconds after t0.
func msAt(ms int64) string { return syncdtest.Millis(t0.Add(time.Duration(ms) * time.Millisecond)) }

// steps returns n increasing times in ms. Many fall in the same second
// (1 ms or tens of ms apart), some seconds apart, so same-second ties of
// second-resolution clocks are common.
func steps(rng *rand.Rand, n int) []int64 {
	out := make([]int64, n)
	t := int64(1000 + rng.IntN(1000))
	for i := range out {
		switch rng.IntN(4) {
		case 0:
			t++
		case 1:
			t += int64(1 + rng.IntN(50))
		case 2:
			t += int64(1 + rng.IntN(999))
		default:
			t += int64(1000 * (1 + rng.IntN(3)))
		}
		out[i] = t
	}
	return out
}

// stripeSteps returns n non-decreasing Stripe created offsets in seconds:
// ties (several events in one second) are the rule.
func stripeSteps(rng *rand.Rand, n int) []int64 {
	out := make([]int64, n)
	t := int64(rng.IntN(3))
	for i := range out {
		if rng.IntN(2) == 0 {
			t += int64(rng.IntN(2))
		}
		out[i] = t
	}
	return out
}

func pick[T any](rng *rand.Rand, vs ...T) T { return vs[rng.IntN(len(vs))] }

func cvUser(id, ns string, v int, ms int64) map[string]any {
	return map[string]any{
		"object": "user", "id": id, "email": fmt.Sprintf("u%d.%s@conv.test", v%3, ns),
		"first_name": fmt.Sprint("F", v), "last_name": "L", "email_verified": v%2 == 0,
		"metadata": map[string]any{"v": fmt.Sprint(v)}, "created_at": msAt(0), "updated_at": msAt(ms),
	}
}

func cvOrg(id string, v int, ms int64) map[string]any {
	return map[string]any{
		"object": "organization", "id": id, "name": fmt.Sprint("Org ", v),
		"domains":  []any{map[string]any{"domain": fmt.Sprintf("d%d.test", v%2)}},
		"metadata": map[string]any{"type": "team"}, "created_at": msAt(0), "updated_at": msAt(ms),
	}
}

// entityHistory is create, updates and maybe a delete of one object; the
// delete carries the last update's updated_at (a tie) or a later one.
func entityHistory(rng *rand.Rand, prefix string, data func(v int, ms int64) map[string]any, idOf func(j int) string) []hEvent {
	updates := 1 + rng.IntN(4)
	deleted := rng.IntN(5) < 2
	n := 1 + updates
	if deleted {
		n++
	}
	ts := steps(rng, n)
	var out []hEvent
	for j := range n {
		typ := prefix + ".updated"
		switch {
		case j == 0:
			typ = prefix + ".created"
		case deleted && j == n-1:
			typ = prefix + ".deleted"
		}
		v, ms := j, ts[j]
		if typ == prefix+".deleted" {
			v = j - 1 // the object as it last was
			if rng.IntN(2) == 0 {
				ms = ts[j-1]
			}
		}
		out = append(out, hEvent{source: "workos", id: idOf(j), typ: typ, at: ts[j], data: data(v, ms)})
	}
	return out
}

var convergenceKinds = []historyKind{
	{"workos users", func(ns string, rng *rand.Rand) []hEvent {
		id := "user_" + ns
		return entityHistory(rng, "user", func(v int, ms int64) map[string]any { return cvUser(id, ns, v, ms) },
			func(j int) string { return fmt.Sprintf("event_%s_%d", ns, j) })
	}},
	{"workos organizations", func(ns string, rng *rand.Rand) []hEvent {
		id := "org_" + ns
		return entityHistory(rng, "organization", func(v int, ms int64) map[string]any { return cvOrg(id, v, ms) },
			func(j int) string { return fmt.Sprintf("event_%s_%d", ns, j) })
	}},
	{"workos memberships", func(ns string, rng *rand.Rand) []hEvent {
		user, org := "user_"+ns, "org_"+ns
		evs := entityHistory(rng, "organization_membership", func(v int, ms int64) map[string]any {
			m := membershipData("om_"+ns, user, org, []string{"member", "admin"}[v%2], []string{"pending", "active", "inactive"}[v%3], 0)
			m["updated_at"] = msAt(ms)
			m["created_at"] = msAt(0)
			return m
		}, func(j int) string { return fmt.Sprintf("event_%s_m%d", ns, j) })
		// The parents, which any order may put after their child.
		if rng.IntN(3) > 0 {
			evs = append(evs, hEvent{source: "workos", id: "event_" + ns + "_u", typ: "user.created", at: 500, data: cvUser(user, ns, 0, 500)})
		}
		if rng.IntN(3) > 0 {
			evs = append(evs, hEvent{source: "workos", id: "event_" + ns + "_o", typ: "organization.created", at: 500, data: cvOrg(org, 0, 500)})
		}
		return evs
	}},
	{"workos memberships of a deleted user", func(ns string, rng *rand.Rand) []hEvent {
		// The user goes after its membership's last update, and before or
		// after the membership's own delete: the membership's updates
		// delivered after the user's delete still count, and of the two
		// deletes the earlier stays.
		user, org := "user_"+ns, "org_"+ns
		evs := entityHistory(rng, "organization_membership", func(v int, ms int64) map[string]any {
			m := membershipData("om_"+ns, user, org, []string{"member", "admin"}[v%2], []string{"pending", "active", "inactive"}[v%3], 0)
			m["updated_at"] = msAt(ms)
			m["created_at"] = msAt(0)
			return m
		}, func(j int) string { return fmt.Sprintf("event_%s_m%d", ns, j) })
		last := evs[len(evs)-1].at
		if evs[len(evs)-1].typ == "organization_membership.deleted" && rng.IntN(2) == 0 {
			last = evs[len(evs)-2].at
		}
		gone := last + int64(1+rng.IntN(3))
		evs = append(evs,
			hEvent{source: "workos", id: "event_" + ns + "_u", typ: "user.created", at: 500, data: cvUser(user, ns, 0, 500)},
			hEvent{source: "workos", id: "event_" + ns + "_ud", typ: "user.deleted", at: gone, data: cvUser(user, ns, 0, 500)})
		slices.SortStableFunc(evs, func(a, b hEvent) int { return cmp.Compare(a.at, b.at) })
		if rng.IntN(2) == 0 {
			evs = append(evs, hEvent{source: "workos", id: "event_" + ns + "_o", typ: "organization.created", at: 500, data: cvOrg(org, 0, 500)})
		}
		return evs
	}},
	{"workos directory users", func(ns string, rng *rand.Rand) []hEvent {
		dir, org := "directory_"+ns, "org_"+ns
		evs := entityHistory(rng, "dsync.user", func(v int, ms int64) map[string]any {
			u := dsyncUserData("directory_user_"+ns, dir, org, fmt.Sprint("Ann", v), []string{"active", "inactive"}[v%2], 0)
			u["updated_at"] = msAt(ms)
			return u
		}, func(j int) string { return fmt.Sprintf("event_%s_%d", ns, j) })
		if rng.IntN(2) == 0 {
			d := dsyncDirectoryData(dir, org, "active", 0)
			d["updated_at"] = msAt(700)
			evs = append(evs, hEvent{source: "workos", id: "event_" + ns + "_d", typ: "dsync.activated", at: 700, data: d})
		}
		return evs
	}},
	{"workos directory groups and members", func(ns string, rng *rand.Rand) []hEvent {
		dir, org := "directory_"+ns, "org_"+ns
		gid, uid := "directory_group_"+ns, "directory_user_"+ns
		evs := entityHistory(rng, "dsync.group", func(v int, ms int64) map[string]any {
			g := dsyncGroupData(gid, dir, org, fmt.Sprint("Team ", v), 0)
			g["updated_at"] = msAt(ms)
			return g
		}, func(j int) string { return fmt.Sprintf("event_%s_g%d", ns, j) })
		user := dsyncUserData(uid, dir, org, "Bo", "active", 0)
		user["updated_at"] = msAt(600)
		if rng.IntN(3) > 0 {
			evs = append(evs, hEvent{source: "workos", id: "event_" + ns + "_u", typ: "dsync.user.created", at: 600, data: user})
		}
		// Adds and removes by event time; a removal wins a tie.
		snapshot := dsyncGroupData(gid, dir, org, "Team 0", 0)
		snapshot["updated_at"] = msAt(500)
		ts := steps(rng, 1+rng.IntN(4))
		for j, ms := range ts {
			typ := "dsync.group.user_added"
			if j%2 == 1 {
				typ = "dsync.group.user_removed"
			}
			if j > 0 && rng.IntN(4) == 0 {
				ms = ts[j-1] // the same instant as the one before
			}
			evs = append(evs, hEvent{source: "workos", id: fmt.Sprintf("event_%s_a%d", ns, j), typ: typ, at: ms, data: dsyncMemberData(dir, user, snapshot)})
		}
		return evs
	}},
	{"stripe customers", func(ns string, rng *rand.Rand) []hEvent {
		n := 2 + rng.IntN(4)
		ts := stripeSteps(rng, n)
		deleted := rng.IntN(5) < 2
		var evs []hEvent
		for j := range n {
			typ := "customer.updated"
			switch {
			case j == 0:
				typ = "customer.created"
			case deleted && j == n-1:
				typ = "customer.deleted"
			}
			evs = append(evs, hEvent{source: "stripe", id: fmt.Sprintf("evt_%s_%d", ns, j), typ: typ, at: ts[j], data: map[string]any{
				"id": "cus_" + ns, "object": "customer", "email": fmt.Sprintf("c%d.%s@conv.test", rng.IntN(3), ns),
				"name": fmt.Sprint("Customer ", j), "created": s0 - 100, "metadata": map[string]any{"tier": fmt.Sprint(j)},
			}})
		}
		return evs
	}},
	{"stripe customers of users", func(ns string, rng *rand.Rand) []hEvent {
		// The customer names its user, who arrives at any point: before,
		// between or after the customer's events, deleted or not.
		user := "user_" + ns
		n := 2 + rng.IntN(3)
		ts := stripeSteps(rng, n)
		deleted := rng.IntN(2) == 0
		var evs []hEvent
		for j := range n {
			typ := "customer.updated"
			switch {
			case j == 0:
				typ = "customer.created"
			case deleted && j == n-1:
				typ = "customer.deleted"
			}
			evs = append(evs, hEvent{source: "stripe", id: fmt.Sprintf("evt_%s_%d", ns, j), typ: typ, at: ts[j], data: map[string]any{
				"id": "cus_" + ns, "object": "customer", "email": fmt.Sprintf("c%d.%s@conv.test", rng.IntN(2), ns),
				"name": fmt.Sprint("Customer ", j), "created": s0 - 100, "metadata": map[string]any{"workos_user_id": user},
			}})
		}
		at := rng.IntN(len(evs) + 1)
		return slices.Insert(evs, at, hEvent{source: "workos", id: "event_" + ns + "_u", typ: "user.created", at: 500, data: cvUser(user, ns, 0, 500)})
	}},
	{"stripe subscriptions", func(ns string, rng *rand.Rand) []hEvent {
		org := "org_" + ns
		n := 2 + rng.IntN(4)
		ts := stripeSteps(rng, n)
		var evs []hEvent
		for j := range n {
			typ := pick(rng, "customer.subscription.updated", "customer.subscription.updated", "customer.subscription.paused", "customer.subscription.resumed")
			switch {
			case j == 0:
				typ = "customer.subscription.created"
			case j == n-1 && rng.IntN(3) == 0:
				typ = "customer.subscription.deleted"
			}
			evs = append(evs, hEvent{source: "stripe", id: fmt.Sprintf("evt_%s_%d", ns, j), typ: typ, at: ts[j], data: map[string]any{
				"id": "sub_" + ns, "object": "subscription", "customer": "cus_" + ns,
				"status":             pick(rng, "incomplete", "active", "past_due", "trialing"),
				"current_period_end": s0 + int64(86400*(j+1)), "cancel_at_period_end": rng.IntN(2) == 0,
				"created": s0 - 100, "metadata": map[string]any{"teamOrgId": org, "tier": pick(rng, "pro", "team")},
			}})
		}
		if rng.IntN(3) > 0 {
			evs = append(evs, hEvent{source: "workos", id: "event_" + ns + "_o", typ: "organization.created", at: 500, data: cvOrg(org, 0, 500)})
		}
		return evs
	}},
	{"stripe connect accounts", func(ns string, rng *rand.Rand) []hEvent {
		user, acct := "user_"+ns, "acct_"+ns
		n := 1 + rng.IntN(4)
		ts := stripeSteps(rng, n+2)
		var evs []hEvent
		account := func(j int) map[string]any {
			return map[string]any{
				"id": acct, "object": "account", "email": "x." + ns + "@conv.test",
				"details_submitted": rng.IntN(3) > 0, "charges_enabled": rng.IntN(2) == 0, "payouts_enabled": rng.IntN(2) == 0,
				"requirements": map[string]any{"currently_due": pick(rng, []any{}, []any{"external_account"})},
				"created":      s0 - 100, "metadata": map[string]any{"workos_user_id": user},
			}
		}
		for j := range n {
			evs = append(evs, hEvent{source: "stripe", id: fmt.Sprintf("evt_%s_%d", ns, j), typ: "account.updated", at: ts[j], data: account(j), account: acct})
		}
		if rng.IntN(2) == 0 {
			evs = append(evs, hEvent{source: "stripe", id: "evt_" + ns + "_deauth", typ: "account.application.deauthorized", at: ts[n],
				data: map[string]any{"id": "ca_platform", "object": "application", "name": "Platform"}, account: acct})
			if rng.IntN(2) == 0 {
				// Connected again.
				evs = append(evs, hEvent{source: "stripe", id: "evt_" + ns + "_again", typ: "account.updated", at: ts[n+1] + 1, data: account(n + 1), account: acct})
			}
		}
		if rng.IntN(3) > 0 {
			evs = append(evs, hEvent{source: "workos", id: "event_" + ns + "_u", typ: "user.created", at: 500, data: cvUser(user, ns, 0, 500)})
		}
		return evs
	}},
}

func (e hEvent) event(t *testing.T) consumers.Event {
	t.Helper()
	var body []byte
	if e.source == "workos" {
		b, err := json.Marshal(map[string]any{"object": "event", "id": e.id, "event": e.typ, "data": e.data, "created_at": msAt(e.at)})
		if err != nil {
			t.Fatal(err)
		}
		body = b
	} else {
		ev := map[string]any{
			"id": e.id, "object": "event", "type": e.typ, "created": s0 + e.at, "api_version": "2023-10-16",
			"livemode": false, "data": map[string]any{"object": e.data},
		}
		if e.account != "" {
			ev["account"] = e.account
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		body = b
	}
	ev := decoded(t, e.source, body)
	if e.account != "" {
		ev.Endpoint = "connect"
	}
	return ev
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

type convergenceHistory struct {
	kind     string
	ref, alt string // namespaces
	inOrder  []hEvent
	shuffled []hEvent
}

func TestConvergence(t *testing.T) {
	n := envInt(t, "SYNCD_CONVERGENCE_HISTORIES", 48)
	seed := uint64(envInt(t, "SYNCD_CONVERGENCE_SEED", 20260115))
	if n > 99999 {
		t.Fatalf("SYNCD_CONVERGENCE_HISTORIES=%d: at most 99999", n)
	}
	t.Logf("%d histories, seed %d (SYNCD_CONVERGENCE_SEED)", n, seed)
	pool := syncdtest.DB(t)
	c, err := consumers.New(consumers.Config{BatchSize: 256}, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	hs := make([]*convergenceHistory, n)
	for i := range hs {
		k := convergenceKinds[i%len(convergenceKinds)]
		h := &convergenceHistory{kind: k.name, ref: fmt.Sprintf("h%05dr", i), alt: fmt.Sprintf("h%05dp", i)}
		hseed := rng.Uint64()
		h.inOrder = k.build(h.ref, rand.New(rand.NewPCG(hseed, 2)))
		alt := k.build(h.alt, rand.New(rand.NewPCG(hseed, 2)))
		// Any order, with redeliveries (the same event id again),
		// sometimes right away, sometimes much later.
		rng.Shuffle(len(alt), func(a, b int) { alt[a], alt[b] = alt[b], alt[a] })
		for j := len(alt) - 1; j >= 0; j-- {
			if rng.IntN(3) == 0 {
				at := j + rng.IntN(len(alt)-j+1)
				alt = slices.Insert(alt, at, alt[j])
			}
		}
		h.shuffled = alt
		hs[i] = h
	}

	// In order: round r applies event r of every history, so each history
	// is applied one event after the other.
	var round []consumers.Event
	for r := 0; ; r++ {
		round = round[:0]
		for _, h := range hs {
			if r < len(h.inOrder) {
				round = append(round, h.inOrder[r].event(t))
			}
		}
		if len(round) == 0 {
			break
		}
		for start := 0; start < len(round); start += 256 {
			batch := round[start:min(start+256, len(round))]
			for i, res := range applyOrFatal(t, c, batch) {
				if res.Err != nil {
					t.Fatalf("in order: %s %s failed: %v", batch[i].Envelope.Type, batch[i].Envelope.ID, res.Err)
				}
			}
		}
	}

	// Shuffled: the histories' events interleaved at random and applied in
	// batches of random sizes, so orders meet pipelined and isolated
	// batches alike.
	var stream []hEvent
	cursor := make([]int, len(hs))
	live := make([]int, len(hs))
	for i := range live {
		live[i] = i
	}
	for len(live) > 0 {
		k := rng.IntN(len(live))
		h := hs[live[k]]
		stream = append(stream, h.shuffled[cursor[live[k]]])
		cursor[live[k]]++
		if cursor[live[k]] == len(h.shuffled) {
			live = slices.Delete(live, k, k+1)
		}
	}
	failed := map[string]string{}
	for start := 0; start < len(stream); {
		size := 1 + rng.IntN(64)
		part := stream[start:min(start+size, len(stream))]
		start += len(part)
		batch := make([]consumers.Event, len(part))
		for i, e := range part {
			batch[i] = e.event(t)
		}
		for i, res := range applyOrFatal(t, c, batch) {
			if res.Err != nil {
				failed[nsOf(part[i].id)] = fmt.Sprintf("%s %s failed: %v", part[i].typ, part[i].id, res.Err)
			}
		}
	}

	got, err := convergenceRows(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	diverged := map[string]int{}
	for _, h := range hs {
		want, have := got[h.ref], got[h.alt]
		if len(want) == 0 {
			t.Fatalf("%s history %s left no rows in order", h.kind, h.ref)
		}
		msg := failed[h.alt]
		if msg == "" && slices.Equal(want, have) {
			continue
		}
		diverged[h.kind]++
		if diverged[h.kind] > 2 {
			continue // the first two of a kind say enough
		}
		t.Errorf("%s: history %s diverged (seed %d)%s\nin order: %s\nshuffled: %s\nin-order rows:\n  %s\nshuffled rows:\n  %s",
			h.kind, h.alt, seed, prefixed(": ", msg), describeHistory(h.inOrder, h.ref), describeHistory(h.shuffled, h.alt),
			strings.Join(want, "\n  "), strings.Join(have, "\n  "))
	}
	for kind, k := range diverged {
		t.Errorf("%s: %d of %d histories diverged", kind, k, countKind(hs, kind))
	}
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func countKind(hs []*convergenceHistory, kind string) int {
	n := 0
	for _, h := range hs {
		if h.kind == kind {
			n++
		}
	}
	return n
}

func applyOrFatal(t *testing.T, c *consumers.Consumer, batch []consumers.Event) []consumers.Result {
	t.Helper()
	res, err := c.Apply(context.Background(), batch)
	if err != nil {
		t.Fatalf("batch of %d failed as a whole: %v", len(batch), err)
	}
	return res
}

func describeHistory(evs []hEvent, ns string) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("%s@%d(%s)", e.typ, e.at, strings.TrimPrefix(strings.ReplaceAll(e.id, ns, ""), "event__")))
	}
	return strings.Join(parts, " ")
}

var nsPattern = regexp.MustCompile(`h\d{5}[rp]`)

func nsOf(s string) string { return nsPattern.FindString(s) }

// convergenceTables are the synced tables, each with the natural key that
// stands in for its row uuid where other rows refer to it.
var convergenceTables = []struct{ table, key string }{
	{"users", "workos_user_id"},
	{"organizations", "workos_org_id"},
	{"user_org_memberships", "workos_org_membership_id"},
	{"directories", "workos_directory_id"},
	{"directory_users", "workos_directory_user_id"},
	{"directory_groups", "workos_directory_group_id"},
	{"directory_group_members", ""},
	{"stripe_customers", ""},
	{"stripe_subscriptions", ""},
	{"stripe_connect_accounts", ""},
}

// convergenceRows reads every synced row, grouped by history namespace,
// with the namespace replaced, bookkeeping columns dropped (row uuid,
// created_at, updated_at) and references by uuid replaced by the referred
// row's provider id, so that two histories under different names compare.
func convergenceRows(ctx context.Context, pool *pgxpool.Pool) (map[string][]string, error) {
	type row struct {
		table string
		data  map[string]any
	}
	var rows []row
	uuids := map[string]string{}
	for _, tb := range convergenceTables {
		rs, err := pool.Query(ctx, "SELECT to_jsonb(t) FROM "+tb.table+" t")
		if err != nil {
			return nil, err
		}
		for rs.Next() {
			var m map[string]any
			if err := rs.Scan(&m); err != nil {
				rs.Close()
				return nil, err
			}
			if tb.key != "" {
				if id, ok := m["id"].(string); ok {
					uuids[id] = fmt.Sprint(m[tb.key])
				}
			}
			delete(m, "id")
			delete(m, "created_at")
			delete(m, "updated_at")
			rows = append(rows, row{tb.table, m})
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, err
		}
	}
	out := map[string][]string{}
	for _, r := range rows {
		for k, v := range r.data {
			if s, ok := v.(string); ok {
				if key, ok := uuids[s]; ok {
					r.data[k] = "ref:" + key
				}
			}
		}
		b, err := json.Marshal(r.data)
		if err != nil {
			return nil, err
		}
		ns := nsOf(string(b))
		if ns == "" {
			continue
		}
		out[ns] = append(out[ns], r.table+" "+strings.ReplaceAll(string(b), ns, "NS"))
	}
	for ns := range out {
		slices.Sort(out[ns])
	}
	return out, nil
}
