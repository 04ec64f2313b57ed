package workosapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/workosapi"
	"github.com/syncd/syncd/workosapi/workosfake"
)

func newClient(t *testing.T, fake *workosfake.Server, reg prometheus.Registerer) *workosapi.Client {
	t.Helper()
	c, err := workosapi.New(workosapi.Config{
		APIKey: workosfake.APIKey, BaseURL: fake.URL,
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond,
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureUserAdoptsTheUserHoldingTheEmail(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{})
	existing := fake.AddUser(workosfake.UserSpec{Email: "Ana@Example.com", FirstName: "Ana"})
	c := newClient(t, fake, nil)

	u, created, err := c.EnsureUser(context.Background(), workosapi.CreateUserOpts{Email: "ana@example.com", FirstName: "Ana"})
	if err != nil {
		t.Fatal(err)
	}
	if created || u.ID != existing.ID {
		t.Fatalf("EnsureUser = %s created=%v; want the existing %s adopted", u.ID, created, existing.ID)
	}
	if n := len(fake.Users()); n != 1 {
		t.Fatalf("%d users in WorkOS, want 1", n)
	}
	// The adoption went through WorkOS's refusal, decoded as such.
	if fake.CountCalls(http.MethodPost, "/user_management/users", http.StatusBadRequest) != 1 {
		t.Fatalf("calls %v: want one 400 from the create", fake.Calls())
	}
	_, err = c.CreateUser(context.Background(), workosapi.CreateUserOpts{Email: "ana@example.com"})
	if !workosapi.IsEmailTaken(err) {
		t.Fatalf("CreateUser of a taken email: %v; want IsEmailTaken", err)
	}
	var apiErr *workosapi.Error
	if !errors.As(err, &apiErr) || apiErr.RequestID == "" || apiErr.Code != workosapi.CodeUserCreation || apiErr.Endpoint != "POST /user_management/users" {
		t.Fatalf("error %#v: want code, request id and endpoint", apiErr)
	}
}

// WorkOS created the organization but the answer was lost (500): the
// retry meets the taken external id and adopts what the first made.
func TestEnsureOrganizationAdoptsAfterALostAnswer(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{ErrorEvery: 2, ErrorAfterWrite: true})
	c := newClient(t, fake, nil)
	o, created, err := c.EnsureOrganization(context.Background(), workosapi.CreateOrganizationOpts{Name: "Ana's Account", ExternalID: "personal:user_1"})
	if err != nil {
		t.Fatal(err)
	}
	orgs := fake.Organizations()
	if len(orgs) != 1 || orgs[0].ID != o.ID || created {
		t.Fatalf("organizations %+v, got %s created=%v; want the one the lost answer made, adopted", orgs, o.ID, created)
	}
	if fake.CountCalls(http.MethodPost, "/organizations", http.StatusInternalServerError) != 1 {
		t.Fatalf("calls %v: want the create's 500", fake.Calls())
	}
}

func TestEnsureMembershipListsFirst(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{})
	u := fake.AddUser(workosfake.UserSpec{Email: "bo@example.com"})
	o := fake.AddOrganization("Bo's Account", "personal:"+u.ID, nil)
	c := newClient(t, fake, nil)
	ctx := context.Background()
	m1, created1, err := c.EnsureMembership(ctx, u.ID, o.ID, "owner")
	if err != nil || !created1 {
		t.Fatalf("first EnsureMembership: %v created=%v", err, created1)
	}
	m2, created2, err := c.EnsureMembership(ctx, u.ID, o.ID, "owner")
	if err != nil || created2 || m2.ID != m1.ID {
		t.Fatalf("second EnsureMembership: %v created=%v id %s; want %s adopted", err, created2, m2.ID, m1.ID)
	}
	if n := len(fake.Memberships()); n != 1 {
		t.Fatalf("%d memberships, want 1", n)
	}
	if _, _, err := c.EnsureMembership(ctx, u.ID, o.ID+"x", "owner"); err == nil || workosapi.IsTransient(err) {
		t.Fatalf("membership in a missing organization: %v; want a permanent error", err)
	}
	if _, err := c.CreateMembership(ctx, u.ID, o.ID, "nonexistent"); err == nil || workosapi.IsTransient(err) {
		t.Fatalf("membership with a role the environment lacks: %v; want a permanent error", err)
	}
}

func TestTransportHonoursRetryAfterAndCountsEveryAttempt(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{RateLimitEvery: 2, RetryAfter: "3"})
	reg := prometheus.NewRegistry()
	c := newClient(t, fake, reg)
	waits := workosapi.RecordSleeps(c)
	ctx := context.Background()
	// Request 1 passes, request 2 is the 429, its retry (3) passes.
	if _, err := c.GetOrganizationByExternalID(ctx, "nope"); !workosapi.IsNotFound(err) {
		t.Fatalf("lookup of a missing organization: %v; want not found", err)
	}
	if _, err := c.CreateOrganization(ctx, workosapi.CreateOrganizationOpts{Name: "X"}); err != nil {
		t.Fatalf("create after a 429: %v", err)
	}
	if len(*waits) != 1 || (*waits)[0] != 3*time.Second {
		t.Fatalf("waits %v; want the 3s Retry-After once", *waits)
	}
	if got := counter(t, reg, "POST /organizations", "429"); got != 1 {
		t.Fatalf("429 attempts counted %v, want 1", got)
	}
	if got := counter(t, reg, "GET /organizations/external_id/{external_id}", "404"); got != 1 {
		t.Fatalf("404 lookups counted %v, want 1", got)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, endpoint, status string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "syncd_workos_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["endpoint"] == endpoint && labels["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no syncd_workos_calls_total{endpoint=%q,status=%q}", endpoint, status)
	return 0
}

