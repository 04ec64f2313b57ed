package consumers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
)

var t0 = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func at(sec int) string { return syncdtest.Millis(t0.Add(time.Duration(sec) * time.Second)) }

func userData(id, email string, sec int) map[string]any {
	return map[string]any{
		"object": "user", "id": id, "email": email, "first_name": "F" + fmt.Sprint(sec), "last_name": "L",
		"email_verified": true, "metadata": map[string]any{"tz": "UTC"},
		"created_at": at(0), "updated_at": at(sec),
	}
}

func orgData(id, name string, sec int) map[string]any {
	return map[string]any{
		"object": "organization", "id": id, "name": name,
		"domains":    []any{map[string]any{"domain": "acme.test"}},
		"metadata":   map[string]any{"type": "team", "slug": "acme"},
		"created_at": at(0), "updated_at": at(sec),
	}
}

func membershipData(id, user, org, role, status string, sec int) map[string]any {
	return map[string]any{
		"object": "organization_membership", "id": id, "user_id": user, "organization_id": org,
		"status": status, "role": map[string]any{"slug": role}, "roles": []any{map[string]any{"slug": role}},
		"created_at": at(0), "updated_at": at(sec),
	}
}

func TestFixturesApplyOverHTTP(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	for _, f := range []string{"workos/user.created.json", "workos/organization.updated.json", "workos/organization_membership.created.json"} {
		b := syncdtest.Fixture(t, f)
		h.PostWorkOS(syncdtest.WithID(b, "event_"+f))
	}
	h.WaitSettled()
	q := queries.New()
	ctx := context.Background()
	u, err := q.UserGetByWorkOSID(ctx, h.Pool, "user_01E4ZCR3C56J083X43JQXF3JK5")
	if err != nil {
		t.Fatal(err)
	}
	if *u.Email != "marcelina.davis@example.com" || *u.FirstName != "Marcelina" || !u.EmailVerified || u.IsStub {
		t.Errorf("user row %+v", u)
	}
	o, err := q.OrganizationGetByWorkOSID(ctx, h.Pool, "org_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if err != nil {
		t.Fatal(err)
	}
	if *o.Name != "Acme Inc." || len(o.Domains) != 1 || o.Domains[0] != "foo-corp.com" || *o.StripeCustomerID != "cus_R9qWAGMQ6nGE7V" {
		t.Errorf("organization row %+v", o)
	}
	m, err := q.MembershipGetByWorkOSID(ctx, h.Pool, "om_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if err != nil {
		t.Fatal(err)
	}
	if *m.Role != "admin" || *m.Status != "active" || m.OrgID != o.ID || m.DeletedAt != nil {
		t.Errorf("membership row %+v", m)
	}
	// The membership's user never had its own event: it is a stub.
	stub, err := q.UserGetByWorkOSID(ctx, h.Pool, "user_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if err != nil || !stub.IsStub {
		t.Errorf("stub user: %+v %v", stub, err)
	}
}
