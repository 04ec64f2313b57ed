package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/replay"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

var t0 = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func workosEvent(id, typ string, sec int, data map[string]any) []byte {
	data["updated_at"] = syncdtest.Millis(t0.Add(time.Duration(sec) * time.Second))
	data["created_at"] = syncdtest.Millis(t0)
	b, err := json.Marshal(map[string]any{
		"object": "event", "id": id, "event": typ, "data": data,
		"created_at": syncdtest.Millis(t0.Add(time.Duration(sec) * time.Second)),
	})
	if err != nil {
		panic(err)
	}
	return b
}

func user(id, first string) map[string]any {
	return map[string]any{"object": "user", "id": id, "email": id + "@x.test", "first_name": first}
}

func org(id, name string) map[string]any {
	return map[string]any{"object": "organization", "id": id, "name": name}
}

func membership(id, userID, orgID, role string) map[string]any {
	return map[string]any{"object": "organization_membership", "id": id, "user_id": userID, "organization_id": orgID, "status": "active", "role": map[string]any{"slug": role}}
}

// before and after are WorkOS activity on either side of a backup.
func before() [][]byte {
	return [][]byte{
		workosEvent("event_01", "user.created", 1, user("user_a", "Ann")),
		workosEvent("event_02", "organization.created", 2, org("org_1", "Acme")),
		workosEvent("event_03", "organization_membership.created", 3, membership("om_1", "user_a", "org_1", "member")),
		workosEvent("event_04", "user.created", 4, user("user_b", "Bob")),
	}
}

func after() [][]byte {
	return [][]byte{
		workosEvent("event_05", "user.updated", 5, user("user_a", "Annie")),
		workosEvent("event_06", "organization_membership.updated", 6, membership("om_1", "user_a", "org_1", "admin")),
		workosEvent("event_07", "organization.created", 7, org("org_2", "Globex")),
		workosEvent("event_08", "organization_membership.created", 8, membership("om_2", "user_b", "org_2", "member")),
		workosEvent("event_09", "user.deleted", 9, user("user_b", "Bob")),
		workosEvent("event_10", "unknown.event", 10, map[string]any{"id": "x"}),
	}
}

var tables = []string{"organizations", "users", "user_org_memberships", "webhook_events"}

