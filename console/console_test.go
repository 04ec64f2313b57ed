package console_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/syncdtest"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("  "+testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  console.Config
		want string
	}{
		{"no token", console.Config{}, "needs ADMIN_TOKEN or ADMIN_TOKEN_FILE"},
		{"both", console.Config{Token: testToken, TokenFile: file}, "both set"},
		{"short token", console.Config{Token: "hunter2"}, "7 characters: want at least 16"},
		{"missing file", console.Config{TokenFile: file + ".nope"}, "ADMIN_TOKEN_FILE"},
		{"webhook port", console.Config{Token: testToken, Addr: "127.0.0.1:8080", WebhookAddr: ":8080"}, "shares its port with the webhook listener"},
		{"bad addr", console.Config{Token: testToken, Addr: "nope"}, "ADMIN_ADDR"},
		{"file", console.Config{TokenFile: file}, ""},
		{"own port", console.Config{Token: testToken, Addr: "127.0.0.1:0", WebhookAddr: ":8080"}, ""},
	} {
		_, err := console.New(tc.cfg, h.Pool, h.NATS)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want it to say %q", tc.name, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%s: the error shows the token: %v", tc.name, err)
		}
	}
	if _, err := console.New(console.Config{Token: testToken}, nil, h.NATS); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("no pool: %v", err)
	}
}

func TestTokenFromFileLogsIn(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := console.New(console.Config{TokenFile: file, Addr: "127.0.0.1:0"}, h.Pool, h.NATS)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown(context.Background())
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.Addr()+"/admin/api/overview", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("bearer from the token file: %d", r.StatusCode)
	}
}

func TestNothingServedWithoutToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seq := b.deadLetter("workos", "user.created", "event_a", "boom", userCreated("event_a", "user_a", "a@x.test"))
	anon := b.client()
	for _, path := range []string{"/admin/", "/admin/deadletters", "/admin/deadletters/" + strconv.FormatUint(seq, 10), "/admin/events?id=event_a", "/admin/jobs", "/admin/nope", "/elsewhere"} {
		r := anon.get(path)
		mustCode(t, r, http.StatusSeeOther, "GET "+path)
		if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "/admin/login?next=") {
			t.Errorf("GET %s: redirect to %q, want the login page", path, loc)
		}
		if strings.Contains(r.body, "boom") || strings.Contains(r.body, "user.created") {
			t.Errorf("GET %s without a token shows data", path)
		}
	}
	for _, path := range []string{"/admin/api/overview", "/admin/api/deadletters", "/admin/api/deadletters/1", "/admin/api/events/event_a", "/admin/api/jobs"} {
		r := anon.get(path)
		mustCode(t, r, http.StatusUnauthorized, "GET "+path)
		if r.header.Get("WWW-Authenticate") == "" || !strings.Contains(r.body, `"unauthorized"`) {
			t.Errorf("GET %s: %v %s", path, r.header, r.body)
		}
	}
	mustCode(t, anon.post("/admin/deadletters/purge", url.Values{"seq": {"1"}, "confirm": {"yes"}}), http.StatusUnauthorized, "POST without a session")
	wrong := anon.do(http.MethodGet, "/admin/api/overview", nil, map[string]string{"Authorization": "Bearer " + testToken + "x"})
	mustCode(t, wrong, http.StatusUnauthorized, "wrong bearer")
	wrong = anon.do(http.MethodGet, "/admin/", nil, map[string]string{"Authorization": "Basic " + testToken})
	mustCode(t, wrong, http.StatusUnauthorized, "not a bearer")
	forged := anon.do(http.MethodGet, "/admin/", nil, map[string]string{"Cookie": "syncd_admin=forged"})
	mustCode(t, forged, http.StatusSeeOther, "forged session cookie")
	mustCode(t, anon.bearer(http.MethodGet, "/admin/api/overview", nil), http.StatusOK, "right bearer")
	if _, err := storeGet(t, b, seq); err != nil {
		t.Errorf("the dead letter went without a token: %v", err)
	}
}

func storeGet(t *testing.T, b *bundle, seq uint64) (deadletter.Letter, error) {
	t.Helper()
	st, err := deadletter.Open(context.Background(), b.h.NATS.JS)
	if err != nil {
		t.Fatal(err)
	}
	return st.Get(context.Background(), seq)
}

