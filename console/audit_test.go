package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/events"
)

// TestEventShowsItsAuditRows: an event's page and API show the changes it
// made, from audit_logs.
func TestEventShowsItsAuditRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := userCreated("event_audited", "user_audited", "audited@x.test")
	env, err := events.DecodeWorkOS(body)
	if err != nil {
		t.Fatal(err)
	}
	a, err := consumers.NewApplier(consumers.ApplierConfig{}, b.h.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(context.Background(), []consumers.Event{{Source: "workos", Envelope: env, Body: body, ReceivedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	c := b.client()
	r := c.bearer(http.MethodGet, "/admin/api/events/event_audited", nil)
	mustCode(t, r, http.StatusOK, "event API")
	d := decode[struct {
		Found []struct {
			Audit []struct {
				Action       string         `json:"action"`
				ResourceType string         `json:"resource_type"`
				ResourceID   string         `json:"resource_id"`
				NewValues    map[string]any `json:"new_values"`
			} `json:"audit"`
		} `json:"found"`
	}](t, r)
	if len(d.Found) != 1 || len(d.Found[0].Audit) != 1 {
		t.Fatalf("audit of the event: %s", r.body)
	}
	got := d.Found[0].Audit[0]
	if got.Action != "created" || got.ResourceType != "users" || got.ResourceID != "user_audited" || got.NewValues["email"] != "audited@x.test" {
		t.Errorf("audit row %+v", got)
	}
	c.login()
	page := c.get("/admin/events?id=event_audited")
	mustCode(t, page, http.StatusOK, "event page")
	if !strings.Contains(page.body, "Changes it made") || !strings.Contains(page.body, "users:user_audited") {
		t.Errorf("event page lacks its audit rows:\n%s", page.body)
	}
}
