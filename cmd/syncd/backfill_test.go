package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/backfill/backfilltest"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// syncd runs the command line in-process and returns its exit code and
// output.
func syncd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// clearProviderEnv keeps the developer's environment out of the tests.
func clearProviderEnv(t *testing.T) {
	for _, k := range []string{"WORKOS_API_KEY", "WORKOS_API_URL", "STRIPE_API_KEY", "STRIPE_API_URL", "SYNCD_RECONCILE_EVERY", "SYNCD_RECONCILE_WINDOW", "SYNCD_RECONCILE_CONNECT", "DATABASE_URL", "NATS_URL"} {
		t.Setenv(k, "")
	}
}

func TestBackfillBadInput(t *testing.T) {
	clearProviderEnv(t)
	t.Setenv("STRIPE_API_KEY", "sk_test")
	t.Setenv("WORKOS_API_KEY", "sk_test")
	old := time.Now().Add(-40 * 24 * time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"backfill"}, nil, "name the provider"},
		{[]string{"backfill", "github", "--since", "1h"}, nil, `unknown provider "github"`},
		{[]string{"backfill", "workos"}, nil, "--since is required"},
		{[]string{"backfill", "workos", "--since", "yesterday"}, nil, `--since: "yesterday"`},
		{[]string{"backfill", "workos", "--since", "-5h"}, nil, "must be positive"},
		{[]string{"backfill", "workos", "--since", "2h", "--until", "3h"}, nil, "is not after --since"},
		{[]string{"backfill", "workos", "--since", "2999-01-01"}, nil, "in the future"},
		{[]string{"backfill", "workos", "--since", "1h", "--page-size", "500"}, nil, "--page-size: 500: want 1 to 100"},
		{[]string{"backfill", "workos", "--since", "1h", "extra"}, nil, `unexpected argument "extra"`},
		{[]string{"backfill", "workos", "--since", "1h"}, map[string]string{"WORKOS_API_KEY": ""}, "WORKOS_API_KEY is not set"},
		{[]string{"backfill", "stripe", "--since", "1h"}, map[string]string{"STRIPE_API_KEY": ""}, "STRIPE_API_KEY is not set"},
		{[]string{"backfill", "workos", "--since", "1h"}, map[string]string{"WORKOS_API_URL": "api.workos.com"}, "WORKOS_API_URL"},
		{[]string{"backfill", "stripe", "--since", old}, nil, "30 days"},
		{[]string{"backfill", "stripe", "--since", "40d"}, nil, "--since 40d"},
		{[]string{"backfill", "workos", "--since", "1h"}, nil, "DATABASE_URL is not set"},
		{[]string{"backfill", "workos", "--connect", "--since", "1h"}, nil, "unknown flag: --connect"},
		{[]string{"backfill", "stripe", "--account", "cus_123", "--since", "1h"}, nil, `--account: not a Stripe connected account id: "cus_123"`},
		{[]string{"backfill", "stripe", "--connect", "--concurrency", "0", "--since", "1h"}, nil, "--concurrency: 0: want 1 to 16"},
		{[]string{"backfill", "stripe", "--connect", "--since", "40d"}, nil, "--since 40d"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		code, _, stderr := syncd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
		t.Setenv("STRIPE_API_KEY", "sk_test")
		t.Setenv("WORKOS_API_KEY", "sk_test")
		t.Setenv("WORKOS_API_URL", "")
	}
}

