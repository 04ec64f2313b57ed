package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/syncdtest"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestBadInputExitsTwoWithAMessage(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"migrate"}, "want a subcommand"},
		{[]string{"migrate", "sideways"}, `unknown subcommand "sideways"`},
		{[]string{"migrate", "up"}, "DATABASE_URL is not set"},
		{[]string{"serve", "--role", "both"}, `--role: "both": want all, ingest, consume (env SYNCD_ROLE)`},
		{[]string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"serve", "--log-level", "loud", "--workos-secret", "s", "--database-url", "postgres://x@127.0.0.1:1/x"}, `--log-level: "loud"`},
		{[]string{"serve", "--database-url", "postgres://x@127.0.0.1:1/x"}, "no webhook secret configured"},
		{[]string{"serve", "--replay-window", "5m"}, "--replay-window: 5m0s: want at least 1h0m0s (env SYNCD_REPLAY_WINDOW)"},
		{[]string{"sign", "paypal", "x.json"}, `unknown provider "paypal"`},
		{[]string{"sign", "workos"}, "want PROVIDER FILE"},
		{[]string{"sign", "workos", "/no/such/file.json"}, "read /no/such/file.json"},
		{[]string{"migrate", "up", "--database-url", "::not a url::"}, "--database-url"},
		{[]string{"serve", "--role", "ingest", "--workos-secret", "s", "--publish-timeout", "-1s"}, "--publish-timeout: -1s: want a positive value (env SYNCD_PUBLISH_TIMEOUT)"},
		{[]string{"serve", "--role", "ingest", "--workos-secret", "s", "--jetstream-sync", "sometimes"}, `JetStream sync "sometimes": want always or interval`},
		{[]string{"serve", "--role", "ingest", "--workos-secret", "s", "--ingest-memory", "1000"}, "SYNCD_INGEST_MEMORY) 1000 bytes cannot hold two bodies"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, tc.want)
			}
		})
	}
}

func TestSendFreshIDOfNonObjectIsAUsageError(t *testing.T) {
	t.Setenv("WORKOS_WEBHOOK_SECRET", "s")
	f := filepath.Join(t.TempDir(), "null.json")
	os.WriteFile(f, []byte("null"), 0o600)
	code, _, stderr := runCmd(t, "send", "--fresh-id", "workos", f)
	if code != 2 || !strings.Contains(stderr, "not a JSON object") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestSignWithoutSecretNamesTheVariable(t *testing.T) {
	t.Setenv("WORKOS_WEBHOOK_SECRET", "")
	f := filepath.Join(t.TempDir(), "ev.json")
	os.WriteFile(f, []byte(`{}`), 0o600)
	code, _, stderr := runCmd(t, "sign", "workos", f)
	if code != 2 || !strings.Contains(stderr, "WORKOS_WEBHOOK_SECRET") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeEndToEnd runs `syncd serve` as an operator would, with the
// embedded JetStream, and posts a signed event with `syncd send`.
func TestServeEndToEnd(t *testing.T) {
	dbURL := syncdtest.DatabaseURL(t)
	addr := freePort(t)
	dataDir := t.TempDir()
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("SYNCD_DATA_DIR", dataDir)
	t.Setenv("NATS_URL", "")
	t.Setenv("HTTP_ADDR", addr)
	t.Setenv("WORKOS_WEBHOOK_SECRET", "whsec_e2e,whsec_old")
	t.Setenv("STRIPE_WEBHOOK_SECRET", "whsec_stripe_e2e")
	adminAddr := freePort(t)
	t.Setenv("ADMIN_ADDR", adminAddr)
	t.Setenv("ADMIN_TOKEN", "e2e-admin-token-0123456789")

	ctx, cancel := context.WithCancel(context.Background())
	var serveErr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--log-level", "warn"}, &bytes.Buffer{}, &serveErr) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d: %s", code, serveErr.String())
		}
	}()
	syncdtest.Eventually(t, 30*time.Second, "serve ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// A second serve on the same data dir is refused, not run beside it.
	if code, _, stderr := runCmd(t, "serve", "--http-addr", freePort(t)); code == 0 || !strings.Contains(stderr, "data dir in use") {
		t.Errorf("second serve: exit %d, %q", code, stderr)
	}

	fixture := filepath.Join(syncdtest.RootDir(), "testdata", "fixtures", "workos", "user.created.json")
	if code, out, stderr := runCmd(t, "send", "--url", "http://"+addr, "workos", fixture); code != 0 {
		t.Fatalf("send: exit %d %s %s", code, out, stderr)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	syncdtest.Eventually(t, 10*time.Second, "user row", func() bool {
		var n int
		_ = conn.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE workos_user_id = 'user_01E4ZCR3C56J083X43JQXF3JK5'").Scan(&n)
		return n == 1
	})
	// status reaches the running serve's embedded server through the data dir.
	code, out, stderr := runCmd(t, "status")
	if code != 0 || !strings.Contains(out, "stream WEBHOOKS") || !strings.Contains(out, "1 messages") || !strings.Contains(out, "last workos event") ||
		!strings.Contains(out, "ledger webhook_events") || !strings.Contains(out, "1 rows") || !strings.Contains(out, "applied 1, ignored 0, stale 0 (applied since") {
		t.Errorf("status: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = runCmd(t, "status", "--json")
	var st struct {
		Ready  bool `json:"ready"`
		Stream struct {
			Messages uint64 `json:"messages"`
		} `json:"stream"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || !st.Ready || st.Stream.Messages != 1 {
		t.Errorf("status --json: exit %d %v\n%s%s", code, err, out, stderr)
	}
	code, out, stderr = runCmd(t, "migrate", "status", "--json")
	var migs []struct {
		Version int64 `json:"version"`
		Applied bool  `json:"applied"`
	}
	if err := json.Unmarshal([]byte(out), &migs); code != 0 || err != nil || len(migs) < 10 || !migs[0].Applied || migs[0].Version != 1 {
		t.Errorf("migrate status --json: exit %d %v\n%s%s", code, err, out, stderr)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	m.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(m.String(), `syncd_webhook_requests_total{endpoint="",source="workos",status="200"} 1`) ||
		!strings.Contains(m.String(), `syncd_retention_pruned_rows_total{table="webhook_events"} 0`) {
		t.Errorf("metrics lack the webhook counter:\n%s", firstLines(m.String(), "syncd_"))
	}

	// The console is on ADMIN_ADDR, behind the token, and not on the
	// webhook port; it sees the consumer of this process.
	req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/admin/api/overview", nil)
	req.Header.Set("Authorization", "Bearer e2e-admin-token-0123456789")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ov bytes.Buffer
	ov.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(ov.String(), `"paused": false`) || !strings.Contains(ov.String(), `"last_event_id": "event_01`) {
		t.Errorf("admin overview: %d %s", resp.StatusCode, ov.String())
	}
	resp, err = http.Get("http://" + adminAddr + "/admin/api/overview")
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin overview without the token: %v %v", resp, err)
	}
	resp, err = http.Get("http://" + addr + "/admin/")
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("the webhook port serves /admin/: %v %v", resp, err)
	}
}

func firstLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			fmt.Fprintln(&b, l)
		}
	}
	return b.String()
}

