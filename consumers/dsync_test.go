package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// dsyncEvent builds a WorkOS event that happened sec seconds after t0: the
// event time is the version of group memberships, so tests set it.
func dsyncEvent(id, typ string, sec int, data map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"object": "event", "id": id, "event": typ, "data": data, "created_at": at(sec),
	})
	if err != nil {
		panic(err)
	}
	return b
}

func dsyncDirectoryData(id, org, state string, sec int) map[string]any {
	return map[string]any{
		"object": "directory", "id": id, "organization_id": org, "name": "Foo Corp's Directory",
		"type": "okta scim v2.0", "state": state, "external_key": "UWuccu6o1E0GqkYs",
		"domains":    []any{map[string]any{"object": "organization_domain", "id": "org_domain_1", "domain": "foo-corp.com"}},
		"created_at": at(0), "updated_at": at(sec),
	}
}

func dsyncUserData(id, dir, org, first, state string, sec int) map[string]any {
	email := strings.ToLower(first) + "@foo-corp.com"
	return map[string]any{
		"object": "directory_user", "id": id, "directory_id": dir, "organization_id": org,
		"idp_id": "idp-" + id, "email": email, "first_name": first, "last_name": "Davis",
		"emails":   []any{map[string]any{"primary": true, "type": "work", "value": email}},
		"username": strings.ToLower(first), "job_title": "Engineer", "state": state,
		"role": map[string]any{"slug": "member"}, "roles": []any{map[string]any{"slug": "member"}},
		"custom_attributes": map[string]any{"department": "Eng " + first},
		"raw_attributes":    map[string]any{"active": state == "active"},
		"created_at":        at(0), "updated_at": at(sec),
	}
}

func dsyncGroupData(id, dir, org, name string, sec int) map[string]any {
	return map[string]any{
		"object": "directory_group", "id": id, "idp_id": "idp-" + id, "directory_id": dir,
		"organization_id": org, "name": name, "raw_attributes": map[string]any{"name": name},
		"created_at": at(0), "updated_at": at(sec),
	}
}

// dsyncMemberData is the data of dsync.group.user_added and user_removed.
// The user snapshot carries no directory or organization, as in WorkOS's
// own samples.
func dsyncMemberData(dir string, user, group map[string]any) map[string]any {
	u := map[string]any{}
	for k, v := range user {
		if k != "directory_id" && k != "organization_id" {
			u[k] = v
		}
	}
	return map[string]any{"directory_id": dir, "user": u, "group": group}
}

func outcome(t *testing.T, pool *pgxpool.Pool, eventID string) string {
	t.Helper()
	row, err := queries.New().EventLedgerGet(context.Background(), pool, queries.EventLedgerGetParams{Source: "workos", EventID: eventID})
	if err != nil {
		t.Fatalf("ledger row of %s: %v", eventID, err)
	}
	return row.Outcome
}

func directoryUser(t *testing.T, pool *pgxpool.Pool, id string) queries.DirectoryUser {
	t.Helper()
	u, err := queries.New().DirectoryUserGetByWorkOSID(context.Background(), pool, id)
	if err != nil {
		t.Fatalf("directory user %s: %v", id, err)
	}
	return u
}

func directoryGroup(t *testing.T, pool *pgxpool.Pool, id string) queries.DirectoryGroup {
	t.Helper()
	g, err := queries.New().DirectoryGroupGetByWorkOSID(context.Background(), pool, id)
	if err != nil {
		t.Fatalf("directory group %s: %v", id, err)
	}
	return g
}

func directory(t *testing.T, pool *pgxpool.Pool, id string) queries.Directory {
	t.Helper()
	d, err := queries.New().DirectoryGetByWorkOSID(context.Background(), pool, id)
	if err != nil {
		t.Fatalf("directory %s: %v", id, err)
	}
	return d
}

