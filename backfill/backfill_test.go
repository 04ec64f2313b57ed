package backfill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/backfill/backfilltest"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

const (
	workosKey = "sk_test_workos"
	stripeKey = "sk_test_stripe"
)

var t0 = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// workosEvent is a WorkOS event body created at t, its object's
// updated_at the same time.
func workosEvent(id, typ string, t time.Time, data map[string]any) []byte {
	data["updated_at"] = syncdtest.Millis(t)
	if _, ok := data["created_at"]; !ok {
		data["created_at"] = syncdtest.Millis(t0)
	}
	b, err := json.Marshal(map[string]any{
		"object": "event", "id": id, "event": typ, "data": data,
		"created_at": syncdtest.Millis(t),
		"context":    map[string]any{"actor": map[string]any{"source": "api"}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func user(id, email, first string) map[string]any {
	return map[string]any{"object": "user", "id": id, "email": email, "first_name": first, "last_name": "L", "email_verified": true}
}

func org(id, name string) map[string]any {
	return map[string]any{"object": "organization", "id": id, "name": name, "domains": []any{map[string]any{"domain": strings.ToLower(name) + ".test"}}}
}

func membership(id, userID, orgID, role, status string) map[string]any {
	return map[string]any{
		"object": "organization_membership", "id": id, "user_id": userID, "organization_id": orgID,
		"status": status, "role": map[string]any{"slug": role}, "roles": []any{map[string]any{"slug": role}},
	}
}

// history is a stretch of WorkOS activity: users, organizations and
// memberships created, updated and deleted, one child before its parent.
func history() [][]byte {
	return [][]byte{
		workosEvent("event_01", "user.created", at(1), user("user_a", "a@x.test", "Ann")),
		workosEvent("event_02", "organization.created", at(2), org("org_1", "Acme")),
		workosEvent("event_03", "organization_membership.created", at(3), membership("om_a1", "user_a", "org_1", "member", "active")),
		workosEvent("event_04", "user.created", at(4), user("user_b", "b@x.test", "Bob")),
		// The webhooks stop arriving here.
		workosEvent("event_05", "user.updated", at(5), user("user_a", "ann@x.test", "Annie")),
		workosEvent("event_06", "organization_membership.updated", at(6), membership("om_a1", "user_a", "org_1", "admin", "active")),
		workosEvent("event_07", "organization_membership.created", at(7), membership("om_b2", "user_b", "org_2", "member", "pending")),
		workosEvent("event_08", "organization.created", at(8), org("org_2", "Globex")),
		workosEvent("event_09", "user.created", at(9), user("user_c", "c@x.test", "Cy")),
		workosEvent("event_10", "organization.updated", at(10), org("org_1", "Acme Corp")),
		workosEvent("event_11", "user.deleted", at(11), user("user_c", "c@x.test", "Cy")),
		workosEvent("event_12", "organization_membership.updated", at(12), membership("om_b2", "user_b", "org_2", "member", "active")),
	}
}

// snapshot is the synced tables as comparable text, without the columns
// each database assigns itself (ids, row timestamps).
func snapshot(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT (to_jsonb(o) - 'id' - 'created_at' - 'updated_at')::text FROM organizations o ORDER BY workos_org_id`,
		`SELECT (to_jsonb(u) - 'id' - 'created_at' - 'updated_at')::text FROM users u ORDER BY workos_user_id`,
		`SELECT (to_jsonb(m) - 'id' - 'org_id' - 'created_at' - 'updated_at')::text FROM user_org_memberships m ORDER BY workos_org_membership_id`,
	} {
		rows, err := pool.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
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
	}
	return out
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func workosSource(t *testing.T, api *backfilltest.API, pageSize int) *backfill.WorkOS {
	t.Helper()
	src, err := backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: workosKey, BaseURL: api.URL, PageSize: pageSize})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func stripeSource(t *testing.T, api *backfilltest.API, pageSize int) *backfill.Stripe {
	t.Helper()
	src, err := backfill.NewStripe(backfill.StripeConfig{APIKey: stripeKey, BaseURL: api.URL, PageSize: pageSize, MaxNetworkRetries: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// streamMsgs reads every WEBHOOKS message.
func streamMsgs(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// The webhooks stop arriving for a while (the provider gave up, or ingest
// was down); a backfill over the window afterwards leaves the database
// exactly as the run that received every webhook.
func TestWorkOSBackfillAfterWebhookOutage(t *testing.T) {
	t.Parallel()
	evs := history()
	const delivered = 4

	// The reference: every event arrives as a webhook.
	ref := syncdtest.NewHarness(t)
	ref.StartConsumer()
	for _, b := range evs {
		ref.PostWorkOS(b)
	}
	ref.WaitSettled()
	want := snapshot(t, ref.Pool)
	if len(want) != 7 { // 2 organizations, 3 users (one a tombstone), 2 memberships
		t.Fatalf("reference has %d rows, want 7", len(want))
	}

	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	for _, b := range evs[:delivered] {
		h.PostWorkOS(b)
	}
	h.WaitSettled()
	if got := snapshot(t, h.Pool); slices.Equal(got, want) {
		t.Fatal("the outage lost nothing: the test proves nothing")
	}

	api := backfilltest.WorkOS(t, workosKey)
	// Outside the window: must not be fetched.
	old := workosEvent("event_00", "user.created", t0.Add(-2*time.Hour), user("user_old", "old@x.test", "Old"))
	api.Add(t, true, old)
	api.Add(t, true, evs...)
	res, err := backfill.Run(context.Background(), backfill.Config{}, h.Pool, h.NATS.JS, workosSource(t, api, 5),
		backfill.Window{Since: t0.Add(-time.Minute), Until: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// What webhooks delivered is a duplicate by message id.
	if res.Listed != len(evs) || res.Published != len(evs)-delivered || res.Duplicates != delivered || res.Pages != 3 {
		t.Errorf("result %+v, want %d listed, %d published, %d duplicates in 3 pages", res, len(evs), len(evs)-delivered, delivered)
	}
	h.WaitSettled()
	if got := snapshot(t, h.Pool); !slices.Equal(got, want) {
		t.Errorf("after backfill:\n%s\nwant (webhooks all delivered):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := count(t, h.Pool, `SELECT count(*) FROM webhook_events WHERE source = 'workos'`); n != len(evs) {
		t.Errorf("ledger has %d events, want %d", n, len(evs))
	}
	if n := count(t, h.Pool, `SELECT count(*) FROM users WHERE workos_user_id = 'user_old'`); n != 0 {
		t.Error("an event outside the window was backfilled")
	}
	// The backfill asked for the types syncd handles, oldest first.
	reqs := api.Requests()
	if len(reqs) == 0 || !slices.Contains(reqs[0].Types, "organization_membership.created") || slices.Contains(reqs[0].Types, "session.created") {
		t.Errorf("type filter %v", reqs[0].Types)
	}
}

// Every published message looks as if ingest had stored the webhook: raw
// bytes, subject, message id and headers. The SDK's Event drops `object`
// and `context` and cannot read a space-separated created_at; the raw
// bytes must survive anyway.
func TestWorkOSBackfillPublishesRawEvents(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.WorkOS(t, workosKey)
	odd := []byte(`{"object":"event", "id":"event_odd","event":"user.created","data":{"id":"user_odd","email":"o@x.test","updated_at":"2026-01-15T12:00:01.000Z"},"created_at":"2026-01-15 12:00:01.000","context":{"client_id":"client_1"}}`)
	plain := workosEvent("event_plain", "organization.created", at(2), org("org_p", "Plain"))
	api.Add(t, true, odd, plain)
	res, err := backfill.Run(context.Background(), backfill.Config{}, pool, conn.JS, workosSource(t, api, 100),
		backfill.Window{Since: t0.Add(-time.Minute), Until: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 2 {
		t.Fatalf("result %+v", res)
	}
	msgs := streamMsgs(t, conn.JS)
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, want := range [][]byte{odd, plain} {
		m := msgs[i]
		id := []string{"event_odd", "event_plain"}[i]
		typ := []string{"user.created", "organization.created"}[i]
		if !bytes.Equal(m.Data, want) {
			t.Errorf("message %d body:\n%s\nwant the API's bytes:\n%s", i, m.Data, want)
		}
		if m.Subject != "webhooks.workos."+typ || m.Header.Get(jetstream.MsgIDHeader) != "workos:"+id ||
			m.Header.Get(stream.HeaderSource) != "workos" || m.Header.Get(stream.HeaderEventType) != typ ||
			m.Header.Get(stream.HeaderEventID) != id || m.Header.Get(stream.HeaderProviderAt) == "" || m.Header.Get(stream.HeaderReceivedAt) == "" {
			t.Errorf("message %d: subject %s headers %v", i, m.Subject, m.Header)
		}
	}
	if got := msgs[0].Header.Get(stream.HeaderProviderAt); got != "2026-01-15T12:00:01Z" {
		t.Errorf("provider time %q", got)
	}
}

// A backfill that fails on its third page stores its cursor after the
// second; run again, it resumes there and publishes nothing twice; the
// database gets each event exactly once.
func TestWorkOSBackfillResumesAfterInterruption(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	api := backfilltest.WorkOS(t, workosKey)
	const n = 47
	for i := range n {
		api.Add(t, true, workosEvent(fmt.Sprintf("event_%03d", i), "user.created", at(i), user(fmt.Sprintf("user_%03d", i), fmt.Sprintf("u%d@x.test", i), "U")))
	}
	api.FailOn(func(n int, _ backfilltest.Request) int {
		if n == 3 {
			return http.StatusBadGateway
		}
		return 0
	})
	src := workosSource(t, api, 10)
	w := backfill.Window{Since: t0, Until: t0.Add(time.Hour)}
	ctx := context.Background()
	res, err := backfill.Run(ctx, backfill.Config{}, h.Pool, h.NATS.JS, src, w)
	if err == nil {
		t.Fatal("the failing page did not fail the run")
	}
	if res.Published != 20 || res.Pages != 2 {
		t.Errorf("interrupted run %+v, want 20 published in 2 pages", res)
	}
	cur, err := queries.New().BackfillCursorGet(ctx, h.Pool, queries.BackfillCursorGetParams{Provider: "workos", WindowKey: w.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if cur.Cursor == nil || *cur.Cursor != "event_019" || cur.CompletedAt != nil || cur.Published != 20 || cur.Pages != 2 {
		t.Errorf("stored cursor %+v", cur)
	}

	api.FailOn(nil)
	res, err = backfill.Run(ctx, backfill.Config{}, h.Pool, h.NATS.JS, src, w)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Published != n-20 || res.Duplicates != 0 || res.Pages != 3 {
		t.Errorf("resumed run %+v, want %d published, no duplicates, 3 pages", res, n-20)
	}
	var cursors []string
	for _, r := range api.Requests() {
		cursors = append(cursors, r.Cursor)
	}
	if want := []string{"", "event_009", "event_019", "event_019", "event_029", "event_039"}; !slices.Equal(cursors, want) {
		t.Errorf("pages requested after %q, want %q", cursors, want)
	}
	h.WaitSettled()
	if got := count(t, h.Pool, `SELECT count(*) FROM webhook_events WHERE outcome = 'applied'`); got != n {
		t.Errorf("%d events applied, want %d distinct", got, n)
	}
	if got := count(t, h.Pool, `SELECT count(*) FROM users`); got != n {
		t.Errorf("%d users", got)
	}
	if got := len(streamMsgs(t, h.NATS.JS)); got != n {
		t.Errorf("%d messages in the stream, want %d", got, n)
	}
	cur, _ = queries.New().BackfillCursorGet(ctx, h.Pool, queries.BackfillCursorGetParams{Provider: "workos", WindowKey: w.Key()})
	if cur.CompletedAt == nil || cur.Published != n || cur.Cursor != nil {
		t.Errorf("completed cursor %+v", cur)
	}

	// A completed window run again starts over: everything is a duplicate.
	res, err = backfill.Run(ctx, backfill.Config{}, h.Pool, h.NATS.JS, src, w)
	if err != nil || res.Resumed || res.Published != 0 || res.Duplicates != n {
		t.Errorf("rerun of a completed window: %+v %v", res, err)
	}
}

// Cancelled mid-way (Ctrl-C, or serve stopping), the run resumes too.
func TestWorkOSBackfillResumesAfterCancel(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.WorkOS(t, workosKey)
	const n = 30
	for i := range n {
		api.Add(t, true, workosEvent(fmt.Sprintf("event_%03d", i), "user.created", at(i), user(fmt.Sprintf("user_%03d", i), "", "U")))
	}
	src := workosSource(t, api, 10)
	w := backfill.Window{Since: t0, Until: t0.Add(time.Hour), Types: []string{"user.created"}}
	ctx, cancel := context.WithCancel(context.Background())
	res, err := backfill.Run(ctx, backfill.Config{OnPage: func(p backfill.Progress) {
		if p.Pages == 1 {
			cancel()
		}
	}}, pool, conn.JS, src, w)
	if !errors.Is(err, context.Canceled) || res.Published != 10 {
		t.Fatalf("cancelled run: %+v %v", res, err)
	}
	res, err = backfill.Run(context.Background(), backfill.Config{}, pool, conn.JS, src, w)
	if err != nil || !res.Resumed || res.Published != 20 || res.Duplicates != 0 {
		t.Fatalf("resumed run: %+v %v", res, err)
	}
	if reqs := api.Requests(); reqs[len(reqs)-2].Cursor != "event_009" || !slices.Equal(reqs[0].Types, []string{"user.created"}) {
		t.Errorf("requests %+v", reqs)
	}
}

// Two backfills of one window never run at once.
func TestBackfillLockedWindow(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.WorkOS(t, workosKey)
	w := backfill.Window{Since: t0, Until: t0.Add(time.Hour)}
	ctx := context.Background()
	c, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if ok, err := queries.New().BackfillLockTry(ctx, c, "workos:"+w.Key()); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, err := backfill.Run(ctx, backfill.Config{}, pool, conn.JS, workosSource(t, api, 10), w); !errors.Is(err, backfill.ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	if len(api.Requests()) != 0 {
		t.Error("a locked-out run called the API")
	}
}

func stripeEvent(id, typ string, created time.Time, account string) []byte {
	ev := map[string]any{
		"id": id, "object": "event", "type": typ, "created": created.Unix(), "api_version": "2024-06-20", "livemode": false,
		"data":    map[string]any{"object": map[string]any{"id": "obj_" + id, "object": "customer"}},
		"request": map[string]any{"id": nil, "idempotency_key": nil},
	}
	if account != "" {
		ev["account"] = account
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// Stripe lists newest first with has_more and starting_after, at most 20
// types a request: a 23-type filter is two listings; every event is
// published once, raw, Connect events marked as the Connect endpoint marks
// them.
func TestStripeBackfillSplitsTypesAndPublishesRaw(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	now := time.Now().Truncate(time.Second)
	var types []string
	for i := range 23 {
		types = append(types, fmt.Sprintf("test.type_%02d", i))
	}
	var want [][]byte
	for i := range 35 {
		account := ""
		if i%7 == 0 {
			account = "acct_" + fmt.Sprint(i)
		}
		b := stripeEvent(fmt.Sprintf("evt_%03d", i), types[i%len(types)], now.Add(-time.Duration(100-i)*time.Minute), account)
		// Bytes an encoder would not produce.
		b = bytes.Replace(b, []byte(`"object":"event"`), []byte(`"object": "event"`), 1)
		want = append(want, b)
	}
	api.Add(t, false, want...)
	api.Add(t, false, stripeEvent("evt_other", "charge.succeeded", now.Add(-time.Hour), ""))
	api.Add(t, false, stripeEvent("evt_old", types[0], now.Add(-3*time.Hour), ""))

	res, err := backfill.Run(context.Background(), backfill.Config{}, pool, conn.JS, stripeSource(t, api, 8),
		backfill.Window{Since: now.Add(-2 * time.Hour), Types: types})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != len(want) || res.Listed != len(want) || res.Duplicates != 0 {
		t.Errorf("result %+v", res)
	}
	for _, r := range api.Requests() {
		if len(r.Types) > 20 {
			t.Errorf("a request filtered on %d types", len(r.Types))
		}
	}
	msgs := streamMsgs(t, conn.JS)
	byID := map[string]*jetstream.RawStreamMsg{}
	for _, m := range msgs {
		byID[m.Header.Get(stream.HeaderEventID)] = m
	}
	if len(msgs) != len(want) || len(byID) != len(want) {
		t.Fatalf("%d messages, %d distinct, want %d", len(msgs), len(byID), len(want))
	}
	for i, b := range want {
		id := fmt.Sprintf("evt_%03d", i)
		m := byID[id]
		if m == nil || !bytes.Equal(m.Data, b) {
			t.Fatalf("%s not stored raw: %s", id, m.Data)
		}
		if m.Header.Get(jetstream.MsgIDHeader) != "stripe:"+id || m.Subject != "webhooks.stripe."+types[i%len(types)] {
			t.Errorf("%s: subject %s headers %v", id, m.Subject, m.Header)
		}
		if connect := m.Header.Get(stream.HeaderEndpoint) == "connect"; connect != (i%7 == 0) {
			t.Errorf("%s: endpoint header %q", id, m.Header.Get(stream.HeaderEndpoint))
		}
	}
	// Newest first inside each listing.
	var firstListing []string
	for _, m := range msgs {
		if typ := m.Header.Get(stream.HeaderEventType); slices.Index(types, typ) < 20 {
			firstListing = append(firstListing, m.Header.Get(stream.HeaderEventID))
		}
	}
	if !slices.IsSortedFunc(firstListing, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("first listing published out of Stripe's order: %v", firstListing)
	}
}

// A Stripe backfill interrupted in its second listing resumes in that
// listing from its cursor.
func TestStripeBackfillResumes(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	now := time.Now().Truncate(time.Second)
	var types []string
	for i := range 21 {
		types = append(types, fmt.Sprintf("t.%02d", i))
	}
	// 10 events in the first listing (types 0..19), 12 in the second (type 20).
	for i := range 10 {
		api.Add(t, false, stripeEvent(fmt.Sprintf("evt_a%02d", i), types[i], now.Add(-time.Duration(50-i)*time.Minute), ""))
	}
	for i := range 12 {
		api.Add(t, false, stripeEvent(fmt.Sprintf("evt_b%02d", i), types[20], now.Add(-time.Duration(50-i)*time.Minute), ""))
	}
	// Listing 1 is requests 1-2 (5 + 5 events); listing 2 is requests 3, 4
	// and 5, which fails.
	api.FailOn(func(n int, _ backfilltest.Request) int {
		if n == 5 {
			return http.StatusBadRequest
		}
		return 0
	})
	src := stripeSource(t, api, 5)
	w := backfill.Window{Since: now.Add(-24 * time.Hour), Until: now, Types: types}
	res, err := backfill.Run(context.Background(), backfill.Config{}, pool, conn.JS, src, w)
	if err == nil || res.Published != 20 {
		t.Fatalf("interrupted run: %+v %v", res, err)
	}
	api.FailOn(nil)
	res, err = backfill.Run(context.Background(), backfill.Config{}, pool, conn.JS, src, w)
	if err != nil || !res.Resumed || res.Published != 2 || res.Duplicates != 0 {
		t.Fatalf("resumed run: %+v %v", res, err)
	}
	reqs := api.Requests()
	last := reqs[len(reqs)-1]
	// Newest first: the second listing's stored pages ended at evt_b07 and
	// evt_b02.
	if last.Cursor != "evt_b02" || !slices.Equal(last.Types, []string{"t.20"}) {
		t.Errorf("resumed request %+v", last)
	}
	if got := len(streamMsgs(t, conn.JS)); got != 22 {
		t.Errorf("%d messages, want 22", got)
	}
}

// Stripe's Events API keeps 30 days: an older start is refused before any
// request.
func TestStripeBackfillBeyondRetention(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	_, err := backfill.Run(context.Background(), backfill.Config{}, pool, conn.JS, stripeSource(t, api, 10),
		backfill.Window{Since: time.Now().Add(-31 * 24 * time.Hour)})
	if !errors.Is(err, backfill.ErrWindow) || !strings.Contains(err.Error(), "30 days") {
		t.Fatalf("got %v, want ErrWindow naming the 30 days", err)
	}
	if len(api.Requests()) != 0 {
		t.Error("the API was called")
	}
}

func TestWorkOSBadKeyIsAnError(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.WorkOS(t, workosKey)
	src, err := backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: "sk_wrong", BaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = backfill.Run(context.Background(), backfill.Config{}, pool, conn.JS, src, backfill.Window{Since: t0, Until: t0.Add(time.Hour)})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("got %v, want the API's 401", err)
	}
}

func TestSourceConfigValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"workos no key", func() error { _, err := backfill.NewWorkOS(backfill.WorkOSConfig{}); return err }()},
		{"workos bad url", func() error {
			_, err := backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: "k", BaseURL: "api.workos.com"})
			return err
		}()},
		{"workos page size", func() error {
			_, err := backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: "k", PageSize: 101})
			return err
		}()},
		{"stripe no key", func() error { _, err := backfill.NewStripe(backfill.StripeConfig{}); return err }()},
		{"stripe bad url", func() error {
			_, err := backfill.NewStripe(backfill.StripeConfig{APIKey: "k", BaseURL: "ftp://x"})
			return err
		}()},
	} {
		if c.err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestWindowKeyIgnoresTypeOrder(t *testing.T) {
	a := backfill.Window{Since: t0, Types: []string{"b", "a", "a"}}.Key()
	b := backfill.Window{Since: t0, Types: []string{"a", "b"}}.Key()
	if a != b {
		t.Errorf("%q != %q", a, b)
	}
	if c := (backfill.Window{Since: t0, Until: t0.Add(time.Hour)}).Key(); c == a {
		t.Error("until not in the key")
	}
}

// A page whose events all fail to decode is not the end of the listing:
// the events after it are still published.
func TestWorkOSPageOfOnlyInvalidEventsDoesNotEndTheListing(t *testing.T) {
	h := syncdtest.NewHarness(t)
	bad := `{"object":"event","id":"event_bad","event":"user.created","data":null,"created_at":"2026-01-15T12:00:01.000Z"}`
	good := string(workosEvent("event_good", "user.created", at(5), user("user_g", "g@x.test", "G")))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("after") {
		case "":
			fmt.Fprintf(w, `{"object":"list","data":[%s],"list_metadata":{"after":"event_bad"}}`, bad)
		case "event_bad":
			fmt.Fprintf(w, `{"object":"list","data":[%s],"list_metadata":{"after":null}}`, good)
		default:
			http.Error(w, "unexpected cursor", http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	src, err := backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: workosKey, BaseURL: srv.URL, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := backfill.Run(context.Background(), backfill.Config{}, h.Pool, h.NATS.JS, src,
		backfill.Window{Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour)})
	if err != nil || res.Published != 1 || res.Invalid != 1 {
		t.Fatalf("published %d, invalid %d, err %v; want the good event after the invalid page", res.Published, res.Invalid, err)
	}
}

// An event whose id or type ingest would refuse is refused on the
// backfill path too: counted as invalid, not stored; the page's other
// events are.
func TestBackfillRefusesHostileIdentity(t *testing.T) {
	h := syncdtest.NewHarness(t)
	hostile := string(workosEvent("event_\u0000nul", "user.created", at(1), user("user_h", "h@x.test", "H")))
	long := string(workosEvent("event_long", "user."+strings.Repeat("x", 300), at(2), user("user_l", "l@x.test", "L")))
	good := string(workosEvent("event_good", "user.created", at(5), user("user_g", "g@x.test", "G")))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"object":"list","data":[%s,%s,%s],"list_metadata":{"after":null}}`, hostile, long, good)
	}))
	defer srv.Close()
	src, err := backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: workosKey, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	res, err := backfill.Run(context.Background(), backfill.Config{}, h.Pool, h.NATS.JS, src,
		backfill.Window{Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour), Types: []string{"user.created", "user." + strings.Repeat("x", 300)}})
	if err != nil || res.Published != 1 || res.Invalid != 2 {
		t.Fatalf("published %d, invalid %d, err %v; want the good event only", res.Published, res.Invalid, err)
	}
	s, _ := h.NATS.JS.Stream(context.Background(), stream.Webhooks)
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("WEBHOOKS holds %d messages, want 1", n)
	}
}
