package backfill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/backfill/backfilltest"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// accountUpdated is an account.updated event of the connected account, as
// the Connect endpoint receives it (and the account's Events API lists it).
func accountUpdated(id, account string, created time.Time, payouts bool) []byte {
	var ev map[string]any
	if err := json.Unmarshal(syncdtest.StripeEvent(id, "account.updated", created.Unix(), map[string]any{
		"id": account, "object": "account", "details_submitted": true, "charges_enabled": true, "payouts_enabled": payouts,
		"metadata": map[string]any{},
	}), &ev); err != nil {
		panic(err)
	}
	ev["account"] = account
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// connectSource is the Stripe client of the tests, waits recorded instead
// of slept.
func connectSource(t *testing.T, api *backfilltest.API, pageSize int) (*backfill.Stripe, *waits) {
	t.Helper()
	w := &waits{}
	src, err := backfill.NewStripe(backfill.StripeConfig{
		APIKey: stripeKey, BaseURL: api.URL, PageSize: pageSize, MaxNetworkRetries: new(int64), Wait: w.wait,
	})
	if err != nil {
		t.Fatal(err)
	}
	return src, w
}

type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.d)
}

func byEventID(t *testing.T, js jetstream.JetStream) map[string][]*jetstream.RawStreamMsg {
	t.Helper()
	out := map[string][]*jetstream.RawStreamMsg{}
	for _, m := range streamMsgs(t, js) {
		id := m.Header.Get(stream.HeaderEventID)
		out[id] = append(out[id], m)
	}
	return out
}

func accountRequests(api *backfilltest.API, account string) []backfilltest.Request {
	var out []backfilltest.Request
	for _, r := range api.Requests() {
		if r.Path == "/v1/events" && r.Account == account {
			out = append(out, r)
		}
	}
	return out
}