func groupMember(t *testing.T, pool *pgxpool.Pool, group, user string) queries.DirectoryGroupMember {
	t.Helper()
	m, err := queries.New().DirectoryGroupMemberGet(context.Background(), pool, queries.DirectoryGroupMemberGetParams{
		WorkosDirectoryGroupID: group, WorkosDirectoryUserID: user,
	})
	if err != nil {
		t.Fatalf("member %s of %s: %v", user, group, err)
	}
	return m
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func sameTime(p *time.Time, want time.Time) bool { return p != nil && p.Equal(want) }

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}

// TestDsyncEventsApplyOverHTTP takes a directory through its life, one
// event type at a time, and checks each lands in its table.
func TestDsyncEventsApplyOverHTTP(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	const (
		dir  = "directory_01ECAZ4NV9QMV47GW873HDCX74"
		org  = "org_01EZTR6WYX1A0DSE2CYMGXQ24Y"
		user = "directory_user_01E1JG7J09H96KYP8HM9B0G5SJ"
		grp  = "directory_group_01E1X5GPMMXF4T1DCERMVEEPVW"
	)
	step := func(id string, body []byte) {
		t.Helper()
		h.PostWorkOS(body)
		h.WaitSettled()
		if got := outcome(t, h.Pool, id); got != "applied" {
			t.Fatalf("%s: outcome %s, want applied", id, got)
		}
	}

	// The user arrives before its directory: the directory is a stub.
	step("event_user_created", syncdtest.WithID(syncdtest.Fixture(t, "workos/dsync.user.created.json"), "event_user_created"))
	u := directoryUser(t, h.Pool, user)
	if str(u.Email) != "marcelina.davis@example.com" || str(u.FirstName) != "Marcelina" || str(u.LastName) != "Davis" ||
		str(u.Username) != "mdavis" || str(u.JobTitle) != "Software Engineer" || str(u.State) != "active" ||
		str(u.IdpID) != "2836" || str(u.Role) != "admin" || !slices.Equal(u.Roles, []string{"admin"}) ||
		u.WorkosDirectoryID != dir || str(u.WorkosOrgID) != org || u.IsStub || u.DeletedAt != nil ||
		!sameTime(u.WorkosCreatedAt, t0) || !sameTime(u.WorkosUpdatedAt, t0) {
		t.Errorf("directory user after dsync.user.created: %+v", u)
	}
	if !jsonEqual(t, u.Emails, `[{"primary":true,"type":"work","value":"marcelina.davis@example.com"}]`) ||
		!jsonEqual(t, u.CustomAttributes, `{"department":"Engineering","job_title":"Software Engineer"}`) ||
		!jsonEqual(t, u.RawAttributes, `{"key":{}}`) {
		t.Errorf("directory user JSON: emails %s custom %s raw %s", u.Emails, u.CustomAttributes, u.RawAttributes)
	}
	if d := directory(t, h.Pool, dir); !d.IsStub || str(d.WorkosOrgID) != org || d.Name != nil {
		t.Errorf("directory stub: %+v", d)
	}

	step("event_activated", dsyncEvent("event_activated", "dsync.activated", 1, dsyncDirectoryData(dir, org, "active", 1)))
	d := directory(t, h.Pool, dir)
	if d.IsStub || str(d.Name) != "Foo Corp's Directory" || str(d.Type) != "okta scim v2.0" || str(d.State) != "active" ||
		!slices.Equal(d.Domains, []string{"foo-corp.com"}) || str(d.ExternalKey) != "UWuccu6o1E0GqkYs" ||
		!sameTime(d.WorkosUpdatedAt, sec(1)) || d.DeletedAt != nil {
		t.Errorf("directory after dsync.activated: %+v", d)
	}

	upd := dsyncUserData(user, dir, org, "Marcy", "inactive", 2)
	delete(upd, "raw_attributes") // optional in WorkOS payloads
	step("event_user_updated", dsyncEvent("event_user_updated", "dsync.user.updated", 2, upd))
	u = directoryUser(t, h.Pool, user)
	if str(u.FirstName) != "Marcy" || str(u.State) != "inactive" || str(u.Role) != "member" || u.RawAttributes != nil ||
		!sameTime(u.WorkosUpdatedAt, sec(2)) {
		t.Errorf("directory user after dsync.user.updated: %+v", u)
	}

	step("event_group_created", dsyncEvent("event_group_created", "dsync.group.created", 3, dsyncGroupData(grp, dir, org, "Developers", 3)))
	step("event_group_updated", dsyncEvent("event_group_updated", "dsync.group.updated", 4, dsyncGroupData(grp, dir, org, "Engineers", 4)))
	g := directoryGroup(t, h.Pool, grp)
	if str(g.Name) != "Engineers" || str(g.IdpID) != "idp-"+grp || g.WorkosDirectoryID != dir || str(g.WorkosOrgID) != org ||
		g.IsStub || !sameTime(g.WorkosUpdatedAt, sec(4)) || !jsonEqual(t, g.RawAttributes, `{"name":"Engineers"}`) {
		t.Errorf("directory group after dsync.group.updated: %+v", g)
	}

	member := dsyncMemberData(dir, upd, dsyncGroupData(grp, dir, org, "Engineers", 4))
	step("event_user_added", dsyncEvent("event_user_added", "dsync.group.user_added", 5, member))
	if m := groupMember(t, h.Pool, grp, user); m.DeletedAt != nil || m.RemovedAt != nil || !m.WorkosEventAt.Equal(sec(5)) || m.WorkosDirectoryID != dir {
		t.Errorf("member after user_added: %+v", m)
	}
	// The snapshots in the membership event never overwrite real rows.
	if u := directoryUser(t, h.Pool, user); str(u.WorkosOrgID) != org || u.IsStub {
		t.Errorf("user_added touched the user's own row: %+v", u)
	}
	step("event_user_removed", dsyncEvent("event_user_removed", "dsync.group.user_removed", 6, member))
	if m := groupMember(t, h.Pool, grp, user); !sameTime(m.DeletedAt, sec(6)) || !sameTime(m.RemovedAt, sec(6)) {
		t.Errorf("member after user_removed: %+v", m)
	}
	step("event_user_readded", dsyncEvent("event_user_readded", "dsync.group.user_added", 7, member))
	if m := groupMember(t, h.Pool, grp, user); m.DeletedAt != nil || !m.WorkosEventAt.Equal(sec(7)) {
		t.Errorf("member after a second user_added: %+v", m)
	}

	step("event_group_deleted", dsyncEvent("event_group_deleted", "dsync.group.deleted", 8, dsyncGroupData(grp, dir, org, "Engineers", 8)))
	if g := directoryGroup(t, h.Pool, grp); !sameTime(g.DeletedAt, sec(8)) {
		t.Errorf("group after dsync.group.deleted: %+v", g)
	}
	if m := groupMember(t, h.Pool, grp, user); !sameTime(m.DeletedAt, sec(8)) || m.RemovedAt != nil {
		t.Errorf("member of a deleted group: %+v", m)
	}

	step("event_user_deleted", dsyncEvent("event_user_deleted", "dsync.user.deleted", 9, dsyncUserData(user, dir, org, "Marcy", "inactive", 9)))
	if u := directoryUser(t, h.Pool, user); !sameTime(u.DeletedAt, sec(9)) || !sameTime(u.WorkosUpdatedAt, sec(9)) {
		t.Errorf("user after dsync.user.deleted: %+v", u)
	}
	if d := directory(t, h.Pool, dir); d.DeletedAt != nil {
		t.Errorf("a user's delete took its directory: %+v", d)
	}
	// A late update, even one newer than the delete, does not bring the
	// user back.
	h.PostWorkOS(dsyncEvent("event_user_late", "dsync.user.updated", 20, dsyncUserData(user, dir, org, "Lazarus", "active", 20)))
	h.WaitSettled()
	if u := directoryUser(t, h.Pool, user); !sameTime(u.DeletedAt, sec(9)) {
		t.Errorf("late dsync.user.updated resurrected the user: %+v", u)
	}
}

