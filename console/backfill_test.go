package console_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/backfill/backfilltest"
	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/syncdtest"
)

// A backfill started from the API publishes the provider's missed event;
// the consumer applies it.
func TestBackfillAPI(t *testing.T) {
	t.Parallel()
	const key = "sk_test_workos"
	api := backfilltest.WorkOS(t, key)
	api.Add(t, true, userCreated("event_missed", "user_missed", "missed@x.test"))
	b := setup(t, func(cfg *console.Config) {
		cfg.BackfillSource = func(p string) (backfill.Source, error) {
			if p != "workos" {
				return nil, errors.New("STRIPE_API_KEY is not set: backfill stripe needs a Stripe secret key")
			}
			return backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: key, BaseURL: api.URL})
		}
	})
	b.h.StartConsumer()
	c := b.client()
	for body, want := range map[string]string{
		`{"provider":"paypal","since":"1h"}`:              "provider",
		`{"provider":"workos"}`:                           "since is required",
		`{"provider":"workos","since":"1h","until":"2h"}`: "is not after since",
		`{"provider":"stripe","since":"1h"}`:              "STRIPE_API_KEY is not set",
	} {
		r := c.do(http.MethodPost, "/admin/api/backfills", strings.NewReader(body), map[string]string{"Authorization": "Bearer " + testToken})
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, want) {
			t.Errorf("backfill %s: %d %s, want 400 saying %q", body, r.code, r.body, want)
		}
	}
	r := c.bearer(http.MethodPost, "/admin/api/backfills", map[string]any{"provider": "workos", "since": "2h"})
	mustCode(t, r, http.StatusAccepted, "start backfill")
	loc := r.header.Get("Location")
	var jb struct {
		State  string `json:"state"`
		Error  string `json:"error"`
		Result struct {
			Listed    int `json:"listed"`
			Published int `json:"published"`
		} `json:"result"`
	}
	syncdtest.Eventually(t, 30*time.Second, "backfill finishes", func() bool {
		jb = decode[struct {
			State  string `json:"state"`
			Error  string `json:"error"`
			Result struct {
				Listed    int `json:"listed"`
				Published int `json:"published"`
			} `json:"result"`
		}](t, c.bearer(http.MethodGet, loc, nil))
		return jb.State != "running"
	})
	if jb.State != "done" || jb.Result.Listed != 1 || jb.Result.Published != 1 {
		t.Fatalf("backfill job %+v", jb)
	}
	syncdtest.Eventually(t, 30*time.Second, "the backfilled user is applied", func() bool {
		var n int
		_ = b.h.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE workos_user_id = 'user_missed'").Scan(&n)
		return n == 1
	})
}