// The Connect endpoint was down for a while: the events of two connected
// accounts it missed are published once each, as the Connect webhook
// would have stored them, and applied; those it got are duplicates; the
// platform's own events are not the Connect backfill's; a rerun publishes
// nothing new.
func TestStripeConnectBackfillPublishesMissedAccountEvents(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	api := backfilltest.Stripe(t, stripeKey)
	now := time.Now().Truncate(time.Second)

	a := [][]byte{
		accountUpdated("evt_a1", "acct_A", now.Add(-50*time.Minute), false),
		accountUpdated("evt_a2", "acct_A", now.Add(-40*time.Minute), false),
		accountUpdated("evt_a3", "acct_A", now.Add(-30*time.Minute), true),
	}
	b := [][]byte{
		accountUpdated("evt_b1", "acct_B", now.Add(-45*time.Minute), true),
		accountUpdated("evt_b2", "acct_B", now.Add(-20*time.Minute), false),
	}
	// Stripe lists what it stores; an item without `account` still gets
	// it, so the consumers find the account as in the webhook.
	var ev map[string]any
	_ = json.Unmarshal(b[1], &ev)
	delete(ev, "account")
	b1NoAccount, _ := json.Marshal(ev)
	api.AddConnected(t, "acct_A", a...)
	api.AddConnected(t, "acct_B", b[0], b1NoAccount)
	// A platform event: the platform backfill's, not this one's.
	api.Add(t, false, stripeEvent("evt_platform", "customer.created", now.Add(-10*time.Minute), ""))
	// Delivered before the outage.
	h.PostStripe(a[0], true)
	h.WaitSettled()

	src, _ := connectSource(t, api, 2)
	w := backfill.Window{Since: now.Add(-2 * time.Hour), Until: now}
	var seen []backfill.AccountResult
	res, err := backfill.RunConnect(context.Background(), backfill.ConnectConfig{
		OnAccount: func(ar backfill.AccountResult) { seen = append(seen, ar) },
	}, h.Pool, h.NATS.JS, src, w)
	if err != nil {
		t.Fatal(err)
	}
	if res.FromStripe != 2 || res.Done != 2 || res.Listed != 5 || res.Published != 4 || res.Duplicates != 1 || res.Failed != 0 {
		t.Errorf("result %+v, want 2 accounts done, 5 listed, 4 published, 1 duplicate", res)
	}
	if len(seen) != 2 {
		t.Errorf("%d account reports, want 2", len(seen))
	}
	msgs := byEventID(t, h.NATS.JS)
	if len(msgs) != 5 || msgs["evt_platform"] != nil {
		t.Fatalf("stream holds %d events (platform's included: %v), want the 5 of the two accounts", len(msgs), msgs["evt_platform"] != nil)
	}
	for id, ms := range msgs {
		if len(ms) != 1 {
			t.Errorf("%s stored %d times", id, len(ms))
			continue
		}
		m := ms[0]
		acct := "acct_" + strings.ToUpper(id[4:5])
		if m.Subject != "webhooks.stripe.account.updated" || m.Header.Get(jetstream.MsgIDHeader) != "stripe:"+id ||
			m.Header.Get(stream.HeaderEndpoint) != "connect" || m.Header.Get(stream.HeaderSource) != "stripe" {
			t.Errorf("%s: subject %s headers %v", id, m.Subject, m.Header)
		}
		var body struct{ Account string }
		if err := json.Unmarshal(m.Data, &body); err != nil || body.Account != acct {
			t.Errorf("%s: account %q in the body, want %s", id, body.Account, acct)
		}
	}
	for _, id := range []string{"evt_a2", "evt_a3", "evt_b1"} {
		if want := map[string][]byte{"evt_a2": a[1], "evt_a3": a[2], "evt_b1": b[0]}[id]; !bytes.Equal(msgs[id][0].Data, want) {
			t.Errorf("%s not stored as listed:\n%s\nwant\n%s", id, msgs[id][0].Data, want)
		}
	}
	for _, acct := range []string{"acct_A", "acct_B"} {
		if len(accountRequests(api, acct)) == 0 {
			t.Errorf("no events request for %s", acct)
		}
		cur, err := queries.New().BackfillCursorGet(context.Background(), h.Pool, queries.BackfillCursorGetParams{
			Provider: "stripe", WindowKey: backfill.AccountKey(w.Key(), acct)})
		if err != nil || cur.CompletedAt == nil {
			t.Errorf("%s cursor %+v %v", acct, cur, err)
		}
	}
	h.WaitSettled()
	// Stripe lists newest first: the older of an account's events arrive
	// after its newest and are recorded stale.
	if n := count(t, h.Pool, `SELECT count(*) FROM webhook_events WHERE source = 'stripe' AND outcome IN ('applied', 'stale')`); n != 5 {
		t.Errorf("%d events in the ledger, want 5", n)
	}
	if n := count(t, h.Pool, `SELECT count(*) FROM stripe_connect_accounts WHERE (stripe_account_id, payouts_enabled) IN (('acct_A', true), ('acct_B', false))`); n != 2 {
		t.Errorf("accounts mirrored wrong: %d of 2 as their newest events say", n)
	}

	res, err = backfill.RunConnect(context.Background(), backfill.ConnectConfig{}, h.Pool, h.NATS.JS, src, w)
	if err != nil || res.Published != 0 || res.Duplicates != 5 || res.Resumed {
		t.Errorf("rerun: %+v %v; want nothing new", res, err)
	}
	if n := len(streamMsgs(t, h.NATS.JS)); n != 5 {
		t.Errorf("%d messages after the rerun, want 5", n)
	}
}