// TestDsyncCreatedAtWithSpace: WorkOS samples write times as
// `2023-04-28 20:05:31.093`; they parse like RFC 3339 (as UTC).
func TestDsyncCreatedAtWithSpace(t *testing.T) {
	t.Parallel()
	d := newDirect(t)
	data := dsyncUserData("directory_user_space", "directory_space", "org_space", "Ann", "active", 0)
	data["created_at"] = "2023-04-28 20:05:31.093"
	data["updated_at"] = "2023-04-28 20:05:31.093"
	body, _ := json.Marshal(map[string]any{
		"object": "event", "id": "event_space", "event": "dsync.user.created", "data": data,
		"created_at": "2023-04-28 20:05:31.093",
	})
	d.workos(body)
	want := time.Date(2023, 4, 28, 20, 5, 31, 93e6, time.UTC)
	if u := directoryUser(t, d.Pool, "directory_user_space"); !sameTime(u.WorkosCreatedAt, want) || !sameTime(u.WorkosUpdatedAt, want) {
		t.Errorf("created_at %v updated_at %v, want %v", u.WorkosCreatedAt, u.WorkosUpdatedAt, want)
	}
	row, err := queries.New().EventLedgerGet(context.Background(), d.Pool, queries.EventLedgerGetParams{Source: "workos", EventID: "event_space"})
	if err != nil || row.ProviderAt == nil || !row.ProviderAt.Equal(want) {
		t.Errorf("ledger provider_at %v (%v), want %v", row.ProviderAt, err, want)
	}
}