func TestLogin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.client()
	page := c.get("/admin/login")
	mustCode(t, page, http.StatusOK, "login page")
	tok := csrfOf(t, page.body)

	bad := c.post("/admin/login", url.Values{"csrf": {tok}, "token": {"wrong-token-wrong-token"}})
	mustCode(t, bad, http.StatusUnauthorized, "wrong token")
	if !strings.Contains(bad.body, "Wrong token") || strings.Contains(bad.header.Get("Set-Cookie"), "syncd_admin=") {
		t.Errorf("wrong token: %v\n%s", bad.header, bad.body)
	}
	noCSRF := c.post("/admin/login", url.Values{"token": {testToken}})
	mustCode(t, noCSRF, http.StatusForbidden, "login without the form's CSRF token")
	// A form posted from another site carries its Origin.
	cross := c.do(http.MethodPost, "/admin/login", strings.NewReader(url.Values{"csrf": {tok}, "token": {testToken}}.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.test"})
	mustCode(t, cross, http.StatusForbidden, "login from another origin")

	ok := c.post("/admin/login", url.Values{"csrf": {tok}, "token": {testToken}, "next": {"/admin/deadletters?source=stripe"}})
	mustCode(t, ok, http.StatusSeeOther, "login")
	if loc := ok.header.Get("Location"); loc != "/admin/deadletters?source=stripe" {
		t.Errorf("redirect after login to %q", loc)
	}
	ck := ""
	for _, v := range ok.header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "syncd_admin=") {
			ck = v
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/admin/"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("session cookie %q lacks %s", ck, attr)
		}
	}
	if strings.Contains(ck, testToken) {
		t.Errorf("the session cookie carries the token")
	}
	mustCode(t, c.get("/admin/"), http.StatusOK, "overview with the session")

	// An open redirect is refused.
	c2 := b.client()
	p2 := c2.get("/admin/login")
	r := c2.post("/admin/login", url.Values{"csrf": {csrfOf(t, p2.body)}, "token": {testToken}, "next": {"//evil.test/admin/"}})
	if loc := r.header.Get("Location"); loc != "/admin/" {
		t.Errorf("next=//evil.test: redirect to %q", loc)
	}

	// Logging out ends the session.
	c.login()
	mustCode(t, c.post("/admin/logout", url.Values{"csrf": {c.csrf}}), http.StatusSeeOther, "logout")
	mustCode(t, c.get("/admin/"), http.StatusSeeOther, "overview after logout")

	for _, secret := range []string{testToken, "wrong-token-wrong-token"} {
		if strings.Contains(b.log.String(), secret) {
			t.Errorf("the log shows a token: %s", b.log.String())
		}
	}
	if !strings.Contains(b.log.String(), "admin login failed") {
		t.Errorf("failed login not logged: %s", b.log.String())
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seq := b.deadLetter("workos", "user.created", "event_a", "boom", userCreated("event_a", "user_a", "a@x.test"))
	c := b.client()
	c.login()
	s := strconv.FormatUint(seq, 10)
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"missing", url.Values{"seq": {s}, "confirm": {"yes"}}, nil},
		{"wrong", url.Values{"seq": {s}, "confirm": {"yes"}, "csrf": {c.csrf + "x"}}, nil},
		{"other origin", url.Values{"seq": {s}, "confirm": {"yes"}, "csrf": {c.csrf}}, map[string]string{"Origin": "https://evil.test"}},
	} {
		hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		r := c.do(http.MethodPost, "/admin/deadletters/purge", strings.NewReader(tc.form.Encode()), hdr)
		mustCode(t, r, http.StatusForbidden, "purge with CSRF token "+tc.name)
		if !strings.Contains(r.body, "CSRF") {
			t.Errorf("%s: %s", tc.name, r.body)
		}
	}
	api := c.do(http.MethodPost, "/admin/api/deadletters/purge", strings.NewReader(`{"seqs":[`+s+`],"confirm":true}`), map[string]string{"Content-Type": "application/json"})
	mustCode(t, api, http.StatusForbidden, "API with the cookie and no X-CSRF-Token")
	mustCode(t, c.post("/admin/jobs/replay", url.Values{"since": {"1h"}}), http.StatusForbidden, "replay without CSRF")
	mustCode(t, c.post("/admin/logout", url.Values{}), http.StatusForbidden, "logout without CSRF")
	if _, err := storeGet(t, b, seq); err != nil {
		t.Fatalf("a refused purge removed the dead letter: %v", err)
	}
	// With the token, the same purge goes through its confirmation.
	conf := c.post("/admin/deadletters/purge", url.Values{"seq": {s}, "csrf": {c.csrf}})
	mustCode(t, conf, http.StatusOK, "purge with CSRF")
	if !strings.Contains(conf.body, "Dry run: 1 of 1 would be") {
		t.Errorf("no confirmation step:\n%s", conf.body)
	}
	if _, err := storeGet(t, b, seq); err != nil {
		t.Fatalf("the confirmation step purged: %v", err)
	}
	done := c.post("/admin/deadletters/purge", url.Values{"seq": {s}, "csrf": {c.csrf}, "confirm": {"yes"}})
	mustCode(t, done, http.StatusOK, "confirmed purge")
	if _, err := storeGet(t, b, seq); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("confirmed purge left the dead letter: %v", err)
	}
	// The API with the cookie works with the header; with a Bearer token
	// no CSRF token is needed (no browser sends one by itself).
	seq2 := b.deadLetter("workos", "user.created", "event_b", "boom", userCreated("event_b", "user_b", "b@x.test"))
	s2 := strconv.FormatUint(seq2, 10)
	r := c.do(http.MethodPost, "/admin/api/deadletters/purge", strings.NewReader(`{"seqs":[`+s2+`],"dry_run":true}`), map[string]string{"Content-Type": "application/json", "X-CSRF-Token": c.csrf})
	mustCode(t, r, http.StatusOK, "API dry run with X-CSRF-Token")
	mustCode(t, b.client().bearer(http.MethodPost, "/admin/api/deadletters/purge", map[string]any{"seqs": []uint64{seq2}, "confirm": true}), http.StatusOK, "bearer purge")
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.deadLetter("workos", "user.created", "event_a", "boom", userCreated("event_a", "user_a", "a@x.test"))
	c := b.client()
	anon := b.client()
	c.login()
	pages := map[string]resp{
		"login":     anon.get("/admin/login"),
		"401":       anon.get("/admin/api/overview"),
		"redirect":  anon.get("/admin/"),
		"static":    anon.get("/admin/static/console.css"),
		"overview":  c.get("/admin/"),
		"deadlist":  c.get("/admin/deadletters"),
		"dead":      c.get("/admin/deadletters/1"),
		"events":    c.get("/admin/events?id=event_a"),
		"jobs":      c.get("/admin/jobs"),
		"api":       c.get("/admin/api/overview"),
		"not found": c.get("/admin/nope"),
	}
	for name, r := range pages {
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", name, csp)
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s: %s %q, want %q", name, k, got, want)
			}
		}
		if name != "static" && r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", name, r.header.Get("Cache-Control"))
		}
		if strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			// The CSP would block inline code anyway; none is written.
			for _, bad := range []string{"<script>", " style=", " onclick=", " onload=", "javascript:"} {
				if strings.Contains(r.body, bad) {
					t.Errorf("%s: page has inline %q", name, bad)
				}
			}
		}
	}
}

