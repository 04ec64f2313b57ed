package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/syncdtest"
)

func TestAuditBadInputExitsTwo(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"serve", "--audit", "maybe"}, `--audit: "maybe": want on or off (env SYNCD_AUDIT)`},
		{map[string]string{"SYNCD_AUDIT": "sometimes"}, []string{"serve"}, `--audit: "sometimes"`},
		{map[string]string{"SYNCD_AUDIT_RETENTION": "10m"}, []string{"serve"}, `--audit-retention: 10m0s: want at least 1h0m0s (env SYNCD_AUDIT_RETENTION)`},
		{nil, []string{"serve", "--audit-retention", "a year"}, `want days (365d) or a duration`},
		{nil, []string{"replay", "--since", "1h", "--audit", "no"}, `--audit: "no"`},
		{nil, []string{"audit", "--limit", "0"}, "--limit: 0: want 1 to 10000"},
		{nil, []string{"audit", "--resource", ":user_1"}, `--resource: ":user_1": want TYPE or TYPE:ID`},
		{nil, []string{"audit", "--since", "yesterday"}, `--since: "yesterday"`},
		{nil, []string{"audit", "--since", "1h", "--until", "2h"}, "is not before --until"},
		{nil, []string{"audit", "extra"}, `unexpected argument "extra"`},
		{nil, []string{"audit"}, "DATABASE_URL is not set"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			code, _, stderr := runCmd(t, c.args...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, c.want)
			}
		})
	}
}

func workosEvent(t *testing.T, id, typ string, data map[string]any) consumers.Event {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"object": "event", "id": id, "event": typ, "data": data, "created_at": "2026-01-15T12:00:00.000Z"})
	env, err := events.DecodeWorkOS(body)
	if err != nil {
		t.Fatal(err)
	}
	return consumers.Event{Source: "workos", Envelope: env, Body: body}
}

func TestAuditCommandLists(t *testing.T) {
	dbURL := syncdtest.DatabaseURL(t)
	t.Setenv("DATABASE_URL", dbURL)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	a, err := consumers.NewApplier(consumers.ApplierConfig{}, pool)
	if err != nil {
		t.Fatal(err)
	}
	user := func(email, at string) map[string]any {
		return map[string]any{"object": "user", "id": "user_cli", "email": email, "created_at": "2026-01-15T12:00:00.000Z", "updated_at": at}
	}
	for _, evs := range [][]consumers.Event{
		{workosEvent(t, "ev_cli1", "user.created", user("a@x.test", "2026-01-15T12:00:01.000Z")),
			workosEvent(t, "ev_cli2", "organization.created", map[string]any{"object": "organization", "id": "org_cli", "name": "Acme", "created_at": "2026-01-15T12:00:00.000Z", "updated_at": "2026-01-15T12:00:00.000Z"})},
		{workosEvent(t, "ev_cli3", "user.updated", user("b@x.test", "2026-01-15T12:00:02.000Z"))},
	} {
		if _, err := a.Apply(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}

	code, out, stderr := runCmd(t, "audit", "--resource", "users:user_cli", "--json")
	if code != 0 {
		t.Fatalf("audit: exit %d %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("audit --resource users:user_cli: %d rows\n%s", len(lines), out)
	}
	var newest auditJSON
	if err := json.Unmarshal([]byte(lines[0]), &newest); err != nil {
		t.Fatal(err)
	}
	if *newest.EventID != "ev_cli3" || newest.Action != "updated" || newest.Actor != "system:syncd" ||
		!strings.Contains(string(newest.OldValues), `"a@x.test"`) || !strings.Contains(string(newest.NewValues), `"b@x.test"`) {
		t.Errorf("newest row %s", lines[0])
	}

	code, out, _ = runCmd(t, "audit", "--org", "org_cli")
	if code != 0 || !strings.Contains(out, "organizations:org_cli") || !strings.Contains(out, "ev_cli2 (organization.created)") || strings.Contains(out, "user_cli") {
		t.Errorf("audit --org: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "audit", "--event", "ev_cli3")
	if code != 0 || !strings.Contains(out, "users:user_cli") || !strings.Contains(out, "email,first_name") && !strings.Contains(out, "email,workos_updated_at") {
		t.Errorf("audit --event: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "audit", "--since", "1h", "--resource", "meetings")
	if code != 0 || !strings.Contains(out, "no audit rows match") {
		t.Errorf("audit of nothing: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "audit", "--until", time.Now().Add(-time.Hour).Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "no audit rows match") {
		t.Errorf("audit before the changes: exit %d\n%s", code, out)
	}
}

// TestServeRefusesFilteredRole: serve does not start applying as a role
// that row-level security would filter, and says what to do.
func TestServeRefusesFilteredRole(t *testing.T) {
	dbURL := syncdtest.DatabaseURL(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := fmt.Sprintf("syncd_t_serve_%d", time.Now().UnixNano())
	for _, sql := range []string{
		"CREATE ROLE " + role + " LOGIN NOBYPASSRLS",
		"GRANT ALL ON ALL TABLES IN SCHEMA public TO " + role,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = admin.Exec(context.Background(), "DROP ROLE "+role)
	})
	u, _ := url.Parse(dbURL)
	u.User = url.User(role)
	t.Setenv("DATABASE_URL", u.String())
	t.Setenv("SYNCD_DATA_DIR", t.TempDir())
	t.Setenv("NATS_URL", "")
	t.Setenv("WORKOS_WEBHOOK_SECRET", "s")
	code, _, stderr := runCmd(t, "serve", "--no-migrate", "--http-addr", freePort(t))
	if code != 1 || !strings.Contains(stderr, "row-level security") || !strings.Contains(stderr, "BYPASSRLS") || !strings.Contains(stderr, "organizations") {
		t.Fatalf("serve as a filtered role: exit %d, %q", code, stderr)
	}
}