// TestDsyncDeletedCascades: dsync.deleted is all WorkOS sends when a
// directory goes; its users, groups and memberships go too, and no late
// event brings any of them back.
func TestDsyncDeletedCascades(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, d *direct) {
		const dir, org, other = "directory_gone", "org_gone", "directory_kept"
		u1, u2 := dsyncUserData("directory_user_a", dir, org, "Ann", "active", 1), dsyncUserData("directory_user_b", dir, org, "Bob", "active", 1)
		g := dsyncGroupData("directory_group_g", dir, org, "Admins", 1)
		kept := dsyncUserData("directory_user_k", other, org, "Kim", "active", 1)
		var bodies [][]byte
		for i, ev := range []struct {
			typ  string
			data map[string]any
		}{
			{"dsync.activated", dsyncDirectoryData(dir, org, "active", 1)},
			{"dsync.user.created", u1},
			{"dsync.user.created", u2},
			{"dsync.group.created", g},
			{"dsync.group.user_added", dsyncMemberData(dir, u1, g)},
			{"dsync.user.created", kept},
		} {
			bodies = append(bodies, dsyncEvent(fmt.Sprintf("event_setup_%d", i), ev.typ, 2, ev.data))
		}
		d.workos(append(bodies, dsyncEvent("event_dir_deleted", "dsync.deleted", 10, dsyncDirectoryData(dir, org, "deleting", 10)))...)

		deleted := sec(10)
		check := func(when string) {
			t.Helper()
			if dr := directory(t, d.Pool, dir); !sameTime(dr.DeletedAt, deleted) || str(dr.State) != "deleting" {
				t.Errorf("%s: directory %+v", when, dr)
			}
			for _, id := range []string{"directory_user_a", "directory_user_late"} {
				if u := directoryUser(t, d.Pool, id); !sameTime(u.DeletedAt, deleted) {
					t.Errorf("%s: user %s not deleted with its directory: %+v", when, id, u)
				}
			}
			for _, id := range []string{"directory_group_g", "directory_group_late"} {
				if g := directoryGroup(t, d.Pool, id); !sameTime(g.DeletedAt, deleted) {
					t.Errorf("%s: group %s not deleted with its directory: %+v", when, id, g)
				}
			}
			if u := directoryUser(t, d.Pool, "directory_user_b"); u.DeletedAt == nil || u.DeletedAt.After(deleted) {
				t.Errorf("%s: user directory_user_b not deleted with its directory: %+v", when, u)
			}
			for _, u := range []string{"directory_user_a", "directory_user_b"} {
				if m := groupMember(t, d.Pool, "directory_group_g", u); m.DeletedAt == nil || m.DeletedAt.After(deleted) {
					t.Errorf("%s: membership of %s not deleted with its directory: %+v", when, u, m)
				}
			}
			if u := directoryUser(t, d.Pool, "directory_user_k"); u.DeletedAt != nil {
				t.Errorf("%s: user of another directory deleted: %+v", when, u)
			}
		}

		// Late events, some newer than the delete's object versions:
		// updates, a re-activation, a user and a group never seen before,
		// a membership.
		late := dsyncUserData("directory_user_late", dir, org, "Lou", "active", 20)
		lateGroup := dsyncGroupData("directory_group_late", dir, org, "Late", 20)
		bodies = nil
		for i, ev := range []struct {
			typ  string
			data map[string]any
		}{
			{"dsync.user.updated", dsyncUserData("directory_user_a", dir, org, "Annie", "active", 20)},
			{"dsync.group.updated", dsyncGroupData("directory_group_g", dir, org, "Admins 2", 20)},
			{"dsync.activated", dsyncDirectoryData(dir, org, "active", 5)},
			{"dsync.user.created", late},
			{"dsync.group.created", lateGroup},
			{"dsync.group.user_added", dsyncMemberData(dir, u2, g)},
		} {
			bodies = append(bodies, dsyncEvent(fmt.Sprintf("event_late_%d", i), ev.typ, 30, ev.data))
		}
		// A user deleted on its own before the directory went, whose
		// delete arrives last, keeps the earlier time.
		d.workos(append(bodies, dsyncEvent("event_late_user_deleted", "dsync.user.deleted", 7, dsyncUserData("directory_user_b", dir, org, "Bob", "inactive", 7)))...)
		check("after late events")
		if u := directoryUser(t, d.Pool, "directory_user_b"); !sameTime(u.DeletedAt, sec(7)) || str(u.State) != "inactive" {
			t.Errorf("earlier own delete arriving after the directory's: %+v", u)
		}
		// Newer data still lands under the tombstone: the final state does
		// not depend on whether the update came before or after the delete.
		if u := directoryUser(t, d.Pool, "directory_user_a"); str(u.FirstName) != "Annie" {
			t.Errorf("late newer update not kept under the tombstone: %+v", u)
		}
		if got := outcome(t, d.Pool, "event_late_2"); got != "stale" {
			t.Errorf("older dsync.activated after dsync.deleted: outcome %s, want stale", got)
		}
	})
}