func TestServeReconcileBadInput(t *testing.T) {
	clearProviderEnv(t)
	t.Setenv("WORKOS_WEBHOOK_SECRET", "whsec_x")
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"serve", "--reconcile-every", "1h", "--database-url", "postgres://x/y"}, nil, "--reconcile-every needs WORKOS_API_KEY or STRIPE_API_KEY"},
		{[]string{"serve", "--reconcile-every", "10s", "--database-url", "postgres://x/y"}, map[string]string{"WORKOS_API_KEY": "k"}, "want at least 1m"},
		{[]string{"serve", "--role", "ingest", "--reconcile-every", "1h"}, map[string]string{"WORKOS_API_KEY": "k"}, "needs DATABASE_URL"},
		{[]string{"serve", "--reconcile-every", "1h", "--reconcile-window", "31d", "--database-url", "postgres://x/y"}, map[string]string{"STRIPE_API_KEY": "k"}, `--reconcile-window: "31d": want a duration`},
		{[]string{"serve", "--reconcile-every", "1h", "--reconcile-window", "800h", "--database-url", "postgres://x/y"}, map[string]string{"STRIPE_API_KEY": "k"}, "30 days"},
		{[]string{"serve", "--reconcile-every", "2h", "--reconcile-window", "1h", "--database-url", "postgres://x/y"}, map[string]string{"STRIPE_API_KEY": "k"}, "shorter than"},
		{[]string{"serve", "--reconcile-connect", "--database-url", "postgres://x/y"}, map[string]string{"STRIPE_API_KEY": "k"}, "--reconcile-connect needs --reconcile-every"},
		{[]string{"serve", "--reconcile-every", "1h", "--reconcile-connect", "--database-url", "postgres://x/y"}, map[string]string{"WORKOS_API_KEY": "k"}, "--reconcile-connect needs STRIPE_API_KEY"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		code, _, stderr := syncd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
		t.Setenv("WORKOS_API_KEY", "")
		t.Setenv("STRIPE_API_KEY", "")
	}
}

func workosUserEvent(i int, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"object": "event", "id": fmt.Sprintf("event_%03d", i), "event": "user.created", "created_at": syncdtest.Millis(at),
		"data": map[string]any{"object": "user", "id": fmt.Sprintf("user_%03d", i), "email": fmt.Sprintf("u%d@x.test", i), "updated_at": syncdtest.Millis(at)},
	})
	return b
}