func TestLocalURL(t *testing.T) {
	for in, want := range map[string]string{
		":8080":          "http://localhost:8080",
		"127.0.0.1:9000": "http://127.0.0.1:9000",
		"0.0.0.0:80":     "http://localhost:80",
		"[::]:8080":      "http://localhost:8080",
		"[::1]:8080":     "http://[::1]:8080",
	} {
		if got := localURL(in); got != want {
			t.Errorf("localURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBadEnvironmentNamesTheVariable(t *testing.T) {
	t.Setenv("SYNCD_REPLAY_WINDOW", "a month")
	code, _, stderr := runCmd(t, "serve")
	if code != 2 || !strings.Contains(stderr, `SYNCD_REPLAY_WINDOW="a month"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	t.Setenv("SYNCD_REPLAY_WINDOW", "")
	t.Setenv("SYNCD_BATCH_SIZE", "lots")
	code, _, stderr = runCmd(t, "serve")
	if code != 2 || !strings.Contains(stderr, `SYNCD_BATCH_SIZE="lots"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// A flag before a positional argument wins over the environment: the dlq
// commands parse flags around sequences.
func TestDLQFlagBeforeSequenceBeatsEnvironment(t *testing.T) {
	envDir, flagDir := filepath.Join(t.TempDir(), "env"), filepath.Join(t.TempDir(), "flag")
	t.Setenv("SYNCD_DATA_DIR", envDir)
	t.Setenv("NATS_URL", "")
	runCmd(t, "dlq", "show", "--data-dir", flagDir, "1")
	if _, err := os.Stat(filepath.Join(flagDir, "jetstream")); err != nil {
		t.Errorf("--data-dir before the sequence was not used: %v", err)
	}
	if _, err := os.Stat(envDir); err == nil {
		t.Errorf("the environment's data dir was used over the flag")
	}
}

func TestReplayEmptySinceIsAUsageError(t *testing.T) {
	code, _, stderr := runCmd(t, "replay", "--since", "")
	if code != 2 || !strings.Contains(stderr, "--since is empty") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
