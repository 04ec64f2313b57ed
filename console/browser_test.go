package console_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/syncdtest"
)

// chromiumPath finds the browser scripts/chromium.sh installs.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// screenshots is where the page screenshots go: $SYNCD_TEST_ARTIFACTS,
// else a directory under the temp dir; never the repository.
func screenshots(t *testing.T) string {
	dir := os.Getenv("SYNCD_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "syncd-console-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium for the test. Without Chromium the
// test skips, saying how to install it, unless SYNCD_REQUIRE_CHROMIUM is
// set (CI installs it, so there a missing browser is a failure).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		msg := "chromium not found: the console's browser tests need it (scripts/chromium.sh installs it as root; or apt-get install chromium chromium-driver)"
		if os.Getenv("SYNCD_REQUIRE_CHROMIUM") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// step runs actions with a deadline, failing the test with what was
// being done.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, where(ctx))
	}
}

// where describes the page the browser is on, for a failure message.
func where(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return "page " + loc + ":\n" + body
}

// load clicks sel and waits for the page it loads.
func load(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, where(ctx))
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func exists(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(`+strconv.Quote(sel)+`) !== null`))
	if err != nil {
		t.Fatalf("query %s: %v", sel, err)
	}
	return n
}

func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(screenshots(t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// TestBrowser drives the console in headless Chromium as an operator
// would: log in, look at the overview, filter dead letters, retry one and
// see it applied in Postgres, purge one through its confirmation, look up
// an event, start a replay and watch it finish.
func TestBrowser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := browser(t)
	b.h.StartConsumer()
	for i := range 6 {
		id := "event_live" + strconv.Itoa(i)
		b.h.PostWorkOS(userCreated(id, "user_live"+strconv.Itoa(i), id+"@x.test"))
	}
	b.h.WaitSettled()
	retry := b.deadLetter("workos", "user.created", "event_retry", `ERROR: new row violates check constraint "users_no_poison"`, userCreated("event_retry", "user_retry", "retry@x.test"))
	stripeSeq := b.deadLetter("stripe", "customer.updated", "evt_stripe", "violated invariant: no customer", []byte(`{"id":"evt_stripe","type":"customer.updated","data":{"object":{"id":"cus_1"}}}`))
	purge := b.deadLetter("workos", "organization.updated", "event_purge", "undecodable payload: organization.updated without id", []byte(`{"id":"event_purge","event":"organization.updated","data":{}}`))

	// The page's own complaints (a CSP violation, a script error) fail
	// the test.
	var mu sync.Mutex
	var complaints []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				complaints = append(complaints, m.String())
				mu.Unlock()
			}
		}
	}()

	// Log in through the form the overview redirects to.
	step(t, ctx, "open the console", chromedp.Navigate(b.srv.URL+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shoot(t, ctx, "login")
	step(t, ctx, "type the token", chromedp.SendKeys(chromedp.CSS("#token"), testToken))
	load(t, ctx, "log in", "button[type=submit]")

	// Overview.
	step(t, ctx, "overview", chromedp.WaitVisible(chromedp.CSS("#source-workos svg.chart")))
	if got := text(t, ctx, "#source-workos figcaption"); !strings.Contains(got, "received 6") || !strings.Contains(got, "applied 6") {
		t.Errorf("workos chart caption %q, want 6 received and applied", got)
	}
	if got := text(t, ctx, "#dlq-depth"); !strings.Contains(got, "3") {
		t.Errorf("dead-letter depth %q, want 3", got)
	}
	if got := text(t, ctx, "#health-postgres"); !strings.Contains(got, "reachable") {
		t.Errorf("postgres health %q", got)
	}
	if !exists(t, ctx, "#source-workos polyline.received") {
		t.Errorf("no received line in the chart")
	}
	shoot(t, ctx, "overview")

	// Dead letters, filtered to one source.
	step(t, ctx, "dead letters", chromedp.Navigate(b.srv.URL+"/admin/deadletters"), chromedp.WaitVisible(chromedp.CSS("#dlq-count")))
	if got := text(t, ctx, "#dlq-count"); !strings.HasPrefix(got, "3 dead letter(s)") {
		t.Errorf("unfiltered count %q", got)
	}
	step(t, ctx, "choose stripe", chromedp.SetValue(chromedp.CSS("#filter-form select[name=source]"), "stripe"))
	load(t, ctx, "filter", "#filter-form button[type=submit]")
	if got := text(t, ctx, "#dlq-count"); !strings.HasPrefix(got, "1 dead letter(s) match") {
		t.Errorf("filtered count %q", got)
	}
	if !exists(t, ctx, "#dl-"+strconv.FormatUint(stripeSeq, 10)) || exists(t, ctx, "#dl-"+strconv.FormatUint(retry, 10)) {
		t.Errorf("the stripe filter shows the wrong rows")
	}
	shoot(t, ctx, "deadletters-filtered")

	// Retry one from its detail page; the consumer applies it.
	step(t, ctx, "dead letter detail", chromedp.Navigate(b.srv.URL+"/admin/deadletters/"+strconv.FormatUint(retry, 10)), chromedp.WaitVisible(chromedp.CSS("#payload")))
	if got := text(t, ctx, "#payload"); !strings.Contains(got, `"email": "retry@x.test"`) {
		t.Errorf("payload not pretty-printed: %q", got)
	}
	shoot(t, ctx, "deadletter")
	load(t, ctx, "retry", "#retry-one")
	if got := text(t, ctx, "#result"); !strings.Contains(got, "1 dead letter(s) republished") {
		t.Errorf("retry result %q", got)
	}
	shoot(t, ctx, "retried")
	syncdtest.Eventually(t, 30*time.Second, "the retried event is applied in Postgres", func() bool {
		var n int
		_ = b.h.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE workos_user_id = 'user_retry' AND email = 'retry@x.test'").Scan(&n)
		return n == 1
	})

	// Purge one: tick it, see the dry run, confirm.
	step(t, ctx, "dead letters again", chromedp.Navigate(b.srv.URL+"/admin/deadletters"), chromedp.WaitVisible(chromedp.CSS("#dlq-count")))
	step(t, ctx, "tick", chromedp.Click(chromedp.CSS("#dl-"+strconv.FormatUint(purge, 10)+" input[type=checkbox]")))
	load(t, ctx, "purge selected", "#purge-selected")
	if got := text(t, ctx, "#dryrun"); !strings.Contains(got, "Dry run: 1 of 1 would be removed for good") {
		t.Errorf("dry run %q", got)
	}
	shoot(t, ctx, "purge-confirm")
	if _, err := storeGet(t, b, purge); err != nil {
		t.Fatalf("purged before the confirmation: %v", err)
	}
	load(t, ctx, "confirm", "#confirm")
	if got := text(t, ctx, "#result"); !strings.Contains(got, "1 dead letter(s) removed") {
		t.Errorf("purge result %q", got)
	}
	if _, err := storeGet(t, b, purge); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("the confirmed purge left the dead letter: %v", err)
	}
	if _, err := storeGet(t, b, stripeSeq); err != nil {
		t.Errorf("purge took another dead letter: %v", err)
	}

	// Look up the retried event.
	b.h.WaitSettled()
	step(t, ctx, "events", chromedp.Navigate(b.srv.URL+"/admin/events?id="+url.QueryEscape("event_retry")), chromedp.WaitVisible(chromedp.CSS("#outcome")))
	if got := text(t, ctx, "#outcome"); got != "applied" {
		t.Errorf("outcome %q", got)
	}
	shoot(t, ctx, "event")

	// Start a replay; the page follows it until it is done.
	step(t, ctx, "jobs", chromedp.Navigate(b.srv.URL+"/admin/jobs"), chromedp.WaitVisible(chromedp.CSS("#replay-form")))
	step(t, ctx, "replay form", chromedp.SendKeys(chromedp.CSS("#replay-form input[name=since]"), "1h"), chromedp.SetValue(chromedp.CSS("#replay-form select[name=source]"), "workos"))
	shoot(t, ctx, "jobs")
	load(t, ctx, "start replay", "#start-replay")
	deadline := time.Now().Add(60 * time.Second)
	for {
		// The page's script polls the JSON API and reloads when the job
		// ends.
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("job-state")||{}).textContent || ""`))
		if err == nil && s == "done" && exists(t, ctx, "#job-result") {
			break
		}
		if err == nil && (s == "failed" || s == "stopped") {
			t.Fatalf("replay %s: %s", s, text(t, ctx, "#job"))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replay page did not show the job done (state %q)", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res := text(t, ctx, "#job-result")
	// 6 live events and the retried one, all in the ledger already.
	if !strings.Contains(res, `"events": 7`) || !strings.Contains(res, `"skipped": 7`) {
		t.Errorf("replay result %s", res)
	}
	shoot(t, ctx, "replay-done")

	mu.Lock()
	defer mu.Unlock()
	for _, c := range complaints {
		t.Errorf("browser console: %s", c)
	}
}