// natsURL starts a JetStream server the commands reach with --nats-url,
// as they would reach a running serve's.
func natsURL(t *testing.T) string {
	t.Helper()
	srv, err := stream.StartEmbedded(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx := context.Background()
	conn, err := stream.Open(ctx, stream.ConnConfig{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL()
}

func users(t *testing.T, dbURL string) int {
	t.Helper()
	return scalar(t, dbURL, "SELECT count(*) FROM users")
}

func scalar(t *testing.T, dbURL, sql string) int {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The commands end to end: backfill publishes, replay applies (no serve
// running), a second backfill finds everything already stored.
func TestBackfillThenReplayCommands(t *testing.T) {
	clearProviderEnv(t)
	api := backfilltest.WorkOS(t, "sk_cli")
	t0 := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	for i := range 12 {
		api.Add(t, true, workosUserEvent(i, t0.Add(time.Duration(i)*time.Minute)))
	}
	t.Setenv("WORKOS_API_KEY", "sk_cli")
	t.Setenv("WORKOS_API_URL", api.URL)
	db := syncdtest.DatabaseURL(t)
	nats := natsURL(t)
	conn := []string{"--database-url", db, "--nats-url", nats, "--log-level", "warn"}

	args := append([]string{"backfill", "workos", "--since", "2026-01-15T11:00:00Z", "--until", "2026-01-15T13:00:00Z", "--page-size", "5"}, conn...)
	code, out, errOut := syncd(t, args...)
	if code != 0 || !strings.Contains(out, "3 pages, 12 events listed, 12 published, 0 already in the stream") {
		t.Fatalf("backfill: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = syncd(t, append([]string{"replay", "--from-seq", "1"}, conn...)...)
	if code != 0 || !strings.Contains(out, "replayed 12 events") || !strings.Contains(out, "applied  12") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	if n := users(t, db); n != 12 {
		t.Errorf("%d users after replay, want 12", n)
	}
	code, out, errOut = syncd(t, append(args, "--json")...)
	var res resultJSON
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Provider != "workos" || res.Listed != 12 || res.Published != 0 || res.Duplicates != 12 || res.Pages != 3 {
		t.Fatalf("second backfill --json: exit %d %v\n%s%s", code, err, out, errOut)
	}
	code, out, errOut = syncd(t, append([]string{"replay", "--since", "1h", "--type", "user.*"}, conn...)...)
	if code != 0 || !strings.Contains(out, "skipped  12") {
		t.Fatalf("second replay: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = syncd(t, append([]string{"replay", "--from-seq", "3", "--to-seq", "7", "--json"}, conn...)...)
	var sum replayJSON
	if err := json.Unmarshal([]byte(out), &sum); code != 0 || err != nil || sum.Events != 5 || sum.Skipped != 5 || sum.FirstSeq != 3 || sum.LastSeq != 7 ||
		sum.Filter != "webhooks.*.>" || sum.Failures == nil {
		t.Fatalf("replay --json: exit %d %v\n%s%s", code, err, out, errOut)
	}

	// An interrupted backfill says how to resume.
	api.FailOn(func(n int, _ backfilltest.Request) int {
		if n > 0 {
			return 500
		}
		return 0
	})
	code, out, errOut = syncd(t, append([]string{"backfill", "workos", "--since", "2026-01-15T11:30:00Z"}, conn...)...)
	if code != 1 || !strings.Contains(errOut, "resume with: syncd backfill workos --since 2026-01-15T11:30:00Z") {
		t.Fatalf("failing backfill: exit %d\n%s%s", code, out, errOut)
	}
}

// serve --reconcile-every backfills on its own: events whose webhooks never
// arrived reach the database through the running consumer.
func TestServeReconciles(t *testing.T) {
	clearProviderEnv(t)
	api := backfilltest.WorkOS(t, "sk_rec")
	now := time.Now()
	for i := range 5 {
		api.Add(t, true, workosUserEvent(i, now.Add(-time.Duration(10+i)*time.Minute)))
	}
	t.Setenv("WORKOS_API_KEY", "sk_rec")
	t.Setenv("WORKOS_API_URL", api.URL)
	t.Setenv("WORKOS_WEBHOOK_SECRET", "whsec_rec")
	db := syncdtest.DatabaseURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errOut bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--database-url", db, "--data-dir", filepath.Join(t.TempDir(), "data"),
			"--http-addr", "127.0.0.1:0", "--reconcile-every", "1h"}, &out, &errOut)
	}()
	syncdtest.Eventually(t, 30*time.Second, "reconciled users applied", func() bool {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d early", code)
		default:
		}
		return users(t, db) == 5 && scalar(t, db, "SELECT count(*) FROM backfill_cursors WHERE window_key = 'reconcile' AND completed_at IS NOT NULL") == 1
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit %d:\n%s", code, errOut.String())
	}
}

func connectEvent(id, account string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": "account.updated", "created": at.Unix(), "api_version": "2024-06-20", "account": account,
		"data": map[string]any{"object": map[string]any{"id": account, "object": "account", "charges_enabled": true, "payouts_enabled": true, "metadata": map[string]any{}}},
	})
	return b
}

// backfill stripe --connect end to end: a line per account, the totals,
// and on failure the command that resumes it.
func TestBackfillConnectCommand(t *testing.T) {
	clearProviderEnv(t)
	api := backfilltest.Stripe(t, "sk_connect")
	now := time.Now().Truncate(time.Second)
	for i := range 3 {
		api.AddConnected(t, "acct_A", connectEvent(fmt.Sprintf("evt_a%d", i), "acct_A", now.Add(-time.Duration(30-i)*time.Minute)))
		api.AddConnected(t, "acct_B", connectEvent(fmt.Sprintf("evt_b%d", i), "acct_B", now.Add(-time.Duration(30-i)*time.Minute)))
	}
	t.Setenv("STRIPE_API_KEY", "sk_connect")
	t.Setenv("STRIPE_API_URL", api.URL)
	db := syncdtest.DatabaseURL(t)
	conn := []string{"--database-url", db, "--nats-url", natsURL(t), "--log-level", "error"}
	since := now.Add(-time.Hour).UTC().Format(time.RFC3339)
	// One listing per account (the default types take two requests of at
	// most 20 types each), so the page counts below are the pages of it.
	args := append([]string{"backfill", "stripe", "--connect", "--since", since, "--page-size", "2", "--types", "account.updated"}, conn...)

	// acct_B's second page fails: acct_A is done, the run says how to go on.
	api.FailOn(func(_ int, r backfilltest.Request) int {
		if r.Account == "acct_B" && r.Cursor != "" {
			return 400
		}
		return 0
	})
	code, out, errOut := syncd(t, args...)
	if code != 1 || !strings.Contains(out, "  acct_A (stripe): 2 pages, 3 events listed, 3 published") ||
		!strings.Contains(out, "  acct_B (stripe): 1 pages, 2 events listed, 2 published, 0 already in the stream; FAILED") ||
		!strings.Contains(out, "2 accounts (2 listed by Stripe, 0 known only to syncd): 1 done, 1 failed") ||
		!strings.Contains(errOut, "resume with: syncd backfill stripe --connect --since "+since) {
		t.Fatalf("failing run: exit %d\n%s%s", code, out, errOut)
	}
	api.FailOn(nil)
	code, out, errOut = syncd(t, args...)
	if code != 0 || !strings.Contains(out, "  acct_A (stripe): done before the interruption") ||
		!strings.Contains(out, "  acct_B (stripe) (resumed): 1 pages, 1 events listed, 1 published") ||
		!strings.Contains(out, "(resumed): 2 accounts (2 listed by Stripe, 0 known only to syncd): 1 done, 1 done before the interruption; 1 pages, 1 events listed, 1 published") {
		t.Fatalf("resumed run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = syncd(t, append([]string{"backfill", "stripe", "--account", "acct_B", "--since", since, "--types", "account.updated"}, conn...)...)
	if code != 0 || !strings.Contains(out, "  acct_B (flag): 1 pages, 3 events listed, 0 published, 3 already in the stream") {
		t.Fatalf("--account: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = syncd(t, append([]string{"backfill", "stripe", "--account", "acct_A", "--since", since, "--types", "account.updated", "--json"}, conn...)...)
	var res connectJSON
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Done != 1 || res.Listed != 3 || res.Duplicates != 3 ||
		len(res.Accounts) != 1 || res.Accounts[0].Account != "acct_A" || res.Accounts[0].Origin != "flag" || res.Accounts[0].Listed != 3 {
		t.Fatalf("--account --json: exit %d %v\n%s%s", code, err, out, errOut)
	}
}

// serve --reconcile-connect: the connected accounts' events whose Connect
// webhooks never arrived are applied through the running consumer.
func TestServeReconcilesConnect(t *testing.T) {
	clearProviderEnv(t)
	api := backfilltest.Stripe(t, "sk_rec")
	now := time.Now()
	api.AddConnected(t, "acct_A", connectEvent("evt_a", "acct_A", now.Add(-10*time.Minute)))
	api.AddConnected(t, "acct_B", connectEvent("evt_b", "acct_B", now.Add(-5*time.Minute)))
	t.Setenv("STRIPE_API_KEY", "sk_rec")
	t.Setenv("STRIPE_API_URL", api.URL)
	t.Setenv("STRIPE_WEBHOOK_SECRET", "whsec_rec")
	t.Setenv("SYNCD_RECONCILE_CONNECT", "true")
	db := syncdtest.DatabaseURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errOut bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--database-url", db, "--data-dir", filepath.Join(t.TempDir(), "data"),
			"--http-addr", "127.0.0.1:0", "--reconcile-every", "1h"}, &out, &errOut)
	}()
	syncdtest.Eventually(t, 30*time.Second, "reconciled Connect accounts applied", func() bool {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d early:\n%s", code, errOut.String())
		default:
		}
		return scalar(t, db, "SELECT count(*) FROM stripe_connect_accounts WHERE payouts_enabled") == 2 &&
			scalar(t, db, "SELECT count(*) FROM backfill_cursors WHERE window_key = 'reconcile connect' AND completed_at IS NOT NULL") == 1
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit %d:\n%s", code, errOut.String())
	}
}