func TestHostileDataIsEscaped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := "evt_\x1b[31m<script>alert(1)</script>\u202e"
	body := []byte(`{"id":"evt_x","type":"customer.updated","data":{"object":{"name":"</pre><script>alert(2)</script>","esc":"\u001b[2J"}}}`)
	seq := b.deadLetter("stripe", "customer.updated", id, `<img src=x onerror=alert(3)> failed`, body)
	c := b.client()
	c.login()
	for _, path := range []string{"/admin/deadletters", "/admin/deadletters/" + strconv.FormatUint(seq, 10), "/admin/events?id=" + url.QueryEscape(id)} {
		r := c.get(path)
		mustCode(t, r, http.StatusOK, path)
		for _, bad := range []string{"<script>alert", "<img src=x", "\x1b", "\u202e"} {
			if strings.Contains(r.body, bad) {
				t.Errorf("%s: the page carries %q unescaped", path, bad)
			}
		}
		if !strings.Contains(r.body, `\x1b[31m&lt;script&gt;alert(1)&lt;/script&gt;\u202e`) {
			t.Errorf("%s: the hostile id is not shown escaped:\n%s", path, r.body)
		}
	}
	detail := c.get("/admin/deadletters/" + strconv.FormatUint(seq, 10))
	for _, want := range []string{"&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;", "&lt;img src=x onerror=alert(3)&gt;", `\u001b[2J`, "Payload <small>(json"} {
		if !strings.Contains(detail.body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	// The JSON API escapes markup too, and round-trips the id.
	api := c.bearer(http.MethodGet, "/admin/api/deadletters/"+strconv.FormatUint(seq, 10), nil)
	if strings.Contains(api.body, "<script>") {
		t.Errorf("API answer has raw markup: %s", api.body)
	}
	got := decode[struct {
		EventID string `json:"event_id"`
	}](t, api)
	if got.EventID != id {
		t.Errorf("API event id %q, want %q", got.EventID, id)
	}
}

type listAnswer struct {
	Total   int `json:"total"`
	Page    int `json:"page"`
	Pages   int `json:"pages"`
	Letters []struct {
		Seq     uint64 `json:"seq"`
		Source  string `json:"source"`
		EventID string `json:"event_id"`
	} `json:"letters"`
}

func TestDeadLetterAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.h.StartConsumer()
	a := b.deadLetter("workos", "user.created", "event_a", "violates users_no_poison", userCreated("event_a", "user_a", "a@x.test"))
	s1 := b.deadLetter("stripe", "customer.updated", "evt_1", "no customer", []byte(`{"id":"evt_1","type":"customer.updated","data":{"object":{}}}`))
	s2 := b.deadLetter("stripe", "customer.updated", "evt_2", "no customer", []byte(`{"id":"evt_2","type":"customer.updated","data":{"object":{}}}`))
	s3 := b.deadLetter("stripe", "customer.deleted", "evt_3", "NO CUSTOMER at all", []byte(`not json`))
	c := b.client()

	// Filters as syncd dlq list, newest first, two a page (PageSize 2).
	l := decode[listAnswer](t, c.bearer(http.MethodGet, "/admin/api/deadletters?source=stripe", nil))
	if l.Total != 3 || l.Pages != 2 || len(l.Letters) != 2 || l.Letters[0].Seq != s3 || l.Letters[1].Seq != s2 {
		t.Errorf("source=stripe page 1: %+v", l)
	}
	l = decode[listAnswer](t, c.bearer(http.MethodGet, "/admin/api/deadletters?source=stripe&page=2", nil))
	if len(l.Letters) != 1 || l.Letters[0].Seq != s1 {
		t.Errorf("page 2: %+v", l)
	}
	l = decode[listAnswer](t, c.bearer(http.MethodGet, "/admin/api/deadletters?type=customer.updated&error=CUSTOMER&per_page=10", nil))
	if l.Total != 2 {
		t.Errorf("type and error: %+v", l)
	}
	l = decode[listAnswer](t, c.bearer(http.MethodGet, "/admin/api/deadletters?since=1h&until="+url.QueryEscape(time.Now().Add(time.Minute).Format(time.RFC3339)), nil))
	if l.Total != 4 {
		t.Errorf("since/until: %+v", l)
	}
	for q, want := range map[string]string{"since=yesterday": "since", "source=work*": "no spaces or wildcards", "since=1h&until=2h": "is before since"} {
		r := c.bearer(http.MethodGet, "/admin/api/deadletters?"+q, nil)
		mustCode(t, r, http.StatusBadRequest, q)
		if !strings.Contains(r.body, want) {
			t.Errorf("%s: %s", q, r.body)
		}
	}

	// Detail: headers and the payload.
	d := decode[struct {
		Headers     map[string][]string `json:"headers"`
		Payload     string              `json:"payload"`
		PayloadKind string              `json:"payload_kind"`
	}](t, c.bearer(http.MethodGet, "/admin/api/deadletters/"+strconv.FormatUint(s3, 10), nil))
	if d.PayloadKind != "text" || d.Payload != "not json" || d.Headers["Syncd-Error"][0] != "NO CUSTOMER at all" {
		t.Errorf("detail %+v", d)
	}
	mustCode(t, c.bearer(http.MethodGet, "/admin/api/deadletters/999", nil), http.StatusNotFound, "unknown sequence")
	mustCode(t, c.bearer(http.MethodGet, "/admin/api/deadletters/abc", nil), http.StatusBadRequest, "not a sequence")

	// Bulk actions: dry run first; purge of all matching needs confirm.
	r := c.bearer(http.MethodPost, "/admin/api/deadletters/purge", map[string]any{"all": true, "source": "stripe", "type": "customer.updated", "dry_run": true})
	mustCode(t, r, http.StatusOK, "dry run")
	dry := decode[struct {
		DryRun    bool   `json:"dry_run"`
		Total     int    `json:"total"`
		Succeeded int    `json:"succeeded"`
		MaxSeq    uint64 `json:"max_seq"`
	}](t, r)
	if !dry.DryRun || dry.Total != 2 || dry.Succeeded != 2 || dry.MaxSeq != s2 {
		t.Errorf("dry run %+v", dry)
	}
	r = c.bearer(http.MethodPost, "/admin/api/deadletters/purge", map[string]any{"all": true, "source": "stripe", "type": "customer.updated"})
	mustCode(t, r, http.StatusBadRequest, "purge without confirm")
	if !strings.Contains(r.body, "needs confirm") {
		t.Errorf("purge without confirm: %s", r.body)
	}
	for body, want := range map[string]string{
		`{"seqs":[999]}`:                     "no dead letter with sequence 999",
		`{"all":true,"source":"nope"}`:       "no dead letters match",
		`{"seqs":[1],"all":true}`:            "not both",
		`{}`:                                 "name the dead letters",
		`{"seqs":[1],"source":"workos"}`:     "drop the filters",
		`{"sequences":[1]}`:                  "unknown field",
		`{"all":true,"since":"tomorrowish"}`: "since",
	} {
		r := c.do(http.MethodPost, "/admin/api/deadletters/retry", strings.NewReader(body), map[string]string{"Authorization": "Bearer " + testToken})
		if r.code < 400 || r.code >= 500 || !strings.Contains(r.body, want) {
			t.Errorf("retry %s: %d %s, want a 4xx saying %q", body, r.code, r.body, want)
		}
	}
	r = c.bearer(http.MethodPost, "/admin/api/deadletters/purge", map[string]any{"all": true, "source": "stripe", "type": "customer.updated", "confirm": true, "max_seq": dry.MaxSeq})
	mustCode(t, r, http.StatusOK, "confirmed purge")
	l = decode[listAnswer](t, c.bearer(http.MethodGet, "/admin/api/deadletters?per_page=10", nil))
	if l.Total != 2 || l.Letters[0].Seq != s3 || l.Letters[1].Seq != a {
		t.Errorf("after purge: %+v", l)
	}

	// Retry one: republished, applied by the consumer, gone from DEADLETTER.
	r = c.bearer(http.MethodPost, "/admin/api/deadletters/retry", map[string]any{"seqs": []uint64{a}})
	mustCode(t, r, http.StatusOK, "retry one")
	syncdtest.Eventually(t, 30*time.Second, "the retried user is applied", func() bool {
		var n int
		_ = b.h.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE workos_user_id = 'user_a'").Scan(&n)
		return n == 1
	})
	if _, err := storeGet(t, b, a); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("retried dead letter still there: %v", err)
	}

	// The event API finds it in the ledger, with the row it wrote.
	b.h.WaitSettled()
	ev := decode[struct {
		Found []struct {
			Ledger struct {
				Outcome   string `json:"outcome"`
				StreamSeq int64  `json:"stream_seq"`
			} `json:"ledger"`
			Stream *struct {
				Subject string `json:"subject"`
				Payload string `json:"payload"`
			} `json:"stream"`
			Rows []struct {
				Table string `json:"table"`
				Key   string `json:"key"`
			} `json:"rows"`
		} `json:"found"`
	}](t, c.bearer(http.MethodGet, "/admin/api/events/event_a", nil))
	if len(ev.Found) != 1 || ev.Found[0].Ledger.Outcome != "applied" || ev.Found[0].Stream == nil ||
		ev.Found[0].Stream.Subject != "webhooks.workos.user.created" || !strings.Contains(ev.Found[0].Stream.Payload, "a@x.test") ||
		len(ev.Found[0].Rows) != 1 || ev.Found[0].Rows[0].Table != "users" || ev.Found[0].Rows[0].Key != "user_a" {
		t.Errorf("event lookup %+v", ev)
	}
	mustCode(t, c.bearer(http.MethodGet, "/admin/api/events/event_nope", nil), http.StatusNotFound, "unknown event")
	mustCode(t, c.bearer(http.MethodGet, "/admin/api/events/event_a?source=paypal", nil), http.StatusBadRequest, "unknown source")
}