// A Retry-After longer than a worker should wait is handed back as the
// 429: transient, for the caller to retry later.
func TestTransportHandsBackLongRetryAfter(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{RateLimitEvery: 1, RetryAfter: "120"})
	c := newClient(t, fake, nil)
	waits := workosapi.RecordSleeps(c)
	_, err := c.CreateMagicAuth(context.Background(), "a@example.com")
	if !workosapi.IsTransient(err) {
		t.Fatalf("CreateMagicAuth under a 120s Retry-After: %v; want a transient error", err)
	}
	if len(*waits) != 0 || len(fake.Calls()) != 1 {
		t.Fatalf("waits %v, calls %v: want no wait and one call", *waits, fake.Calls())
	}
	if len(fake.MagicAuths()) != 0 {
		t.Fatal("a rate-limited call must not have been applied")
	}
}

func TestTransportGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{ErrorEvery: 1})
	c := newClient(t, fake, nil)
	workosapi.RecordSleeps(c)
	_, err := c.GetUser(context.Background(), "user_01ABCDEFGHJKMNPQRSTVWXYZ01")
	if !workosapi.IsTransient(err) {
		t.Fatalf("GetUser against a failing WorkOS: %v; want transient", err)
	}
	if n := len(fake.Calls()); n != workosapi.MaxAttemptsDefault {
		t.Fatalf("%d attempts, want %d", n, workosapi.MaxAttemptsDefault)
	}
}

func TestWritesArePacedUnderTheLimit(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{})
	c, err := workosapi.New(workosapi.Config{APIKey: workosfake.APIKey, BaseURL: fake.URL, WriteRate: 10, WriteBurst: 2})
	if err != nil {
		t.Fatal(err)
	}
	waits := workosapi.RecordSleeps(c)
	ctx := context.Background()
	for range 4 {
		if _, err := c.CreateMagicAuth(ctx, "a@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := c.GetOrganizationByExternalID(ctx, "x"); !workosapi.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	// Burst 2 passes; the 3rd and 4th writes wait their turn (~0.1s and
	// ~0.2s at 10/s); reads never wait.
	if len(*waits) != 2 || (*waits)[0] <= 0 || (*waits)[1] <= (*waits)[0] {
		t.Fatalf("waits %v; want two growing waits for writes 3 and 4", *waits)
	}
}

// Unpaced (tests against the fake only) sends writes without waiting,
// whatever the rate would have been; the other checks still apply.
func TestUnpacedWritesNeverWait(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{})
	cfg := workosapi.Config{APIKey: workosfake.APIKey, BaseURL: fake.URL, Unpaced: true, WriteRate: 500, WriteBurst: 1}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	if err := (workosapi.Config{APIKey: "k", Unpaced: true, MaxInFlight: 1000}).Check(); err == nil {
		t.Error("Unpaced let MaxInFlight 1000 through")
	}
	c, err := workosapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waits := workosapi.RecordSleeps(c)
	for range 5 {
		if _, err := c.CreateMagicAuth(context.Background(), "a@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if len(*waits) != 0 {
		t.Fatalf("waits %v", *waits)
	}
}

func TestConfigRefusesLimitsAboveWorkOS(t *testing.T) {
	for _, cfg := range []workosapi.Config{
		{APIKey: "k", WriteRate: 60},
		{APIKey: "k", WriteRate: 45, WriteBurst: 100},
		{},
		{APIKey: "k", BaseURL: "ftp://x"},
	} {
		if err := cfg.Check(); err == nil {
			t.Errorf("Config %+v accepted", cfg)
		}
	}
}

func TestEndpoint(t *testing.T) {
	for path, want := range map[string]string{
		"/user_management/users/user_01E4ZCR3C56J083X43JQXF3JK5":     "GET /user_management/users/{id}",
		"/user_management/users/external_id/abc-123":                 "GET /user_management/users/external_id/{external_id}",
		"/organizations/external_id/personal:user_01E4ZCR3C56J083X4": "GET /organizations/external_id/{external_id}",
		"/organizations/org_01EHWNCE74X7JSDV0X3SZ3KJNY":              "GET /organizations/{id}",
		"/user_management/organization_memberships":                  "GET /user_management/organization_memberships",
	} {
		if got := workosapi.Endpoint("GET", path); got != want {
			t.Errorf("Endpoint(%s) = %s, want %s", path, got, want)
		}
	}
}