// An interrupted run resumes per account: the account it finished is not
// listed again, the one it broke off continues from its stored page.
func TestStripeConnectBackfillResumesPerAccount(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	now := time.Now().Truncate(time.Second)
	for i := range 7 {
		api.AddConnected(t, "acct_A", accountUpdated(fmt.Sprintf("evt_a%02d", i), "acct_A", now.Add(-time.Duration(60-i)*time.Minute), true))
		api.AddConnected(t, "acct_B", accountUpdated(fmt.Sprintf("evt_b%02d", i), "acct_B", now.Add(-time.Duration(60-i)*time.Minute), true))
	}
	// acct_B's second page fails (after stripe-go's own retries: none here).
	api.FailOn(func(_ int, r backfilltest.Request) int {
		if r.Account == "acct_B" && r.Cursor != "" {
			return http.StatusBadGateway
		}
		return 0
	})
	src, _ := connectSource(t, api, 3)
	// One type: one listing per account (the default types take two).
	w := backfill.Window{Since: now.Add(-2 * time.Hour), Types: []string{"account.updated"}}
	ctx := context.Background()
	res, err := backfill.RunConnect(ctx, backfill.ConnectConfig{Concurrency: 2}, pool, conn.JS, src, w)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 connected accounts failed") || !strings.Contains(err.Error(), "acct_B") {
		t.Fatalf("interrupted run: %v", err)
	}
	if res.Done != 1 || res.Failed != 1 || res.Published != 7+3 {
		t.Errorf("interrupted run %+v, want acct_A done (7), acct_B 3 published", res)
	}
	before := len(accountRequests(api, "acct_A"))

	api.FailOn(nil)
	res, err = backfill.RunConnect(ctx, backfill.ConnectConfig{Concurrency: 2}, pool, conn.JS, src, w)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.AlreadyDone != 1 || res.Done != 1 || res.Published != 4 || res.Duplicates != 0 {
		t.Errorf("resumed run %+v, want acct_A already done, acct_B's 4 left published, no duplicates", res)
	}
	if after := len(accountRequests(api, "acct_A")); after != before {
		t.Errorf("acct_A listed again on resume: %d requests, had %d", after, before)
	}
	reqs := accountRequests(api, "acct_B")
	if got := reqs[len(reqs)-2].Cursor; got != "evt_b04" {
		// Newest first: the first page stored ended at evt_b04.
		t.Errorf("acct_B resumed after %q, want evt_b04", got)
	}
	if got := len(byEventID(t, conn.JS)); got != 14 {
		t.Errorf("%d events in the stream, want 14", got)
	}
	if got := len(streamMsgs(t, conn.JS)); got != 14 {
		t.Errorf("%d messages in the stream, want 14 (one each)", got)
	}

	// Finished, the same run again starts over: all duplicates.
	res, err = backfill.RunConnect(ctx, backfill.ConnectConfig{Concurrency: 2}, pool, conn.JS, src, w)
	if err != nil || res.Resumed || res.Published != 0 || res.Duplicates != 14 || res.AlreadyDone != 0 {
		t.Errorf("rerun of a finished run: %+v %v", res, err)
	}
}

// Cancelled between accounts (Ctrl-C), the run resumes with the accounts
// it had not started.
func TestStripeConnectBackfillResumesAfterCancel(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	now := time.Now().Truncate(time.Second)
	for _, acct := range []string{"acct_A", "acct_B", "acct_C"} {
		api.AddConnected(t, acct, accountUpdated("evt_"+acct, acct, now.Add(-time.Hour), true))
	}
	src, _ := connectSource(t, api, 10)
	// One type: one listing per account (the default types take two).
	w := backfill.Window{Since: now.Add(-2 * time.Hour), Until: now, Types: []string{"account.updated"}}
	ctx, cancel := context.WithCancel(context.Background())
	res, err := backfill.RunConnect(ctx, backfill.ConnectConfig{Concurrency: 1, OnAccount: func(backfill.AccountResult) { cancel() }},
		pool, conn.JS, src, w)
	if !errors.Is(err, context.Canceled) || res.Done != 1 || res.NotStarted != 2 {
		t.Fatalf("cancelled run: %+v %v", res, err)
	}
	res, err = backfill.RunConnect(context.Background(), backfill.ConnectConfig{Concurrency: 1}, pool, conn.JS, src, w)
	if err != nil || !res.Resumed || res.AlreadyDone != 1 || res.Done != 2 || res.Published != 2 {
		t.Fatalf("resumed run: %+v %v", res, err)
	}
	if n := len(accountRequests(api, "acct_A")); n != 1 {
		t.Errorf("acct_A listed %d times, want once", n)
	}
}