// TestDsyncMembersBeforeParents: a membership that arrives before its user,
// group and directory creates them as stubs that their own events fill;
// a removal is not undone by an add that happened earlier but arrives
// later.
func TestDsyncMembersBeforeParents(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, d *direct) {
		const dir, org, user, grp = "directory_s", "org_s", "directory_user_s", "directory_group_s"
		u := dsyncUserData(user, dir, org, "Sam", "active", 1)
		g := dsyncGroupData(grp, dir, org, "Support", 1)
		d.workos(
			dsyncEvent("event_removed", "dsync.group.user_removed", 20, dsyncMemberData(dir, u, g)),
			dsyncEvent("event_added", "dsync.group.user_added", 10, dsyncMemberData(dir, u, g)))
		if got := outcome(t, d.Pool, "event_added"); got != "stale" {
			t.Errorf("add older than the stored removal: outcome %s, want stale", got)
		}
		if m := groupMember(t, d.Pool, grp, user); !sameTime(m.DeletedAt, sec(20)) || !m.WorkosEventAt.Equal(sec(20)) {
			t.Errorf("late older add undid the removal: %+v", m)
		}
		su := directoryUser(t, d.Pool, user)
		if !su.IsStub || str(su.FirstName) != "Sam" || str(su.WorkosOrgID) != org || su.WorkosDirectoryID != dir {
			t.Errorf("user stub: %+v", su)
		}
		if sg := directoryGroup(t, d.Pool, grp); !sg.IsStub || str(sg.Name) != "Support" {
			t.Errorf("group stub: %+v", sg)
		}
		if dr := directory(t, d.Pool, dir); !dr.IsStub || str(dr.WorkosOrgID) != org {
			t.Errorf("directory stub: %+v", dr)
		}

		// The own events fill the stubs, even at an older version than the
		// snapshot the stub holds.
		d.workos(
			dsyncEvent("event_user", "dsync.user.created", 1, dsyncUserData(user, dir, org, "Samuel", "active", 0)),
			dsyncEvent("event_group", "dsync.group.created", 1, g),
			dsyncEvent("event_dir", "dsync.activated", 1, dsyncDirectoryData(dir, org, "active", 1)))
		if su := directoryUser(t, d.Pool, user); su.IsStub || str(su.FirstName) != "Samuel" || !sameTime(su.WorkosUpdatedAt, t0) {
			t.Errorf("user not filled by its own event: %+v", su)
		}
		if sg := directoryGroup(t, d.Pool, grp); sg.IsStub {
			t.Errorf("group not filled by its own event: %+v", sg)
		}
		if dr := directory(t, d.Pool, dir); dr.IsStub || str(dr.Name) == "<nil>" {
			t.Errorf("directory not filled by its own event: %+v", dr)
		}
		// A later membership snapshot does not touch a filled user.
		d.workos(dsyncEvent("event_added_again", "dsync.group.user_added", 30, dsyncMemberData(dir, dsyncUserData(user, dir, org, "Snap", "active", 5), g)))
		if su := directoryUser(t, d.Pool, user); str(su.FirstName) != "Samuel" {
			t.Errorf("membership snapshot overwrote the user: %+v", su)
		}
		if m := groupMember(t, d.Pool, grp, user); m.DeletedAt != nil {
			t.Errorf("newer add did not restore the membership: %+v", m)
		}
	})
}