func snapshot(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT (to_jsonb(o) - 'id' - 'created_at' - 'updated_at')::text FROM organizations o ORDER BY workos_org_id`,
		`SELECT (to_jsonb(u) - 'id' - 'created_at' - 'updated_at')::text FROM users u ORDER BY workos_user_id`,
		`SELECT (to_jsonb(m) - 'id' - 'org_id' - 'created_at' - 'updated_at')::text FROM user_org_memberships m ORDER BY workos_org_membership_id`,
	} {
		out = append(out, strs(t, pool, q)...)
	}
	return out
}

func strs(t *testing.T, pool *pgxpool.Pool, q string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return out
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func consumerNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var names []string
	st, err := js.Stream(context.Background(), stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	l := st.ConsumerNames(context.Background())
	for n := range l.Name() {
		names = append(names, n)
	}
	if l.Err() != nil {
		t.Fatal(l.Err())
	}
	return names
}

// The database is restored from a backup taken in the middle of a stretch
// of events: the rows and ledger entries of the later events are gone.
// Replaying the window brings them back, skipping what the backup had; a
// second replay changes nothing. The durable apply consumer is untouched
// and the replay's own consumer is gone afterwards.
func TestReplayAfterRestore(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	start := time.Now()
	for _, b := range before() {
		h.PostWorkOS(b)
	}
	h.WaitSettled()
	for _, tb := range tables {
		exec(t, h.Pool, "CREATE TABLE backup_"+tb+" AS SELECT * FROM "+tb)
	}
	for _, b := range after() {
		h.PostWorkOS(b)
	}
	h.WaitSettled()
	want := snapshot(t, h.Pool)
	ledger := strs(t, h.Pool, `SELECT (to_jsonb(w) - 'applied_at')::text FROM webhook_events w ORDER BY event_id`)
	durable := func() (uint64, uint64) {
		c, err := h.NATS.JS.Consumer(context.Background(), stream.Webhooks, stream.Consumer)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.Delivered.Stream, info.AckFloor.Stream
	}
	delivered, acked := durable()

	// The restore.
	exec(t, h.Pool, "TRUNCATE user_org_memberships, users, organizations, webhook_events")
	for _, tb := range tables {
		exec(t, h.Pool, "INSERT INTO "+tb+" SELECT * FROM backup_"+tb)
	}
	if slices.Equal(snapshot(t, h.Pool), want) {
		t.Fatal("the restore lost nothing: the test proves nothing")
	}

	var progress []replay.Progress
	sum, err := replay.Run(context.Background(), replay.Config{Since: start, BatchSize: 3, Progress: func(p replay.Progress) { progress = append(progress, p) }}, h.Pool, h.NATS.JS)
	if err != nil {
		t.Fatal(err)
	}
	n := len(before()) + len(after())
	if sum.Events != n || sum.Skipped != len(before()) || sum.Applied != len(after())-1 || sum.Ignored != 1 || sum.Failed != 0 {
		t.Errorf("summary %+v, want %d events: %d skipped, %d applied, 1 ignored", sum, n, len(before()), len(after())-1)
	}
	if sum.FirstSeq != 1 || sum.LastSeq != uint64(n) || sum.EndSeq != uint64(n) || sum.Rate() <= 0 {
		t.Errorf("summary window %+v", sum)
	}
	if len(progress) != 4 || progress[3].Done != n || progress[3].Total != n {
		t.Errorf("progress %+v, want one per batch of 3 ending at %d/%d", progress, n, n)
	}
	if got := snapshot(t, h.Pool); !slices.Equal(got, want) {
		t.Errorf("after replay:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	gotLedger := strs(t, h.Pool, `SELECT (to_jsonb(w) - 'applied_at')::text FROM webhook_events w ORDER BY event_id`)
	if !slices.Equal(gotLedger, ledger) {
		t.Errorf("ledger after replay:\n%s\nwant:\n%s", strings.Join(gotLedger, "\n"), strings.Join(ledger, "\n"))
	}

	appliedAt := strs(t, h.Pool, `SELECT applied_at::text FROM webhook_events ORDER BY event_id`)
	sum, err = replay.Run(context.Background(), replay.Config{Since: start}, h.Pool, h.NATS.JS)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != n || sum.Skipped != n || sum.Applied+sum.Ignored+sum.Stale+sum.Failed != 0 {
		t.Errorf("second replay %+v, want all %d skipped", sum, n)
	}
	if got := snapshot(t, h.Pool); !slices.Equal(got, want) {
		t.Error("the second replay changed the database")
	}
	if got := strs(t, h.Pool, `SELECT applied_at::text FROM webhook_events ORDER BY event_id`); !slices.Equal(got, appliedAt) {
		t.Error("the second replay rewrote the ledger")
	}

	if d, a := durable(); d != delivered || a != acked {
		t.Errorf("durable consumer moved: delivered %d→%d, ack floor %d→%d", delivered, d, acked, a)
	}
	syncdtest.Eventually(t, 10*time.Second, "replay consumers deleted", func() bool {
		return slices.Equal(consumerNames(t, h.NATS.JS), []string{stream.Consumer})
	})
}

func publish(t *testing.T, js jetstream.JetStream, subject, id string, body []byte) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// A stream with events of both sources, for the window and filter cases.
// Sequences: 1 user.created, 2 organization.created, 3 stripe
// customer.created, 4 organization.updated, 5 an undecodable
// user.created, 6 organization_membership.created.
func filled(t *testing.T) (*pgxpool.Pool, jetstream.JetStream, time.Time) {
	t.Helper()
	pool := syncdtest.DB(t)
	js := syncdtest.JetStream(t).JS
	publish(t, js, "webhooks.workos.user.created", "workos:e1", workosEvent("e1", "user.created", 1, user("user_a", "A")))
	publish(t, js, "webhooks.workos.organization.created", "workos:e2", workosEvent("e2", "organization.created", 2, org("org_1", "Acme")))
	publish(t, js, "webhooks.stripe.customer.created", "stripe:evt_1", syncdtest.StripeEvent("evt_1", "customer.created", t0.Unix(), map[string]any{"id": "cus_1", "object": "customer"}))
	mid := time.Now()
	publish(t, js, "webhooks.workos.organization.updated", "workos:e4", workosEvent("e4", "organization.updated", 4, org("org_1", "Acme 2")))
	publish(t, js, "webhooks.workos.user.created", "workos:e5", []byte(`{"not":"an event"}`))
	publish(t, js, "webhooks.workos.organization_membership.created", "workos:e6", workosEvent("e6", "organization_membership.created", 6, membership("om_1", "user_a", "org_1", "member")))
	return pool, js, mid
}

func TestReplayWindowsAndFilters(t *testing.T) {
	t.Parallel()
	pool, js, mid := filled(t)
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		cfg         replay.Config
		events      int
		first, last uint64
	}{
		{"sequence range", replay.Config{FromSeq: 2, ToSeq: 4}, 3, 2, 4},
		{"until a time", replay.Config{FromSeq: 1, Until: mid}, 3, 1, 3},
		{"since a time", replay.Config{Since: mid}, 3, 4, 6},
		{"source", replay.Config{FromSeq: 1, Source: "stripe"}, 1, 3, 3},
		{"type wildcard", replay.Config{FromSeq: 1, Type: "organization.*"}, 2, 2, 4},
		{"type tail wildcard", replay.Config{FromSeq: 1, Source: "workos", Type: "organization_membership.>"}, 1, 6, 6},
		{"filter and sequence end", replay.Config{FromSeq: 1, ToSeq: 3, Type: "organization.*"}, 1, 2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			sum, err := replay.Run(ctx, c.cfg, pool, js)
			if err != nil && !(errors.Is(err, replay.ErrEmpty) && c.events == 0) {
				t.Fatal(err)
			}
			if sum.Events != c.events || sum.FirstSeq != c.first || sum.LastSeq != c.last {
				t.Errorf("replayed %d events, seq %d..%d; want %d, %d..%d", sum.Events, sum.FirstSeq, sum.LastSeq, c.events, c.first, c.last)
			}
		})
	}
	// The undecodable message is reported, not dead-lettered, and the rest
	// of its batch applies.
	sum, err := replay.Run(ctx, replay.Config{FromSeq: 1, Source: "workos"}, pool, js)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 1 || len(sum.Failures) != 1 || sum.Failures[0].Seq != 5 || !strings.Contains(sum.Failures[0].Err.Error(), "undecodable") {
		t.Errorf("failures %+v", sum.Failures)
	}
	if sum.Events != 5 || sum.Applied+sum.Skipped != 4 {
		t.Errorf("summary %+v", sum)
	}
	var dl uint64
	if s, err := js.Stream(ctx, stream.DeadLetter); err == nil {
		dl = s.CachedInfo().State.Msgs
	}
	if dl != 0 {
		t.Errorf("%d dead letters", dl)
	}
}

func TestReplayEmptyWindow(t *testing.T) {
	t.Parallel()
	pool, js, _ := filled(t)
	ctx := context.Background()
	for _, cfg := range []replay.Config{
		{FromSeq: 7},
		{Since: time.Now().Add(time.Hour)},
		{FromSeq: 1, Type: "dsync.>"},
		{FromSeq: 1, Until: time.Now().Add(-time.Hour)},
	} {
		sum, err := replay.Run(ctx, cfg, pool, js)
		if !errors.Is(err, replay.ErrEmpty) || sum.Events != 0 {
			t.Errorf("%+v: %v, %d events; want ErrEmpty", cfg, err, sum.Events)
		}
	}
}

func TestFilterSubject(t *testing.T) {
	for _, c := range []struct{ source, pattern, want string }{
		{"", "", "webhooks.*.>"},
		{"stripe", "customer.subscription.*", "webhooks.stripe.customer.subscription.*"},
		{"", "dsync.>", "webhooks.*.dsync.>"},
		{"workos", "user.created", "webhooks.workos.user.created"},
	} {
		got, err := replay.FilterSubject(c.source, c.pattern)
		if err != nil || got != c.want {
			t.Errorf("FilterSubject(%q, %q) = %q, %v; want %q", c.source, c.pattern, got, err, c.want)
		}
	}
	for _, c := range []struct{ source, pattern string }{
		{"github", ""}, {"", "a..b"}, {"", ">.x"}, {"", "customer.sub*"}, {"", "a b"}, {"", "."},
	} {
		if got, err := replay.FilterSubject(c.source, c.pattern); err == nil {
			t.Errorf("FilterSubject(%q, %q) = %q, want an error", c.source, c.pattern, got)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	pool := (*pgxpool.Pool)(nil)
	now := time.Now()
	for _, cfg := range []replay.Config{
		{},
		{Since: now, FromSeq: 1},
		{FromSeq: 1, Until: now, ToSeq: 3},
		{Since: now, Until: now.Add(-time.Minute)},
		{FromSeq: 5, ToSeq: 4},
		{FromSeq: 1, Source: "github"},
	} {
		if _, err := replay.Run(context.Background(), cfg, pool, nil); err == nil || errors.Is(err, replay.ErrEmpty) {
			t.Errorf("%+v: %v, want a validation error", cfg, err)
		}
	}
}