// An account only syncd knows (in stripe_connect_accounts, missing from
// Stripe's list) is backfilled too; one syncd knows as deauthorized is
// not asked for; one Stripe refuses access to is skipped and said so.
func TestStripeConnectBackfillAccountsKnownToSyncd(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	now := time.Now().Truncate(time.Second)
	api.AddConnected(t, "acct_listed", accountUpdated("evt_l1", "acct_listed", now.Add(-time.Hour), true))
	api.AddConnected(t, "acct_known", accountUpdated("evt_k1", "acct_known", now.Add(-time.Hour), true),
		accountUpdated("evt_k2", "acct_known", now.Add(-time.Minute), false))
	api.Unlist("acct_known")

	ctx := context.Background()
	q := queries.New()
	for _, acct := range []string{"acct_known", "acct_gone", "acct_listed", "acct_deauthorized"} {
		if _, err := q.StripeConnectAccountUpsert(ctx, pool, queries.StripeConnectAccountUpsertParams{
			StripeAccountID: acct, Metadata: []byte("{}"), StripeCreated: now.Add(-3 * time.Hour), StripeEventRank: 1, StripeEventID: "evt_seed_" + acct,
		}); err != nil {
			t.Fatal(err)
		}
	}
	gone := now.Add(-2 * time.Hour)
	if _, err := q.StripeConnectAccountDeauthorize(ctx, pool, queries.StripeConnectAccountDeauthorizeParams{
		StripeAccountID: "acct_deauthorized", DeauthorizedAt: &gone, StripeCreated: gone, StripeEventRank: 3, StripeEventID: "evt_deauth",
	}); err != nil {
		t.Fatal(err)
	}

	src, _ := connectSource(t, api, 10)
	res, err := backfill.RunConnect(ctx, backfill.ConnectConfig{}, pool, conn.JS, src, backfill.Window{Since: now.Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if res.FromStripe != 1 || res.OnlySyncd != 2 || res.Done != 2 || res.Inaccessible != 1 || res.Published != 3 {
		t.Errorf("result %+v, want 1 listed + 2 known only to syncd, 2 done, 1 inaccessible, 3 published", res)
	}
	origins := map[string]backfill.AccountResult{}
	for _, ar := range res.Accounts {
		origins[ar.Account] = ar
	}
	if ar := origins["acct_known"]; ar.Origin != backfill.OriginSyncd || ar.Published != 2 || ar.Err != nil {
		t.Errorf("acct_known: %+v", ar)
	}
	if ar := origins["acct_gone"]; !ar.Inaccessible || ar.Err == nil || !strings.Contains(ar.Err.Error(), "does not have access") {
		t.Errorf("acct_gone: %+v", ar)
	}
	if _, asked := origins["acct_deauthorized"]; asked || len(accountRequests(api, "acct_deauthorized")) != 0 {
		t.Error("a deauthorized account was asked for")
	}
	if msgs := byEventID(t, conn.JS); len(msgs) != 3 || msgs["evt_k2"] == nil {
		t.Errorf("stream holds %d events, want acct_listed's and acct_known's 3", len(msgs))
	}
}

// --account: that one account only, and nothing else asked of Stripe.
func TestStripeConnectBackfillOneAccount(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	now := time.Now().Truncate(time.Second)
	api.AddConnected(t, "acct_A", accountUpdated("evt_a", "acct_A", now.Add(-time.Hour), true))
	api.AddConnected(t, "acct_B", accountUpdated("evt_b", "acct_B", now.Add(-time.Hour), true))
	src, _ := connectSource(t, api, 10)
	w := backfill.Window{Since: now.Add(-2 * time.Hour)}
	res, err := backfill.RunConnect(context.Background(), backfill.ConnectConfig{Account: "acct_B"}, pool, conn.JS, src, w)
	if err != nil || res.Published != 1 || len(res.Accounts) != 1 || res.Accounts[0].Origin != backfill.OriginFlag {
		t.Fatalf("one account: %+v %v", res, err)
	}
	for _, r := range api.Requests() {
		if r.Account != "acct_B" {
			t.Errorf("request %+v is not acct_B's", r)
		}
	}
	if msgs := byEventID(t, conn.JS); len(msgs) != 1 || msgs["evt_b"] == nil {
		t.Errorf("stream %v", msgs)
	}
	for _, bad := range []string{"acct_", "cus_123", "acct_x\r\nX-Evil: 1"} {
		if _, err := backfill.RunConnect(context.Background(), backfill.ConnectConfig{Account: bad}, pool, conn.JS, src, w); !errors.Is(err, backfill.ErrAccount) {
			t.Errorf("--account %q: %v, want ErrAccount", bad, err)
		}
	}
	// An account Stripe refuses is a failure when asked for by name.
	if _, err := backfill.RunConnect(context.Background(), backfill.ConnectConfig{Account: "acct_Nope"}, pool, conn.JS, src, w); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("inaccessible --account: %v", err)
	}
}

// Over Stripe's read limit: a 429 is retried after the Retry-After it
// names (or a backoff when it names none), and the run completes with
// every event once; a limit that does not lift fails the run with the 429
// and keeps the cursor.
func TestStripeConnectBackfillRateLimited(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	api.RetryAfter = "7"
	now := time.Now().Truncate(time.Second)
	for i := range 4 {
		api.AddConnected(t, "acct_A", accountUpdated(fmt.Sprintf("evt_a%d", i), "acct_A", now.Add(-time.Duration(30-i)*time.Minute), true))
	}
	// The account list's request and the second events page are limited,
	// the latter twice.
	api.FailOn(func(n int, r backfilltest.Request) int {
		if n == 1 || (r.Cursor != "" && n <= 5) {
			return http.StatusTooManyRequests
		}
		return 0
	})
	src, waited := connectSource(t, api, 2)
	w := backfill.Window{Since: now.Add(-time.Hour), Until: now}
	res, err := backfill.RunConnect(context.Background(), backfill.ConnectConfig{}, pool, conn.JS, src, w)
	if err != nil || res.Published != 4 {
		t.Fatalf("rate-limited run: %+v %v", res, err)
	}
	if got := waited.all(); !slices.Equal(got, []time.Duration{7 * time.Second, 7 * time.Second, 7 * time.Second}) {
		t.Errorf("waited %v, want Retry-After's 7s three times", got)
	}
	if got := len(streamMsgs(t, conn.JS)); got != 4 {
		t.Errorf("%d messages, want 4", got)
	}

	// Without Retry-After: a growing backoff; the limit never lifts.
	api.RetryAfter = ""
	api.FailOn(func(n int, r backfilltest.Request) int {
		if r.Path == "/v1/events" && r.Cursor != "" {
			return http.StatusTooManyRequests
		}
		return 0
	})
	w2 := backfill.Window{Since: now.Add(-50 * time.Minute), Until: now}
	limited, waited := connectSource(t, api, 2)
	res, err = backfill.RunConnect(context.Background(), backfill.ConnectConfig{}, pool, conn.JS, limited, w2)
	if err == nil || !strings.Contains(err.Error(), "429") || res.Failed != 1 {
		t.Fatalf("run under a lasting limit: %+v %v", res, err)
	}
	got := waited.all()
	if len(got) != backfill.RateLimitRetriesDefault {
		t.Fatalf("%d retries, want %d", len(got), backfill.RateLimitRetriesDefault)
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1]/2 || got[i] > 30*time.Second || got[0] > time.Second {
			t.Errorf("backoff %v does not grow from 1s up to 30s", got)
			break
		}
	}
	cur, err := queries.New().BackfillCursorGet(context.Background(), pool, queries.BackfillCursorGetParams{
		Provider: "stripe", WindowKey: backfill.AccountKey(w2.Key(), "acct_A")})
	if err != nil || cur.Cursor == nil || cur.CompletedAt != nil {
		t.Errorf("cursor after the limited run: %+v %v; want the first page kept", cur, err)
	}
}