type dsyncStep struct {
	typ  string
	sec  int // event time
	data map[string]any
}

// dsyncState is every dsync row of directory dir, without the bookkeeping
// columns (row uuid, created_at, updated_at), with ns replaced so that
// scenarios under different ids compare.
func dsyncState(t *testing.T, pool *pgxpool.Pool, dir, ns string) string {
	t.Helper()
	ctx, q := context.Background(), queries.New()
	d, err := q.DirectoryGetByWorkOSID(ctx, pool, dir)
	if err != nil {
		t.Fatalf("directory %s: %v", dir, err)
	}
	users, err := q.DirectoryUserListByDirectory(ctx, pool, dir)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := q.DirectoryGroupListByDirectory(ctx, pool, dir)
	if err != nil {
		t.Fatal(err)
	}
	members, err := q.DirectoryGroupMemberListByDirectory(ctx, pool, dir)
	if err != nil {
		t.Fatal(err)
	}
	d.ID, d.CreatedAt, d.UpdatedAt = [16]byte{}, time.Time{}, time.Time{}
	for i := range users {
		users[i].ID, users[i].CreatedAt, users[i].UpdatedAt = [16]byte{}, time.Time{}, time.Time{}
	}
	for i := range groups {
		groups[i].ID, groups[i].CreatedAt, groups[i].UpdatedAt = [16]byte{}, time.Time{}, time.Time{}
	}
	for i := range members {
		members[i].CreatedAt, members[i].UpdatedAt = time.Time{}, time.Time{}
	}
	b, err := json.MarshalIndent(map[string]any{"directory": d, "users": users, "groups": groups, "members": members}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), ns, "NS")
}

