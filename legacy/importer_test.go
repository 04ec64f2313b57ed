package legacy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/legacy"
	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
	"github.com/syncd/syncd/workosapi"
	"github.com/syncd/syncd/workosapi/workosfake"
)

// newAPI is a client of the fake without write pacing (the fake has no
// write limit; 1,000 users at WorkOS's 40 writes a second would take over
// a minute) and with short backoffs; 429s are still retried as in
// production.
func newAPI(t *testing.T, fake *workosfake.Server) *workosapi.Client {
	t.Helper()
	api, err := workosapi.New(workosapi.Config{
		APIKey: workosfake.APIKey, BaseURL: fake.URL, Unpaced: true, MaxInFlight: 16,
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// legacyTable makes the Clerk-era app's users table, with a Connect
// account for the experts, in the test's database.
func legacyTable(t *testing.T, pool *pgxpool.Pool, ps []person) *legacy.LegacyDB {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA legacy;
		CREATE TABLE legacy.users (id serial PRIMARY KEY, clerk_user_id text UNIQUE NOT NULL,
			stripe_customer_id text, stripe_connect_account_id text)`); err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		var connect *string
		if p.expert {
			c := fmt.Sprintf("acct_%d", i)
			connect = &c
		}
		if _, err := pool.Exec(ctx, `INSERT INTO legacy.users (clerk_user_id, stripe_customer_id, stripe_connect_account_id) VALUES ($1, $2, $3)`,
			p.id, fmt.Sprintf("cus_%d", i), connect); err != nil {
			t.Fatal(err)
		}
	}
	cfg := pool.Config().ConnString()
	ldb, err := legacy.OpenLegacyDB(ctx, cfg, "legacy.users")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ldb.Close)
	return ldb
}

func newImporter(t *testing.T, cfg legacy.Config, pool *pgxpool.Pool, api *workosapi.Client) *legacy.Importer {
	t.Helper()
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	im, err := legacy.New(cfg, pool, api)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func mapRows(t *testing.T, pool *pgxpool.Pool) map[string]queries.LegacyUserMap {
	t.Helper()
	out := map[string]queries.LegacyUserMap{}
	err := legacy.EachMapEntry(context.Background(), pool, func(legacy.MapEntry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	rows, err := queries.New().LegacyUserMapPage(context.Background(), pool, queries.LegacyUserMapPageParams{PageSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		out[r.ClerkUserID] = r
	}
	return out
}

// assertImported checks WorkOS (the fake) and the map hold exactly one
// user, personal organization and owner membership per person.
func assertImported(t *testing.T, fake *workosfake.Server, pool *pgxpool.Pool, ps []person, experts bool) {
	t.Helper()
	users, orgs, members := fake.Users(), fake.Organizations(), fake.Memberships()
	if len(users) != len(ps) || len(orgs) != len(ps) || len(members) != len(ps) {
		t.Fatalf("WorkOS holds %d users, %d organizations, %d memberships; want %d of each", len(users), len(orgs), len(members), len(ps))
	}
	byExt := map[string]workosfake.User{}
	for _, u := range users {
		byExt[*u.ExternalID] = u
	}
	orgByID := map[string]workosfake.Organization{}
	for _, o := range orgs {
		orgByID[o.ID] = o
	}
	memberOf := map[string]workosfake.Membership{}
	for _, m := range members {
		memberOf[m.UserID] = m
	}
	rows := mapRows(t, pool)
	if len(rows) != len(ps) {
		t.Fatalf("map has %d rows, want %d", len(rows), len(ps))
	}
	for _, p := range ps {
		u, ok := byExt[p.id]
		if !ok {
			t.Fatalf("no WorkOS user with external id %s", p.id)
		}
		row := rows[p.id]
		if !legacy.Complete(row.Outcome) || deref(row.WorkosUserID) != u.ID {
			t.Fatalf("map row %s: %s user %s, want complete with %s (%s)", p.id, row.Outcome, deref(row.WorkosUserID), u.ID, deref(row.Detail))
		}
		if u.Email != p.email || u.EmailVerified != p.verified || deref(u.FirstName) != p.first {
			t.Errorf("user %s: %s verified=%v %s", p.id, u.Email, u.EmailVerified, deref(u.FirstName))
		}
		wantHash := ""
		if p.hasher == "bcrypt" {
			wantHash = "bcrypt"
		}
		if u.PasswordHashType != wantHash {
			t.Errorf("user %s (%s) created with password hash type %q", p.id, p.hasher, u.PasswordHashType)
		}
		for k, v := range u.Metadata {
			if (p.totp != "" && strings.Contains(v, p.totp)) || (p.digest != "" && strings.Contains(v, p.digest)) {
				t.Errorf("user %s metadata %s holds a secret", p.id, k)
			}
		}
		m := memberOf[u.ID]
		o := orgByID[m.OrganizationID]
		if m.Role.Slug != "owner" || deref(row.WorkosOrgID) != o.ID || deref(row.WorkosMembershipID) != m.ID {
			t.Errorf("user %s: membership %+v, map org %s membership %s", p.id, m, deref(row.WorkosOrgID), deref(row.WorkosMembershipID))
		}
		wantType := legacy.PersonalOrgTypeDefault
		if experts && p.expert {
			wantType = legacy.ExpertOrgTypeDefault
		}
		if deref(o.ExternalID) != provision.PersonalOrgExternalID(u.ID) || o.Name != p.first+"'s Account" ||
			o.Metadata["type"] != wantType || deref(row.OrgType) != wantType {
			t.Errorf("user %s: organization %s %q type %s (map %s), want %s", p.id, deref(o.ExternalID), o.Name, o.Metadata["type"], deref(row.OrgType), wantType)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestImportThousandUsers(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	fake := workosfake.New(t, workosfake.Options{RateLimitEvery: 41})
	ps := people(1000)
	ldb := legacyTable(t, pool, ps)
	file := read(t, csvOf(ps), "")
	var progress atomic.Int64
	im := newImporter(t, legacy.Config{Links: ldb, OnProgress: func(done, total int) { progress.Store(int64(done)) }}, pool, newAPI(t, fake))
	s, err := im.Run(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	if s.Created != 1000 || s.Failed != 0 || s.Experts != 100 || s.PasswordsImported != 500 || s.PasswordsLeftOut["argon2id"] != 250 || progress.Load() != 1000 {
		t.Fatalf("summary %+v, progress %d", s, progress.Load())
	}
	assertImported(t, fake, pool, ps, true)
	if fake.CountCalls(http.MethodPost, "/user_management/users", http.StatusTooManyRequests) == 0 {
		t.Fatal("the fake never rate-limited a user create: the test does not exercise the retries")
	}
	rows := mapRows(t, pool)
	if r := rows[ps[10].id]; deref(r.StripeConnectAccountID) != "acct_10" || deref(r.StripeCustomerID) != "cus_10" {
		t.Errorf("map row of an expert: %+v", r)
	}

	// A second run finds everything done and writes nothing.
	before := len(fake.Calls())
	s, err = im.Run(context.Background(), file)
	if err != nil || s.Skipped[legacy.ReasonAlreadyImported] != 1000 || s.Created+s.Adopted+s.Failed != 0 {
		t.Fatalf("second run: %+v %v", s, err)
	}
	if after := len(fake.Calls()); after != before {
		t.Fatalf("second run made %d WorkOS calls", after-before)
	}
}

func TestImportKilledHalfWayResumes(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	// Some writes are applied but their answer is lost (a 500 after the
	// write): the retry and the resumed run must adopt, not duplicate.
	fake := workosfake.New(t, workosfake.Options{RateLimitEvery: 37, ErrorEvery: 101, ErrorAfterWrite: true})
	ps := people(1000)
	file := read(t, jsonOf(ps), "")
	ctx, kill := context.WithCancel(context.Background())
	var orgCreates atomic.Int64
	fake.OnRequest(func(r *http.Request) {
		// Killed while the 500th organization create is on the wire: it
		// is applied in WorkOS, its answer never read.
		if r.Method == http.MethodPost && r.URL.Path == "/organizations" && orgCreates.Add(1) == 500 {
			kill()
		}
	})
	api := newAPI(t, fake)
	s, err := newImporter(t, legacy.Config{}, pool, api).Run(ctx, file)
	if !errors.Is(err, context.Canceled) || s.NotReached == 0 {
		t.Fatalf("killed run: %v, %+v", err, s)
	}
	rows := mapRows(t, pool)
	partial := 0
	for _, r := range rows {
		if !legacy.Complete(r.Outcome) {
			partial++
		}
	}
	t.Logf("killed with %d users settled, %d map rows, %d of them partial", s.Created+s.Adopted, len(rows), partial)
	if len(rows) >= 1000 || len(fake.Users()) >= 1000 {
		t.Fatalf("the kill came too late: %d map rows, %d users", len(rows), len(fake.Users()))
	}

	fake.OnRequest(nil)
	s, err = newImporter(t, legacy.Config{}, pool, api).Run(context.Background(), file)
	if err != nil || s.Failed != 0 || s.NotReached != 0 || s.Created+s.Adopted+s.Skipped[legacy.ReasonAlreadyImported] != 1000 {
		t.Fatalf("resumed run: %v, %+v", err, s)
	}
	assertImported(t, fake, pool, ps, false)
}

func TestImportResumesPartialRows(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	fake := workosfake.New(t, workosfake.Options{})
	ps := people(6)
	file := read(t, csvOf(ps), "")
	im := newImporter(t, legacy.Config{Concurrency: 1}, pool, newAPI(t, fake))
	// Stop every user after its first or second step, as a crash would.
	ctx, kill := context.WithCancel(context.Background())
	var steps atomic.Int64
	legacy.SetAfterStep(im, func(clerkID, step string) {
		if steps.Add(1) == 5 {
			kill()
		}
	})
	if _, err := im.Run(ctx, file); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	rows := mapRows(t, pool)
	var partial []string
	for id, r := range rows {
		if r.Outcome == legacy.OutcomeInProgress {
			partial = append(partial, id)
		}
	}
	if len(partial) != 1 || rows[partial[0]].WorkosOrgID == nil || rows[partial[0]].WorkosMembershipID != nil {
		t.Fatalf("after the kill: %+v", rows)
	}
	legacy.SetAfterStep(im, nil)
	s, err := im.Run(context.Background(), file)
	if err != nil || s.Created != 5 || s.Skipped[legacy.ReasonAlreadyImported] != 1 {
		t.Fatalf("resumed: %v %+v", err, s)
	}
	if r := mapRows(t, pool)[partial[0]]; r.Outcome != legacy.OutcomeCreated || !r.UserCreated || !r.OrgCreated || !r.MembershipCreated {
		t.Errorf("the partial row finished as %+v", r)
	}
	assertImported(t, fake, pool, ps, false)
}

func TestImportBadRowsSkippedRestImported(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	fake := workosfake.New(t, workosfake.Options{})
	ps := people(5)
	text := csvOf(ps)
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	bad := []string{
		"user_nomail,No,Mail,,,,,,,,,,",                       // no email
		"user_short,Short,Row,,short@example.com",             // malformed
		ps[0].id + ",Copy,Cat,,copy@example.com,,,,,,,,",      // duplicate Clerk id
		"user_dupmail,Dup,Mail,,PERSON1@example.com,,,,,,,,",  // duplicate email
		"user_badmail,Bad,Mail,,bad mail@example.com,,,,,,,,", // malformed email
		`user_quote,"Unclosed,Q,,q@example.com,,,,,,,,`,       // malformed quoting (eats the rest)
	}
	// header, 5 good rows, then the bad ones (lines 7..12).
	text = strings.Join(append(lines, bad...), "\n") + "\n"
	file := read(t, text, legacy.FormatCSV)
	want := []struct {
		line   int
		reason string
	}{{7, legacy.ReasonNoEmail}, {8, legacy.ReasonMalformed}, {9, legacy.ReasonDuplicateID}, {10, legacy.ReasonDuplicateEmail}, {11, legacy.ReasonMalformed}, {12, legacy.ReasonMalformed}}
	assertBad(t, file.Bad, want)
	s, err := newImporter(t, legacy.Config{}, pool, newAPI(t, fake)).Run(context.Background(), file)
	if err != nil || s.Created != 5 || s.Skipped[legacy.ReasonMalformed] != 3 || s.Skipped[legacy.ReasonNoEmail] != 1 ||
		s.Skipped[legacy.ReasonDuplicateID] != 1 || s.Skipped[legacy.ReasonDuplicateEmail] != 1 {
		t.Fatalf("%v %+v", err, s)
	}
	assertImported(t, fake, pool, ps, false)
}

func TestImportFormatsGiveTheSameMap(t *testing.T) {
	t.Parallel()
	fake := workosfake.New(t, workosfake.Options{RateLimitEvery: 13})
	api := newAPI(t, fake)
	ps := people(60)
	csvDB, jsonDB := syncdtest.DB(t), syncdtest.DB(t)
	if s, err := newImporter(t, legacy.Config{}, csvDB, api).Run(context.Background(), read(t, csvOf(ps), "")); err != nil || s.Created != 60 {
		t.Fatalf("csv: %v %+v", err, s)
	}
	// The JSON export of the same users, into another map, against the
	// same WorkOS: every user found, nothing written, the same ids.
	before := fake.CountCalls(http.MethodPost, "/user_management/users", 0)
	if s, err := newImporter(t, legacy.Config{}, jsonDB, api).Run(context.Background(), read(t, jsonOf(ps), "")); err != nil || s.Adopted != 60 {
		t.Fatalf("json: %v %+v", err, s)
	}
	if n := fake.CountCalls(http.MethodPost, "/user_management/users", 0); n != before {
		t.Fatalf("the JSON import created %d users", n-before)
	}
	a, b := mapRows(t, csvDB), mapRows(t, jsonDB)
	for _, p := range ps {
		x, y := a[p.id], b[p.id]
		if deref(x.WorkosUserID) != deref(y.WorkosUserID) || deref(x.WorkosOrgID) != deref(y.WorkosOrgID) ||
			deref(x.WorkosMembershipID) != deref(y.WorkosMembershipID) || deref(x.OrgType) != deref(y.OrgType) || x.Email != y.Email {
			t.Errorf("%s: csv %+v, json %+v", p.id, x, y)
		}
	}
	assertImported(t, fake, csvDB, ps, false)
}

func TestImportMapOnlyWritesNothingToWorkOS(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	fake := workosfake.New(t, workosfake.Options{RateLimitEvery: 7})
	ps := people(4)
	// 0: imported before (external id, derived organization, membership).
	u0 := fake.AddUser(workosfake.UserSpec{Email: ps[0].email, ExternalID: ps[0].id})
	o0 := fake.AddOrganization("Pat0's Account", provision.PersonalOrgExternalID(u0.ID), map[string]string{"type": "patient_personal"})
	m0 := fake.AddMembership(u0.ID, o0.ID, "owner")
	// 1: signed up on WorkOS meanwhile: found by email, its app-made
	// personal organization by type.
	u1 := fake.AddUser(workosfake.UserSpec{Email: ps[1].email})
	o1 := fake.AddOrganization("Pat1 personal", "", map[string]string{"type": "expert_individual"})
	m1 := fake.AddMembership(u1.ID, o1.ID, "admin")
	// 2: a user without an organization; 3: nothing at all.
	u2 := fake.AddUser(workosfake.UserSpec{Email: ps[2].email, ExternalID: ps[2].id})
	file := read(t, csvOf(ps), "")

	s, err := newImporter(t, legacy.Config{MapOnly: true}, pool, newAPI(t, fake)).Run(context.Background(), file)
	if err != nil || s.Mapped != 2 || s.Missing != 2 || s.Failed != 0 {
		t.Fatalf("%v %+v", err, s)
	}
	for _, path := range []string{"/user_management/users", "/organizations", "/user_management/organization_memberships"} {
		if n := fake.CountCalls(http.MethodPost, path, 0); n != 0 {
			t.Errorf("map-only sent %d POST %s", n, path)
		}
	}
	rows := mapRows(t, pool)
	for i, want := range []struct{ user, org, membership, outcome, detail string }{
		{u0.ID, o0.ID, m0.ID, legacy.OutcomeMapped, ""},
		{u1.ID, o1.ID, m1.ID, legacy.OutcomeMapped, ""},
		{u2.ID, "", "", legacy.OutcomeMissing, "has no personal organization"},
		{"", "", "", legacy.OutcomeMissing, "no WorkOS user with external id " + ps[3].id},
	} {
		r := rows[ps[i].id]
		if deref(r.WorkosUserID) != want.user || deref(r.WorkosOrgID) != want.org || deref(r.WorkosMembershipID) != want.membership ||
			r.Outcome != want.outcome || !strings.Contains(deref(r.Detail), want.detail) {
			t.Errorf("row %d: %+v (%s), want %+v", i, r, deref(r.Detail), want)
		}
	}

	// The real import then finishes what is missing and leaves the rest.
	s, err = newImporter(t, legacy.Config{}, pool, newAPI(t, fake)).Run(context.Background(), file)
	if err != nil || s.Skipped[legacy.ReasonAlreadyImported] != 2 || s.Created != 2 {
		t.Fatalf("import after map-only: %v %+v", err, s)
	}
	if n := len(fake.Users()); n != 4 {
		t.Errorf("%d WorkOS users, want 4", n)
	}
	if r := mapRows(t, pool)[ps[2].id]; r.Outcome != legacy.OutcomeCreated || r.UserCreated || !r.OrgCreated || deref(r.WorkosUserID) != u2.ID {
		t.Errorf("user 2 finished as %+v", r)
	}
}

func TestImportEmailHeldByAnotherClerkUserFails(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	fake := workosfake.New(t, workosfake.Options{})
	ps := people(2)
	fake.AddUser(workosfake.UserSpec{Email: ps[1].email, ExternalID: "user_someoneelse"})
	s, err := newImporter(t, legacy.Config{}, pool, newAPI(t, fake)).Run(context.Background(), read(t, csvOf(ps), ""))
	if err != nil || s.Created != 1 || s.Failed != 1 || s.Failures[0].Retryable || !strings.Contains(s.Failures[0].Err, "external id is user_someoneelse") {
		t.Fatalf("%v %+v", err, s)
	}
	if r := mapRows(t, pool)[ps[1].id]; r.Outcome != legacy.OutcomeFailed || r.WorkosUserID != nil {
		t.Errorf("row %+v", r)
	}
	if n := len(fake.Organizations()); n != 1 {
		t.Errorf("%d organizations", n)
	}
}

func TestImportPlanWritesNothing(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	fake := workosfake.New(t, workosfake.Options{})
	ps := people(20)
	ldb := legacyTable(t, pool, ps)
	file := read(t, csvOf(ps), "")
	if _, err := newImporter(t, legacy.Config{}, pool, newAPI(t, fake)).Run(context.Background(), legacy.File{Users: file.Users[:5]}); err != nil {
		t.Fatal(err)
	}
	calls := len(fake.Calls())
	p, err := newImporter(t, legacy.Config{Links: ldb}, pool, nil).Plan(context.Background(), file)
	if err != nil || p.New != 15 || p.Done != 5 || p.Resume != 0 || p.Experts != 1 || p.PasswordsImported != 8 || p.PasswordsLeftOut["argon2id"] != 4 {
		t.Fatalf("%v %+v", err, p)
	}
	if len(fake.Calls()) != calls || len(mapRows(t, pool)) != 5 {
		t.Fatal("the plan wrote")
	}
}