// Stripe pages its account list (100 a page at most): every page's
// accounts are backfilled.
func TestStripeConnectBackfillPagesTheAccountList(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	conn := syncdtest.JetStream(t)
	api := backfilltest.Stripe(t, stripeKey)
	now := time.Now().Truncate(time.Second)
	const n = 103
	for i := range n {
		acct := fmt.Sprintf("acct_%03d", i)
		api.AddConnected(t, acct, accountUpdated("evt_"+acct, acct, now.Add(-time.Hour), true))
	}
	src, _ := connectSource(t, api, 10)
	res, err := backfill.RunConnect(context.Background(), backfill.ConnectConfig{Concurrency: backfill.ConnectConcurrencyMax}, pool, conn.JS, src,
		backfill.Window{Since: now.Add(-2 * time.Hour)})
	if err != nil || res.FromStripe != n || res.Done != n || res.Published != n {
		t.Fatalf("result %+v %v, want %d accounts each with its event", res, err, n)
	}
	var listings []string
	for _, r := range api.Requests() {
		if r.Path == "/v1/accounts" {
			listings = append(listings, r.Cursor)
		}
	}
	if len(listings) != 2 || listings[0] != "" || listings[1] == "" {
		t.Errorf("account list requested after %q, want two pages", listings)
	}
	if got := len(byEventID(t, conn.JS)); got != n {
		t.Errorf("%d events in the stream, want %d", got, n)
	}
}