// runPermutations applies the scenario built by steps(ns) in every order,
// each order under its own ids, with some events sent twice (the copy
// under a new event id, so that the handlers themselves must be
// idempotent, not just the ledger) and cut into batches of random sizes,
// and checks that every order ends in the state of the in-order run, one
// batch per event. check vets the in-order state itself.
func runPermutations(t *testing.T, steps func(ns string) []dsyncStep, check func(state string)) {
	t.Helper()
	d := newDirect(t)
	n := len(steps("x"))
	rng := rand.New(rand.NewPCG(4, 2))
	var orders [][]int
	var permute func(prefix, rest []int)
	permute = func(prefix, rest []int) {
		if len(rest) == 0 {
			orders = append(orders, slices.Clone(prefix))
			return
		}
		for i := range rest {
			next := slices.Concat(rest[:i:i], rest[i+1:])
			permute(append(prefix, rest[i]), next)
		}
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	permute(nil, all)
	for _, i := range all {
		ev := steps("ref")[i]
		d.workos(dsyncEvent(fmt.Sprintf("event_ref_%d", i), ev.typ, ev.sec, ev.data))
	}
	for p, order := range orders {
		ns := fmt.Sprintf("p%03d", p)
		evs := steps(ns)
		var bodies [][]byte
		for k, i := range order {
			bodies = append(bodies, dsyncEvent(fmt.Sprintf("event_%s_%d", ns, i), evs[i].typ, evs[i].sec, evs[i].data))
			if rng.IntN(2) == 0 {
				// The copy goes somewhere later in the stream, or right away.
				j := order[rng.IntN(k+1)]
				bodies = append(bodies, dsyncEvent(fmt.Sprintf("event_%s_%d_dup%d", ns, j, k), evs[j].typ, evs[j].sec, evs[j].data))
			}
		}
		// A consumer takes what has arrived in batches of any size.
		for len(bodies) > 0 {
			cut := 1 + rng.IntN(len(bodies))
			d.workos(bodies[:cut]...)
			bodies = bodies[cut:]
		}
	}
	want := dsyncState(t, d.Pool, "directory_ref", "ref")
	check(want)
	for p, order := range orders {
		ns := fmt.Sprintf("p%03d", p)
		if got := dsyncState(t, d.Pool, "directory_"+ns, ns); got != want {
			t.Errorf("order %v converged to\n%s\nwant\n%s", order, got, want)
			return
		}
	}
}

func TestDsyncPermutationsConverge(t *testing.T) {
	t.Parallel()
	steps := func(ns string) []dsyncStep {
		dir, org, user, grp := "directory_"+ns, "org_"+ns, "directory_user_"+ns, "directory_group_"+ns
		u1 := dsyncUserData(user, dir, org, "Ann", "active", 1)
		g := dsyncGroupData(grp, dir, org, "Team", 2)
		return []dsyncStep{
			{"dsync.user.created", 1, u1},
			{"dsync.group.created", 2, g},
			{"dsync.group.user_added", 3, dsyncMemberData(dir, u1, g)},
			{"dsync.user.updated", 4, dsyncUserData(user, dir, org, "Anna", "inactive", 4)},
			{"dsync.group.user_removed", 5, dsyncMemberData(dir, dsyncUserData(user, dir, org, "Anna", "inactive", 4), g)},
		}
	}
	runPermutations(t, steps, func(state string) {
		for _, want := range []string{`"FirstName": "Anna"`, `"State": "inactive"`, `"Name": "Team"`, `"RemovedAt": "` + sec(5).Format(time.RFC3339)} {
			if !strings.Contains(state, want) {
				t.Fatalf("in-order state lacks %s:\n%s", want, state)
			}
		}
		// Only the directory, which has no event here, is left a stub.
		if strings.Count(state, `"IsStub": true`) != 1 {
			t.Fatalf("in-order state has stubs besides the directory:\n%s", state)
		}
	})
}

func TestDsyncPermutationsWithDirectoryDeleteConverge(t *testing.T) {
	t.Parallel()
	steps := func(ns string) []dsyncStep {
		dir, org, user, grp := "directory_"+ns, "org_"+ns, "directory_user_"+ns, "directory_group_"+ns
		u1 := dsyncUserData(user, dir, org, "Ann", "active", 1)
		return []dsyncStep{
			{"dsync.user.created", 1, u1},
			// The group never has an event of its own: it stays a stub.
			{"dsync.group.user_added", 2, dsyncMemberData(dir, u1, dsyncGroupData(grp, dir, org, "Team", 1))},
			{"dsync.user.updated", 3, dsyncUserData(user, dir, org, "Anna", "active", 3)},
			{"dsync.deleted", 4, dsyncDirectoryData(dir, org, "deleting", 4)},
		}
	}
	runPermutations(t, steps, func(state string) {
		deleted := `"DeletedAt": "` + sec(4).Format(time.RFC3339)
		if strings.Count(state, deleted) != 4 || !strings.Contains(state, `"FirstName": "Anna"`) {
			t.Fatalf("in-order state is not all deleted at %s with the newest data:\n%s", sec(4), state)
		}
	})
}

// TestDsyncMemberAddAndRemoveAtTheSameTime: events carry milliseconds, so
// an add and a remove can tie; the removal wins in either order.
func TestDsyncMemberAddAndRemoveAtTheSameTime(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, d *direct) {
		for _, order := range [][]string{{"dsync.group.user_added", "dsync.group.user_removed"}, {"dsync.group.user_removed", "dsync.group.user_added"}} {
			ns := strings.TrimPrefix(order[0], "dsync.group.")
			dir, user, grp := "directory_"+ns, "directory_user_"+ns, "directory_group_"+ns
			data := dsyncMemberData(dir, dsyncUserData(user, dir, "org_t", "Tia", "active", 1), dsyncGroupData(grp, dir, "org_t", "Ties", 1))
			var bodies [][]byte
			for i, typ := range order {
				bodies = append(bodies, dsyncEvent(fmt.Sprintf("event_%s_%d", ns, i), typ, 5, data))
			}
			d.workos(bodies...)
			if m := groupMember(t, d.Pool, grp, user); !sameTime(m.DeletedAt, sec(5)) {
				t.Errorf("%v at the same time: member %+v, want removed", order, m)
			}
		}
	})
}

