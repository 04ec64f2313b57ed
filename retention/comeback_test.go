package retention_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/backfill/backfilltest"
	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/replay"
	"github.com/syncd/syncd/retention"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// The events of these tests happened months before the test runs: older
// than any retention.
var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func workosEvent(id, typ string, sec int, data map[string]any) []byte {
	data["updated_at"] = syncdtest.Millis(at(sec))
	data["created_at"] = syncdtest.Millis(t0)
	b, err := json.Marshal(map[string]any{"object": "event", "id": id, "event": typ, "data": data, "created_at": syncdtest.Millis(at(sec))})
	if err != nil {
		panic(err)
	}
	return b
}

func user(id, first string) map[string]any {
	return map[string]any{"object": "user", "id": id, "email": id + "@x.test", "first_name": first}
}

// workosHistory creates, updates and deletes, so that applying it again in
// the same order meets newer rows and tombstones.
func workosHistory() [][]byte {
	return [][]byte{
		workosEvent("event_01", "user.created", 1, user("user_a", "Ann")),
		workosEvent("event_02", "organization.created", 2, map[string]any{"object": "organization", "id": "org_1", "name": "Acme"}),
		workosEvent("event_03", "organization_membership.created", 3, map[string]any{"object": "organization_membership", "id": "om_1", "user_id": "user_a", "organization_id": "org_1", "status": "active", "role": map[string]any{"slug": "member"}}),
		workosEvent("event_04", "user.updated", 4, user("user_a", "Annie")),
		workosEvent("event_05", "user.created", 5, user("user_b", "Bob")),
		workosEvent("event_06", "user.deleted", 6, user("user_b", "Bob")),
	}
}

func customer(id, email string) map[string]any {
	return map[string]any{"object": "customer", "id": id, "email": email, "created": t0.Unix(), "metadata": map[string]any{"workos_user_id": "user_a"}}
}

func stripeHistory() [][]byte {
	return [][]byte{
		syncdtest.StripeEvent("evt_01", "customer.created", at(10).Unix(), customer("cus_a", "a@x.test")),
		syncdtest.StripeEvent("evt_02", "customer.updated", at(20).Unix(), customer("cus_a", "ann@x.test")),
		syncdtest.StripeEvent("evt_03", "customer.created", at(30).Unix(), customer("cus_b", "b@x.test")),
		syncdtest.StripeEvent("evt_04", "customer.deleted", at(40).Unix(), customer("cus_b", "b@x.test")),
	}
}

// synced is every synced row with all its columns but updated_at: an
// event of the same version as the row is applied again (to the same
// values), which touches only that bookkeeping time.
func synced(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT (to_jsonb(o) - 'updated_at')::text FROM organizations o ORDER BY workos_org_id`,
		`SELECT (to_jsonb(u) - 'updated_at')::text FROM users u ORDER BY workos_user_id`,
		`SELECT (to_jsonb(m) - 'updated_at')::text FROM user_org_memberships m ORDER BY workos_org_membership_id`,
		`SELECT (to_jsonb(c) - 'updated_at')::text FROM stripe_customers c ORDER BY stripe_customer_id`,
	} {
		out = append(out, strs(t, pool, q)...)
	}
	return out
}

// ageAndPrune makes the ledger rows 60 days old and runs retention with its
// defaults: every row goes.
func ageAndPrune(t *testing.T, pool *pgxpool.Pool, want int) {
	t.Helper()
	exec(t, pool, `UPDATE webhook_events SET applied_at = applied_at - interval '60 days'`)
	res, err := newPruner(t, retention.Config{Pause: time.Nanosecond, Duty: 1}, pool).Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res[retention.TableLedger] != int64(want) || count(t, pool, `SELECT count(*) FROM webhook_events`) != 0 {
		t.Fatalf("pruned %v, want all %d ledger rows", res, want)
	}
}

// A replay of events whose ledger rows retention already removed applies
// them again — nothing skips them any more — and the version guards and
// tombstones leave every synced row as it was: the older events are stale,
// the newest write what is already there.
func TestReplayAfterLedgerPrunedChangesNoSyncedRow(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	start := time.Now()
	for _, b := range workosHistory() {
		h.PostWorkOS(b)
	}
	for _, b := range stripeHistory() {
		h.PostStripe(b, false)
	}
	h.WaitSettled()
	h.StopConsumer()
	want := synced(t, h.Pool)
	if len(want) != 6 || !strings.Contains(strings.Join(want, "\n"), `"first_name": "Annie"`) {
		t.Fatalf("history applied as:\n%s", strings.Join(want, "\n"))
	}
	n := len(workosHistory()) + len(stripeHistory())
	ageAndPrune(t, h.Pool, n)

	sum, err := replay.Run(context.Background(), replay.Config{Since: start}, h.Pool, h.NATS.JS)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != n || sum.Skipped != 0 || sum.Failed != 0 || sum.Applied+sum.Stale != n || sum.Stale < 3 {
		t.Errorf("replay %+v: want all %d applied again, none skipped, the older ones (at least 3) stale", sum, n)
	}
	if got := synced(t, h.Pool); !slices.Equal(got, want) {
		t.Errorf("replay changed synced rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := count(t, h.Pool, `SELECT count(*) FROM webhook_events`); got != n {
		t.Errorf("ledger holds %d rows after the replay, want %d (recorded again)", got, n)
	}
}

// A backfill, after the stream has long forgotten the events' ids and
// retention has removed their ledger rows, publishes them again; applying
// them changes no synced row.
func TestBackfillAfterLedgerPrunedChangesNoSyncedRow(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	evs := workosHistory()
	for _, b := range evs {
		h.PostWorkOS(b)
	}
	h.WaitSettled()
	h.StopConsumer()
	want := synced(t, h.Pool)
	ageAndPrune(t, h.Pool, len(evs))

	api := backfilltest.WorkOS(t, "sk_test_workos")
	api.Add(t, true, evs...)
	src, err := backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: "sk_test_workos", BaseURL: api.URL, PageSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	// A stream without the events' ids: its duplicate window (a day) is
	// long past for events this old.
	later := syncdtest.JetStream(t)
	res, err := backfill.Run(context.Background(), backfill.Config{}, h.Pool, later.JS, src, backfill.Window{Since: t0.Add(-time.Minute), Until: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != len(evs) {
		t.Fatalf("backfill %+v, want all %d published", res, len(evs))
	}
	c, err := consumers.New(h.ConsumerConfig, h.Pool, later.JS)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	syncdtest.Eventually(t, 30*time.Second, "backfilled events applied", func() bool {
		cons, err := later.JS.Consumer(context.Background(), stream.Webhooks, stream.Consumer)
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	cancel()
	<-done
	if got := synced(t, h.Pool); !slices.Equal(got, want) {
		t.Errorf("backfill changed synced rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	outcomes := strs(t, h.Pool, `SELECT event_id || ' ' || outcome FROM webhook_events ORDER BY event_id`)
	if len(outcomes) != len(evs) || !slices.Contains(outcomes, "event_01 stale") || !slices.Contains(outcomes, "event_05 stale") {
		t.Errorf("ledger after the backfill %v: want every event recorded again, the create of the updated user and of the deleted one stale", outcomes)
	}
}
