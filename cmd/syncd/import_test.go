package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/syncd/syncd/syncdtest"
	"github.com/syncd/syncd/workosapi/workosfake"
)

func clerkCSV(t *testing.T, n int, extra ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("id,first_name,last_name,username,primary_email_address,primary_phone_number,verified_email_addresses,unverified_email_addresses,verified_phone_numbers,unverified_phone_numbers,totp_secret,password_digest,password_hasher\n")
	for i := range n {
		fmt.Fprintf(&b, "user_cli%03d,Kim%d,Lee,,kim%d@example.com,,kim%d@example.com,,,,,$2b$10$abcdefghijklmnopqrstuuvwxyz0123456789ABCDEFGHIJKLMN,bcrypt\n", i, i, i, i)
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	path := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportBadInputExitsTwo(t *testing.T) {
	clearProviderEnv(t)
	t.Setenv("WORKOS_API_KEY", "sk_test")
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/none")
	good := clerkCSV(t, 1)
	notClerk := filepath.Join(t.TempDir(), "x.csv")
	_ = os.WriteFile(notClerk, []byte("name,mail\na,b\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"import"}, "name the step"},
		{[]string{"import", "users"}, `unknown import step "users"`},
		{[]string{"import", "clerk"}, "name the export"},
		{[]string{"import", "clerk", good, "--dry-run", "--map-only"}, "choose one"},
		{[]string{"import", "clerk", good, "--format", "xml"}, `format "xml"`},
		{[]string{"import", "clerk", good, "--concurrency", "0"}, "--concurrency: 0: want a positive value (env SYNCD_IMPORT_CONCURRENCY)"},
		{[]string{"import", "clerk", good, "--org-name", "{nick}"}, "unknown placeholder {nick}"},
		{[]string{"import", "clerk", filepath.Join(t.TempDir(), "gone.csv")}, "no such file"},
		{[]string{"import", "clerk", notClerk}, "no id column"},
		{[]string{"import", "clerk", good, "extra"}, `unexpected argument "extra"`},
		{[]string{"import", "map"}, "choose one of --json and --csv"},
		{[]string{"import", "map", "--json", "--csv"}, "choose one of --json and --csv"},
	} {
		code, _, stderr := runCmd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
	t.Setenv("WORKOS_API_KEY", "")
	if code, _, stderr := runCmd(t, "import", "clerk", good); code != 2 || !strings.Contains(stderr, "WORKOS_API_KEY is not set") {
		t.Errorf("no key: exit %d, %q", code, stderr)
	}
}

// The commands end to end: dry run, import with a bad row (exit 1, the
// row named), a rerun, the map in both forms, verify before and after the
// webhooks.
func TestImportCommands(t *testing.T) {
	clearProviderEnv(t)
	h := syncdtest.NewHarness(t)
	fake := workosfake.New(t, workosfake.Options{RateLimitEvery: 9})
	t.Setenv("WORKOS_API_KEY", workosfake.APIKey)
	t.Setenv("WORKOS_API_URL", fake.URL)
	t.Setenv("DATABASE_URL", h.DBURL)
	ctx := context.Background()
	if _, err := h.Pool.Exec(ctx, `CREATE TABLE clerk_users (clerk_user_id text PRIMARY KEY, stripe_customer_id text, stripe_connect_account_id text);
		INSERT INTO clerk_users VALUES ('user_cli001', 'cus_1', 'acct_1'), ('user_cli002', 'cus_2', NULL)`); err != nil {
		t.Fatal(err)
	}
	file := clerkCSV(t, 8, "user_nomail,No,Mail,,,,,,,,,,")
	flags := []string{"--legacy-database-url", h.DBURL, "--legacy-users-table", "clerk_users"}

	code, stdout, stderr := runCmd(t, append([]string{"import", "clerk", file, "--dry-run"}, flags...)...)
	if code != 1 || !strings.Contains(stdout, "8 users to import, 1 bad rows") || !strings.Contains(stdout, "line 10 (user_nomail): no email") ||
		!strings.Contains(stdout, "8 new users") || !strings.Contains(stdout, "1 expert_individual") || len(fake.Calls()) != 0 {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = runCmd(t, append([]string{"import", "clerk", file}, flags...)...)
	if code != 1 || !strings.Contains(stdout, "import: 8 created, 0 adopted, 0 failed") || !strings.Contains(stdout, "no email 1") ||
		!strings.Contains(stdout, "8 bcrypt hashes imported") || !strings.Contains(stdout, "expert organizations: 1") ||
		!strings.Contains(stderr, "import: 8/8 users") || !strings.Contains(stderr, "1 rows of the file were not imported") {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := len(fake.Users()); n != 8 {
		t.Fatalf("%d WorkOS users", n)
	}

	code, stdout, _ = runCmd(t, "import", "clerk", file, "--format", "csv")
	if code != 1 || !strings.Contains(stdout, "already imported 8") || !strings.Contains(stdout, "0 created") {
		t.Fatalf("rerun: exit %d\n%s", code, stdout)
	}

	code, stdout, stderr = runCmd(t, "import", "map", "--csv")
	recs, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if code != 0 || err != nil || len(recs) != 9 || recs[0][0] != "clerk_user_id" || recs[2][0] != "user_cli001" ||
		!strings.HasPrefix(recs[2][2], "user_") || recs[2][7] != "acct_1" || recs[2][8] != "created" {
		t.Fatalf("map --csv: exit %d %v\n%s\n%s", code, err, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, "import", "map", "--json")
	var entries []map[string]any
	if err := json.Unmarshal([]byte(stdout), &entries); code != 0 || err != nil || len(entries) != 8 || entries[1]["org_type"] != "expert_individual" || entries[1]["org_id"] != "" {
		t.Fatalf("map --json: exit %d %v\n%s", code, err, stdout)
	}

	code, stdout, stderr = runCmd(t, "import", "verify")
	if code != 1 || strings.Count(stdout, "not in users") != 8 || !strings.Contains(stderr, "8 of 8 mapped users do not resolve") {
		t.Fatalf("verify before the webhooks: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "import", "verify", "--json")
	var v verifyJSON
	err = json.Unmarshal([]byte(stdout), &v)
	if code != 1 || err != nil || v.Rows != 8 || len(v.Problems) != 8 || !slices.ContainsFunc(v.Problems, func(p problemJSON) bool {
		return p.ClerkUserID == "user_cli001" && strings.HasPrefix(p.WorkOSUserID, "user_") && strings.Contains(strings.Join(p.Missing, ", "), p.WorkOSUserID+" not in users")
	}) {
		t.Fatalf("verify --json before the webhooks: exit %d %v\n%s\n%s", code, err, stdout, stderr)
	}
	h.StartConsumer()
	if _, err := fake.DeliverWebhooks(ctx, h.URL+"/webhooks/workos", syncdtest.WorkOSSecret); err != nil {
		t.Fatal(err)
	}
	h.WaitSettled()
	code, stdout, stderr = runCmd(t, "import", "verify")
	if code != 0 || !strings.Contains(stdout, "all 8 mapped users resolve") {
		t.Fatalf("verify after the webhooks: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "import", "verify", "--json")
	if err := json.Unmarshal([]byte(stdout), &v); code != 0 || err != nil || v.Rows != 8 || len(v.Problems) != 0 {
		t.Fatalf("verify --json after the webhooks: exit %d %v\n%s\n%s", code, err, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, "import", "map", "--json")
	if err := json.Unmarshal([]byte(stdout), &entries); code != 0 || err != nil || entries[1]["org_id"] == "" {
		t.Fatalf("map after verify: %v\n%s", err, stdout)
	}
}

// The resume hint of an import that stopped is a command to run: the
// flags given, the file, quoted for a shell; no database password.
func TestImportResumeCommand(t *testing.T) {
	cmd := importClerkCommand()
	if err := cmd.ParseFlags([]string{"--concurrency", "8", "--legacy-database-url", "postgres://u:secret@h/db", "--map-only", "--org-name", "{first}'s space"}); err != nil {
		t.Fatal(err)
	}
	got := resumeCommand(cmd.Flags(), "my users.csv")
	want := `syncd import clerk --concurrency 8 --map-only=true --org-name '{first}'\''s space' 'my users.csv' (and the database URLs given before)`
	if got != want {
		t.Errorf("resume:\n got %s\nwant %s", got, want)
	}
	if strings.Contains(got, "secret") {
		t.Errorf("resume shows the password: %s", got)
	}
}