type jobAnswer struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Error    string `json:"error"`
	Progress struct {
		Done, Total int
	} `json:"progress"`
	Result struct {
		Events  int `json:"events"`
		Applied int `json:"applied"`
		Skipped int `json:"skipped"`
	} `json:"result"`
}

func TestReplayAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.h.StartConsumer()
	for i := range 5 {
		id := "event_r" + strconv.Itoa(i)
		b.h.PostWorkOS(userCreated(id, "user_r"+strconv.Itoa(i), id+"@x.test"))
	}
	b.h.WaitSettled()
	// A restore lost one user and its ledger row: replay applies it again.
	if _, err := b.h.Pool.Exec(context.Background(), "DELETE FROM users WHERE workos_user_id = 'user_r2'; DELETE FROM webhook_events WHERE event_id = 'event_r2'"); err != nil {
		t.Fatal(err)
	}
	c := b.client()
	for body, want := range map[string]string{
		`{}`:                               "give the start of the window",
		`{"since":"1h","from_seq":1}`:      "give one",
		`{"since":"soon"}`:                 "since",
		`{"from_seq":1,"source":"paypal"}`: "unknown source",
		`{"from_seq":1,"type":"a.>.b"}`:    "must be the last token",
		`{"from_seq":"x"}`:                 "from sequence",
	} {
		r := c.do(http.MethodPost, "/admin/api/replays", strings.NewReader(body), map[string]string{"Authorization": "Bearer " + testToken})
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, want) {
			t.Errorf("replay %s: %d %s, want 400 saying %q", body, r.code, r.body, want)
		}
	}
	r := c.bearer(http.MethodPost, "/admin/api/replays", map[string]any{"from_seq": 1, "source": "workos"})
	mustCode(t, r, http.StatusAccepted, "start replay")
	jb := decode[jobAnswer](t, r)
	loc := r.header.Get("Location")
	syncdtest.Eventually(t, 30*time.Second, "replay finishes", func() bool {
		jb = decode[jobAnswer](t, c.bearer(http.MethodGet, loc, nil))
		return jb.State != "running"
	})
	if jb.State != "done" || jb.Result.Events != 5 || jb.Result.Applied != 1 || jb.Result.Skipped != 4 || jb.Progress.Done != 5 {
		t.Errorf("replay job %+v", jb)
	}
	var n int
	_ = b.h.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE workos_user_id = 'user_r2'").Scan(&n)
	if n != 1 {
		t.Errorf("replay did not restore user_r2")
	}
	list := decode[struct{ Jobs []jobAnswer }](t, c.bearer(http.MethodGet, "/admin/api/jobs", nil))
	if len(list.Jobs) != 1 || list.Jobs[0].ID != jb.ID {
		t.Errorf("jobs %+v", list)
	}
	// An empty window fails the job with the CLI's message.
	r = c.bearer(http.MethodPost, "/admin/api/replays", map[string]any{"from_seq": 1, "source": "stripe"})
	mustCode(t, r, http.StatusAccepted, "start empty replay")
	loc = r.header.Get("Location")
	syncdtest.Eventually(t, 30*time.Second, "empty replay finishes", func() bool {
		jb = decode[jobAnswer](t, c.bearer(http.MethodGet, loc, nil))
		return jb.State != "running"
	})
	if jb.State != "failed" || !strings.Contains(jb.Error, "no events in the window") {
		t.Errorf("empty replay %+v", jb)
	}
	mustCode(t, c.bearer(http.MethodPost, "/admin/api/backfills", map[string]any{"provider": "workos", "since": "1h"}), http.StatusNotImplemented, "backfill without sources")
}