// TestDsyncMalformedEventsAreDeadLettered: a payload without the ids a row
// is keyed by cannot apply on any retry; it is set aside with a reason
// naming the field, and the events around it still apply.
func TestDsyncMalformedEventsAreDeadLettered(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.StartConsumer()
	noDir := dsyncUserData("directory_user_nodir", "", "org_m", "Nod", "active", 1)
	delete(noDir, "directory_id")
	noGroup := dsyncMemberData("directory_m", dsyncUserData("directory_user_m", "directory_m", "org_m", "Mo", "active", 1), map[string]any{"name": "nameless"})
	badTime := dsyncGroupData("directory_group_badtime", "directory_m", "org_m", "Clock", 1)
	badTime["updated_at"] = "yesterday"
	h.PostWorkOS(dsyncEvent("event_nodir", "dsync.user.created", 1, noDir))
	h.PostWorkOS(dsyncEvent("event_nogroup", "dsync.group.user_added", 1, noGroup))
	h.PostWorkOS(dsyncEvent("event_badtime", "dsync.group.created", 1, badTime))
	h.PostWorkOS(dsyncEvent("event_good", "dsync.user.created", 1, dsyncUserData("directory_user_good", "directory_m", "org_m", "Gus", "active", 1)))
	h.WaitSettled()
	directoryUser(t, h.Pool, "directory_user_good")

	ctx := context.Background()
	dl, err := h.NATS.JS.Stream(ctx, stream.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]string{
		"dsync.user.created":     "without directory_id",
		"dsync.group.user_added": "without group.id",
		"dsync.group.created":    `unrecognised time "yesterday"`,
	} {
		msg, err := dl.GetLastMsgForSubject(ctx, stream.DeadLetterSubject("workos", typ))
		if err != nil {
			t.Errorf("%s not dead-lettered: %v", typ, err)
			continue
		}
		if reason := msg.Header.Get(stream.HeaderDLError); !strings.Contains(reason, want) {
			t.Errorf("%s dead-lettered for %q, want it to say %q", typ, reason, want)
		}
	}
	for _, id := range []string{"directory_user_nodir", "directory_user_m"} {
		if _, err := queries.New().DirectoryUserGetByWorkOSID(ctx, h.Pool, id); err == nil {
			t.Errorf("malformed event left a row for %s", id)
		}
	}
}
